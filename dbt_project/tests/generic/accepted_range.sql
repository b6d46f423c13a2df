{#
  Fails on every row whose value lies outside [min_value, max_value] (either bound optional).
  Written here rather than taken from dbt_utils so the project needs no `dbt deps` (no network).
#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and (
    {%- if min_value is not none %} {{ column_name }} < {{ min_value }}{% else %} 1 = 0{% endif %}
    or
    {%- if max_value is not none %} {{ column_name }} > {{ max_value }}{% else %} 1 = 0{% endif %}
  )
{% endtest %}
