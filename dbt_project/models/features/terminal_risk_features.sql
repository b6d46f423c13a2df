{#
  Terminal risk: for each transaction at time t, the number of the terminal's transactions with
  tx_datetime in (t - d - w days, t - d] and the share of them that were fraud (0 when there are
  none). d is the label delay: labels younger than d days are not known at scoring time, so they
  are never read.
#}
{%- set windows = var('window_days') -%}
{%- set delay = var('label_delay_days') | int -%}

with history as (
    select transaction_id, tx_datetime, partition_date, terminal_id, tx_fraud, pit_key
    from {{ ref('stg_transactions') }}
    {{ pit_history_filter((windows | max) + delay) }}
),

windowed as (
    select
        transaction_id,
        tx_datetime,
        partition_date,
        terminal_id
        {%- for w in windows %},
        {{ pit_packed_count_and_frauds(
            "partition by terminal_id order by pit_key " ~ pit_frame(delay, w)) }} as packed_{{ w }}
        {%- endfor %}
    from history
),

counted as (
    select
        transaction_id,
        tx_datetime,
        partition_date,
        terminal_id
        {%- for w in windows %},
        {{ pit_unpack_count('packed_' ~ w) }} as nb_tx_{{ w }},
        {{ pit_unpack_frauds('packed_' ~ w) }} as nb_fraud_{{ w }}
        {%- endfor %}
    from windowed
    {{ pit_output_filter() }}
)

select
    transaction_id,
    tx_datetime,
    partition_date,
    terminal_id
    {%- for w in windows %},
    nb_tx_{{ w }} as terminal_id_nb_tx_{{ w }}day_window,
    case
        when nb_tx_{{ w }} = 0 then 0.0
        else cast(nb_fraud_{{ w }} as double precision) / nb_tx_{{ w }}
    end as terminal_id_risk_{{ w }}day_window
    {%- endfor %}
from counted
