{#
  Canonical, typed transactions plus the two order columns of every point-in-time window:
  `epoch_s` (integer seconds) and `pit_key` (macros/pit.sql: strictly increasing in
  (tx_datetime, transaction_id)). Protected attributes (protected_*) are deliberately not
  carried: nothing downstream of this view can use them as features. No filter here: the feature
  models filter on partition_date, which passes through the rank window down to the raw scan.
#}
with typed as (
    select
        cast(transaction_id as bigint) as transaction_id,
        cast(tx_datetime as timestamp) as tx_datetime,
        cast(customer_id as bigint) as customer_id,
        cast(terminal_id as bigint) as terminal_id,
        cast(tx_amount as double precision) as tx_amount,
        cast(tx_fraud as integer) as tx_fraud,
        cast(tx_fraud_scenario as integer) as tx_fraud_scenario,
        cast(partition_date as date) as partition_date,
        cast(floor(extract(epoch from tx_datetime)) as bigint) as epoch_s
    from {{ source('raw', 'transactions') }}
)

select
    typed.*,
    {{ pit_order_key() }} as pit_key
from typed
