{#
    dbt's `get_where_subquery` (the relation a generic test reads, filtered by its `where`
    config), extended with the placeholder `__feature_window__`: it stands for
    `feature_window_condition('trans_date')`, the run's window of the feature mart. A `where`
    config is rendered while parsing, so it cannot name the window itself without making dbt
    re-parse the file for every window; this macro is resolved when the test runs.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- if '__feature_window__' in where -%}
        {%- set where = where | replace('__feature_window__', feature_window_condition('trans_date')) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}
