{#
    Ledger conventions shared by the ledger model, the feature mart and the tests.
#}

{#
    Two money amounts closer than this are equal. The source keeps balances to the hundredth but
    posts interest rounded to the tenth: on the real PKDD'99 file about 3 % of interest credits
    leave their balance 0.10 off the previous balance plus the amount.
#}
{% macro ledger_tolerance() -%}
    0.10
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
    value - n cents .. value + n cents (n = 10 for 0.10); only a row whose own entry matches (an
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

{#
    The rows of `rows` (a relation or CTE with account_id, trans_date, signed_amount and
    balance_after) with how each links to the other transactions of its account and day, which
    come in no known order: its balance_before, the day's day_txn_count, day_balances_after and
    day_balances_before, has_same_day_predecessor (its balance before is another same-day row's
    balance after, within the tolerance) and has_same_day_successor (its balance after is another
    same-day row's balance before).
#}
{% macro same_day_links(rows) -%}
    select
        *,
        day_txn_count > 1
        and {{ matches_other('day_balances_after', 'balance_before', 'balance_after') }}
            as has_same_day_predecessor,
        day_txn_count > 1
        and {{ matches_other('day_balances_before', 'balance_after', 'balance_before') }}
            as has_same_day_successor
    from (
        select
            *,
            balance_after - signed_amount as balance_before,
            count(*) over same_day as day_txn_count,
            array_agg(balance_after) over same_day as day_balances_after,
            array_agg(balance_after - signed_amount) over same_day as day_balances_before
        from {{ rows }}
        window same_day as (partition by account_id, trans_date)
    ) as day_rows
{%- endmacro %}

{#
    One end of a day's chain: the `balance` (balance_before or balance_after) of the rows for
    which `is_chain_end` holds (nothing precedes them, or nothing follows them), when those agree
    within the tolerance; NULL when they do not (the day does not chain) or there are none. An
    aggregate over the day's rows: `over` is empty in a GROUP BY of (account_id, trans_date), or
    an OVER clause of the day's window.
#}
{% macro day_chain_balance(balance, is_chain_end, over='') -%}
    case
        when max({{ balance }}) filter (where {{ is_chain_end }}) {{ over }}
            - min({{ balance }}) filter (where {{ is_chain_end }}) {{ over }} <= {{ ledger_tolerance() }}
            then min({{ balance }}) filter (where {{ is_chain_end }}) {{ over }}
    end
{%- endmacro %}
