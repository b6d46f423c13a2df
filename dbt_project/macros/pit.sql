{#
  Point-in-time helpers shared by the feature models (docs/architecture.md §2).

  Ordering. Every window is ordered by `pit_key` (computed once, in stg_transactions), a BIGINT
  strictly increasing in (tx_datetime, transaction_id):

      pit_key = epoch_s * 2^24 + (rank of transaction_id among all transactions of that second)

  The rank is below 2^23 (a dbt test guards it), so a frame "RANGE BETWEEN W*2^24 - 2^23 PRECEDING"
  reaches back exactly to the seconds > t - W (all of second t - W is excluded whatever the ranks),
  and CURRENT ROW ends at the transaction itself: later transactions of the same second are never
  seen. This is a plain numeric RANGE frame, portable to PostgreSQL, and it costs one window (the
  rank) for the whole build instead of a tie correction per feature.
#}

{% macro pit_tie_scale() %}{{ return(16777216) }}{% endmacro %}

{#
  The rank is taken within (partition_date, epoch_s): the same as within the second, since the
  second determines the day, but a filter on partition_date then passes through the window down
  to the table scan, which keeps an incremental day as cheap as the first one.
#}
{% macro pit_order_key() -%}
    epoch_s * {{ pit_tie_scale() }}
        + row_number() over (partition by partition_date, epoch_s order by transaction_id) - 1
{%- endmacro %}

{#
  Count and fraud count of one frame in a single window aggregate: each row adds
  1 + tx_fraud * 2^32, so the frame sum is count + frauds * 2^32 (exact integer arithmetic while a
  frame holds fewer than 2^31 rows; tx_fraud is tested to be 0/1). One aggregate instead of two
  makes the terminal windows markedly cheaper; pit_unpack_* decode it.
#}
{% macro pit_packed_count_and_frauds(frame) -%}
    coalesce(sum(1 + cast(tx_fraud as bigint) * 4294967296) over ({{ frame }}), 0)
{%- endmacro %}

{% macro pit_unpack_count(packed) -%}
    cast(mod({{ packed }}, 4294967296) as bigint)
{%- endmacro %}

{% macro pit_unpack_frauds(packed) -%}
    cast(({{ packed }} - mod({{ packed }}, 4294967296)) / 4294967296 as bigint)
{%- endmacro %}

{#
  The frame for a window of `window_days` ending `delay_days` before the current transaction:
  tx_datetime in (t - delay - window, t - delay]. With delay 0 the frame ends at the current row,
  so a transaction sees itself and earlier transactions of its own second, never later ones.
#}
{% macro pit_frame(delay_days, window_days) -%}
    {%- set scale = pit_tie_scale() -%}
    {%- set half = scale // 2 -%}
    {%- set lower = (delay_days + window_days) * 86400 * scale - half -%}
    range between {{ lower }} preceding and
    {%- if delay_days == 0 %} current row
    {%- else %} {{ delay_days * 86400 * scale - half }} preceding
    {%- endif -%}
{%- endmacro %}

{#
  The incremental range [start, end) as ISO dates: the vars `start_date` / `end_date`, else the
  environment variables FIN_FEATURES_START_DATE / FIN_FEATURES_END_DATE (what the Dagster assets
  set). The environment is read only when executing (`execute`), never while parsing: vars given on
  the command line change dbt's parse state and a changed env_var() seen at parse time re-parses
  the files using it, so either way every run with a new range would re-parse the project; read at
  execution, a new range reuses partial_parse.msgpack.
#}
{% macro pit_range() -%}
    {%- set start_raw = var('start_date', '') | string | trim -%}
    {%- set end_raw = var('end_date', '') | string | trim -%}
    {%- if execute and start_raw in ('', 'None') and end_raw in ('', 'None') -%}
        {%- set start_raw = env_var('FIN_FEATURES_START_DATE', '') | trim -%}
        {%- set end_raw = env_var('FIN_FEATURES_END_DATE', '') | trim -%}
    {%- endif -%}
    {%- set start = none -%}
    {%- set end = none -%}
    {%- if start_raw not in ('', 'None') -%}
        {%- set start = modules.datetime.date.fromisoformat(start_raw) -%}
    {%- endif -%}
    {%- if end_raw not in ('', 'None') -%}
        {%- set end = modules.datetime.date.fromisoformat(end_raw) -%}
    {%- endif -%}
    {%- if start is not none and end is not none and start >= end -%}
        {{ exceptions.raise_compiler_error(
            "start_date " ~ start ~ " must be before end_date " ~ end ~ " (end is exclusive)") }}
    {%- endif -%}
    {{ return({'start': start, 'end': end}) }}
{%- endmacro %}

{% macro pit_date(day) -%}
    cast('{{ day.isoformat() }}' as date)
{%- endmacro %}

{#
  Rows a model must read: days [start - lookback_days, end). The lookback is the longest window
  plus the label delay, so a day costs the same however long the history is. The filter is on
  partition_date (the day of tx_datetime, tested in stg_transactions): it reaches the scan of
  raw.transactions (zone maps in DuckDB, partition pruning in PostgreSQL).
#}
{% macro pit_history_filter(lookback_days) -%}
    {%- set r = pit_range() -%}
    where 1 = 1
    {%- if r.start is not none %}
        and partition_date >= {{ pit_date(r.start - modules.datetime.timedelta(days=lookback_days)) }}
    {%- endif %}
    {%- if r.end is not none %}
        and partition_date < {{ pit_date(r.end) }}
    {%- endif %}
{%- endmacro %}

{# Rows a model writes: days [start, end). #}
{% macro pit_output_filter() -%}
    {{ pit_history_filter(0) }}
{%- endmacro %}

{#
  Pre-hook of the incremental feature models: empty the target range first, so that re-running a
  day replaces it even when the day now has fewer (or no) transactions. delete+insert on
  partition_date then inserts the new rows.
#}
{% macro pit_delete_range() -%}
    {%- set r = pit_range() -%}
    {%- if is_incremental() and (r.start is not none or r.end is not none) -%}
        delete from {{ this }} where 1 = 1
        {%- if r.start is not none %} and partition_date >= {{ pit_date(r.start) }}{% endif %}
        {%- if r.end is not none %} and partition_date < {{ pit_date(r.end) }}{% endif %}
    {%- endif -%}
{%- endmacro %}
