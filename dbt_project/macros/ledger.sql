{#
    Ledger conventions shared by the ledger model, the feature mart and the tests.
#}

{# Two money amounts closer than this are equal: the source rounds balances to the hundredth. #}
{% macro ledger_tolerance() -%}
    0.01
{%- endmacro %}

{#
    How many of `values_array` lie within the tolerance of `value`, not counting the row itself
    when its own entry of the array (`self_value`) matches.
#}
{% macro count_matches_excluding_self(values_array, value, self_value) -%}
    (
        (select count(*) from unnest({{ values_array }}) as candidate
         where abs(candidate - {{ value }}) <= {{ ledger_tolerance() }})
        - case when abs({{ self_value }} - {{ value }}) <= {{ ledger_tolerance() }} then 1 else 0 end
    )
{%- endmacro %}

{#
    Whether `value` lies within the tolerance of an entry of `values_array` other than the row's
    own (`self_value`). Money has two decimals, so "within the tolerance" is a membership test of
    value - n cents .. value + n cents (n = 1 for 0.01); only a row whose own entry matches (an
    amount within the tolerance of zero) needs the slower count that leaves it out.
#}
{% macro matches_other(values_array, value, self_value) -%}
    {%- set cents = ((ledger_tolerance() | trim | float) * 100) | round | int -%}
    case
        when abs({{ self_value }} - {{ value }}) > {{ ledger_tolerance() }} then (
            {%- for offset in range(-cents, cents + 1) %}
            {{ value }} {{ '%+.2f' | format(offset / 100) }} = any({{ values_array }}){{ " or" if not loop.last }}
            {%- endfor %}
        )
        else {{ count_matches_excluding_self(values_array, value, self_value) }} > 0
    end
{%- endmacro %}
