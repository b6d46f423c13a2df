{#
  pit_key (macros/pit.sql) leaves room for 2^23 transactions in one second; a second with more
  would make the point-in-time frames inexact, so fail loudly instead.
#}
select
    cast(floor(extract(epoch from tx_datetime)) as bigint) as epoch_s,
    count(*) as transactions_in_second
from {{ source('raw', 'transactions') }}
group by cast(floor(extract(epoch from tx_datetime)) as bigint)
having count(*) >= {{ pit_tie_scale() // 2 }}
