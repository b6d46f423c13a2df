{#
  One row per transaction: the canonical columns, the calendar flags and every point-in-time
  feature, with the names of the Fraud-Detection-Handbook lower-cased (docs/architecture.md §2), then
  the amount ratios derived from them (the amount against the customer's mean, recent against 30-day
  spending: 1 when the mean is 0). The transaction's columns come with customer_spending_features
  (one row per transaction); the left join keeps every transaction and the not_null tests in
  schema.yml catch a missing feature row.
#}
{%- set windows = var('window_days') -%}

with customer as (
    select * from {{ ref('customer_spending_features') }}
    {{ pit_output_filter() }}
),

terminal as (
    select * from {{ ref('terminal_risk_features') }}
    {{ pit_output_filter() }}
)

select
    customer.transaction_id,
    customer.tx_datetime,
    customer.customer_id,
    customer.terminal_id,
    customer.tx_amount,
    customer.tx_fraud,
    customer.partition_date,
    case when extract(dow from customer.tx_datetime) in (0, 6) then 1 else 0 end
        as tx_during_weekend,
    case when extract(hour from customer.tx_datetime) <= 6 then 1 else 0 end as tx_during_night
    {%- for w in windows %},
    customer.customer_id_nb_tx_{{ w }}day_window,
    customer.customer_id_avg_amount_{{ w }}day_window
    {%- endfor %}
    {%- for w in windows %},
    terminal.terminal_id_nb_tx_{{ w }}day_window,
    terminal.terminal_id_risk_{{ w }}day_window
    {%- endfor %}
    {%- for w in windows %},
    coalesce(
        customer.tx_amount / nullif(customer.customer_id_avg_amount_{{ w }}day_window, 0), 1.0
    ) as customer_id_amount_ratio_{{ w }}day_window
    {%- endfor %}
    {%- for w in windows if w != windows | max %},
    coalesce(
        customer.customer_id_avg_amount_{{ w }}day_window
        / nullif(customer.customer_id_avg_amount_{{ windows | max }}day_window, 0),
        1.0
    ) as customer_id_amount_trend_{{ w }}day_window
    {%- endfor %}
from customer
left join terminal on terminal.transaction_id = customer.transaction_id
