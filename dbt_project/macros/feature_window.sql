{#
    The window an incremental run of the feature marts (re)computes, from the vars `min_date` and
    `max_date`: ISO dates (a datetime's date part is used), the window is [min_date, max_date),
    start inclusive, end exclusive. Either may be absent: no var, no bound (no vars: every month).
    A bound without its var comes from the environment variable ADS_FEATURES_MIN_DATE or
    ADS_FEATURES_MAX_DATE (see `window_bound`).

    Returns a dict of SQL date literals:
      min_date       first day of the window
      max_date       first day after the window
      context_start  first day of the lookback the window's features read: 90 days and the 3
                     previous calendar months before min_date, whichever is earlier
      windowed       whether any var was given
#}
{% macro feature_window() %}
    {%- set lookback_days = 90 -%}
    {%- set lookback_months = 3 -%}
    {%- set min_date = _parse_window_date('min_date', window_bound('min_date')) -%}
    {%- set max_date = _parse_window_date('max_date', window_bound('max_date')) -%}
    {%- set windowed = min_date is not none or max_date is not none -%}
    {%- if min_date is none -%}
        {%- set min_date = modules.datetime.date(1000, 1, 1) -%}
    {%- endif -%}
    {%- if max_date is none -%}
        {%- set max_date = modules.datetime.date(9999, 1, 1) -%}
    {%- endif -%}
    {%- if max_date <= min_date -%}
        {{ exceptions.raise_compiler_error("max_date (" ~ max_date ~ ") must be after min_date (" ~ min_date ~ "): the window is [min_date, max_date)") }}
    {%- endif -%}
    {%- set by_days = min_date - modules.datetime.timedelta(days=lookback_days) -%}
    {%- set month_index = min_date.year * 12 + min_date.month - 1 - lookback_months -%}
    {%- set by_months = modules.datetime.date(month_index // 12, month_index % 12 + 1, 1) -%}
    {%- set context_start = [by_days, by_months] | min -%}
    {{ return({
        "min_date": "date '" ~ min_date.isoformat() ~ "'",
        "max_date": "date '" ~ max_date.isoformat() ~ "'",
        "context_start": "date '" ~ context_start.isoformat() ~ "'",
        "windowed": windowed,
    }) }}
{% endmacro %}

{#
    One bound of the window as given: the var `name` (min_date or max_date) when set, else the
    environment variable ADS_FEATURES_<NAME> ('' when unset). Dagster passes its partition window
    through the environment, read only when executing: the window shapes no parse-time attribute
    (refs, configs), and an environment variable read while parsing makes dbt re-parse every
    file that read it whenever its value changes (any new --vars value: the whole project).
#}
{% macro window_bound(name) %}
    {%- set given = var(name, none) -%}
    {%- if given is none and execute -%}
        {%- set given = env_var('ADS_FEATURES_' ~ (name | upper), '') -%}
    {%- endif -%}
    {{ return(given) }}
{% endmacro %}

{% macro _parse_window_date(name, value) %}
    {%- if value is none or (value | string | trim) in ('', 'None', 'none', 'null') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = (value | string | trim)[:10] -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be an ISO date YYYY-MM-DD, got " ~ value) }}
    {%- endif -%}
    {{ return(modules.datetime.date(text[:4] | int, text[5:7] | int, text[8:10] | int)) }}
{% endmacro %}

{#
    Pre-hook of the incremental feature mart: delete the window's rows before they are inserted
    again, so a transaction that left the raw data in that window leaves the mart too.
#}
{% macro delete_feature_window() %}
    {%- if is_incremental() -%}
        {%- set window = feature_window() -%}
        delete from {{ this }}
        where trans_date >= {{ window.min_date }} and trans_date < {{ window.max_date }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}

{# SQL condition: `column` lies in the window [min_date, max_date) of the vars (true without vars). #}
{% macro feature_window_condition(column='trans_date') %}
    {%- set window = feature_window() -%}
    {{ column }} >= {{ window.min_date }} and {{ column }} < {{ window.max_date }}
{%- endmacro %}
