{#- Use the layer name (staging, intermediate, marts) as the schema, not "<target>_<layer>": analysts query
    `marts.dim_items`, and the Python assets read the same names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
