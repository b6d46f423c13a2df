{#
  Use a model's custom schema verbatim (`features`, `staging`) instead of dbt's default
  `<target_schema>_<custom>`, so that every consumer reads `features.transaction_features` whatever
  the target.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
