{#
  Customer spending behaviour: for each transaction at time t, the number and mean amount of the
  customer's transactions with tx_datetime in (t - w days, t], the transaction itself included and
  later transactions of the same second excluded (order by tx_datetime, then transaction_id).
  The transaction's own columns ride along, so transaction_features needs a single join.
#}
{%- set windows = var('window_days') -%}

with history as (
    select
        transaction_id, tx_datetime, partition_date, customer_id, terminal_id, tx_amount,
        tx_fraud, pit_key
    from {{ ref('stg_transactions') }}
    {{ pit_history_filter(windows | max) }}
),

windowed as (
    select
        transaction_id,
        tx_datetime,
        partition_date,
        customer_id,
        terminal_id,
        tx_amount,
        tx_fraud
        {%- for w in windows %},
        count(*) over (
            partition by customer_id order by pit_key {{ pit_frame(0, w) }}
        ) as nb_tx_{{ w }},
        sum(tx_amount) over (
            partition by customer_id order by pit_key {{ pit_frame(0, w) }}
        ) as sum_amount_{{ w }}
        {%- endfor %}
    from history
)

select
    transaction_id,
    tx_datetime,
    partition_date,
    customer_id,
    terminal_id,
    tx_amount,
    tx_fraud
    {%- for w in windows %},
    nb_tx_{{ w }} as customer_id_nb_tx_{{ w }}day_window,
    sum_amount_{{ w }} / nb_tx_{{ w }} as customer_id_avg_amount_{{ w }}day_window
    {%- endfor %}
from windowed
{{ pit_output_filter() }}
