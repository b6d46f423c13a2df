{#
  One row per transaction: the canonical columns, the calendar flags and every point-in-time
  feature, with the names of the Fraud-Detection-Handbook lower-cased (DESIGN.md §2). The left
  joins keep every transaction; the not_null tests in schema.yml catch a missing feature row.
#}
{%- set windows = var('window_days') -%}

with tx as (
    select transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud, partition_date
    from {{ ref('stg_transactions') }}
    {{ pit_output_filter() }}
),

customer as (
    select * from {{ ref('customer_spending_features') }}
    {{ pit_output_filter() }}
),

terminal as (
    select * from {{ ref('terminal_risk_features') }}
    {{ pit_output_filter() }}
)

select
    tx.transaction_id,
    tx.tx_datetime,
    tx.customer_id,
    tx.terminal_id,
    tx.tx_amount,
    tx.tx_fraud,
    tx.partition_date,
    case when extract(dow from tx.tx_datetime) in (0, 6) then 1 else 0 end as tx_during_weekend,
    case when extract(hour from tx.tx_datetime) <= 6 then 1 else 0 end as tx_during_night
    {%- for w in windows %},
    customer.customer_id_nb_tx_{{ w }}day_window,
    customer.customer_id_avg_amount_{{ w }}day_window
    {%- endfor %}
    {%- for w in windows %},
    terminal.terminal_id_nb_tx_{{ w }}day_window,
    terminal.terminal_id_risk_{{ w }}day_window
    {%- endfor %}
from tx
left join customer on customer.transaction_id = tx.transaction_id
left join terminal on terminal.transaction_id = tx.transaction_id
