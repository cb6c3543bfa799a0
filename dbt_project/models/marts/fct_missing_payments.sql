{{
    config(
        materialized='table',
        indexes=[
            {'columns': ['missing_payment_id'], 'unique': True},
            {'columns': ['account_id', 'missing_month']},
        ],
        pre_hook="set local work_mem = '256MB'",
    )
}}

{#
    Per account and month, the recurring payments that were expected and did not arrive.

    A month is judged only when the account has at least one transaction in it (its ledger covers
    the month); a payment is "seen" in a month when a transaction of the account with that
    counterparty (bank, account) and direction is booked in it, whatever its amount.

    standing_order     an order of the order relation (a snapshot of the end of the data, without
                       dates) is expected every month after the first month a payment to its payee
                       was seen; every such month without one is reported. A loan-payment order
                       is expected only within its loan's term (the month after the grant, for
                       the loan's duration), since the order outlives a repaid loan.
    recurring_pattern  a counterparty the account paid (or was paid by) in at least 3 consecutive
                       months is expected in the month after the streak; the first month it
                       breaks is reported (payees of standing orders are left to those).
#}

with

transactions as not materialized (
    select * from {{ ref('stg_transactions') }}
),

orders as (
    select * from {{ ref('stg_orders') }}
),

loans as (
    select * from {{ ref('stg_loans') }}
),

-- A loan's repayments are due from the month after it was granted, for its duration.
loan_terms as (
    select
        account_id,
        (date_trunc('month', granted_date) + interval '1 month')::date as first_due_month,
        (date_trunc('month', granted_date) + make_interval(months => duration_months::int))::date as last_due_month
    from loans
),

account_months as (
    select distinct
        account_id,
        trans_month
    from transactions
),

counterparty_months as (
    select
        account_id,
        direction,
        counterparty_bank,
        counterparty_account,
        trans_month,
        sum(amount) as month_amount,
        mode() within group (order by category) as category,
        (extract(year from trans_month) * 12 + extract(month from trans_month))::int as month_index
    from transactions
    where has_counterparty
    group by account_id, direction, counterparty_bank, counterparty_account, trans_month
),

-- Consecutive months a counterparty was seen: an island of months shares month_index minus its
-- rank; the streak is the position in the island.
counterparty_islands as (
    select
        *,
        lead(trans_month) over counterparty_order as next_seen_month,
        month_index - row_number() over counterparty_order as island
    from counterparty_months
    window counterparty_order as (
        partition by account_id, direction, counterparty_bank, counterparty_account
        order by trans_month
    )
),

counterparty_streaks as (
    select
        *,
        row_number() over (
            partition by account_id, direction, counterparty_bank, counterparty_account, island
            order by trans_month
        ) as streak_months
    from counterparty_islands
),

order_payees as (
    select
        orders.order_id,
        orders.account_id,
        orders.payee_bank,
        orders.payee_account,
        orders.amount,
        orders.category,
        min(counterparty_months.trans_month) as first_seen_month
    from orders
    inner join counterparty_months
        on orders.account_id = counterparty_months.account_id
        and counterparty_months.direction = -1
        and orders.payee_bank = counterparty_months.counterparty_bank
        and orders.payee_account = counterparty_months.counterparty_account
    group by
        orders.order_id, orders.account_id, orders.payee_bank, orders.payee_account, orders.amount,
        orders.category
),

-- Every month after the first payment in which the account was active, with the payment if any.
order_months as (
    select
        order_payees.*,
        account_months.trans_month as expected_month,
        counterparty_months.trans_month as seen_month
    from order_payees
    inner join account_months
        on order_payees.account_id = account_months.account_id
        and account_months.trans_month > order_payees.first_seen_month
    left join loan_terms
        on order_payees.category = 'loan_payment'
        and order_payees.account_id = loan_terms.account_id
    left join counterparty_months
        on order_payees.account_id = counterparty_months.account_id
        and counterparty_months.direction = -1
        and order_payees.payee_bank = counterparty_months.counterparty_bank
        and order_payees.payee_account = counterparty_months.counterparty_account
        and account_months.trans_month = counterparty_months.trans_month
    where
        order_payees.category <> 'loan_payment'
        or account_months.trans_month between loan_terms.first_due_month and loan_terms.last_due_month
),

order_months_last_seen as (
    select
        *,
        coalesce(
            max(seen_month) over (
                partition by order_id order by expected_month
                rows between unbounded preceding and 1 preceding
            ),
            first_seen_month
        ) as last_seen_month
    from order_months
),

missing_standing_orders as (
    select
        order_months_last_seen.account_id,
        order_months_last_seen.expected_month as missing_month,
        'standing_order' as expectation_source,
        order_months_last_seen.order_id,
        -1 as direction,
        order_months_last_seen.payee_bank as counterparty_bank,
        order_months_last_seen.payee_account as counterparty_account,
        order_months_last_seen.category,
        order_months_last_seen.amount as expected_amount,
        order_months_last_seen.last_seen_month,
        counterparty_streaks.streak_months as months_seen_in_streak
    from order_months_last_seen
    inner join counterparty_streaks
        on order_months_last_seen.account_id = counterparty_streaks.account_id
        and counterparty_streaks.direction = -1
        and order_months_last_seen.payee_bank = counterparty_streaks.counterparty_bank
        and order_months_last_seen.payee_account = counterparty_streaks.counterparty_account
        and order_months_last_seen.last_seen_month = counterparty_streaks.trans_month
    where order_months_last_seen.seen_month is null
),

pattern_breaks as (
    select
        counterparty_streaks.*,
        (counterparty_streaks.trans_month + interval '1 month')::date as expected_month,
        round(avg(counterparty_streaks.month_amount) over (
            partition by
                counterparty_streaks.account_id, counterparty_streaks.direction,
                counterparty_streaks.counterparty_bank, counterparty_streaks.counterparty_account
            order by counterparty_streaks.trans_month
            rows between 2 preceding and current row
        ), 2) as expected_amount
    from counterparty_streaks
),

missing_patterns as (
    select
        pattern_breaks.account_id,
        pattern_breaks.expected_month as missing_month,
        'recurring_pattern' as expectation_source,
        null::bigint as order_id,
        pattern_breaks.direction,
        pattern_breaks.counterparty_bank,
        pattern_breaks.counterparty_account,
        pattern_breaks.category,
        pattern_breaks.expected_amount,
        pattern_breaks.trans_month as last_seen_month,
        pattern_breaks.streak_months as months_seen_in_streak
    from pattern_breaks
    inner join account_months
        on pattern_breaks.account_id = account_months.account_id
        and pattern_breaks.expected_month = account_months.trans_month
    where
        pattern_breaks.streak_months >= 3
        and pattern_breaks.next_seen_month is distinct from pattern_breaks.expected_month
        and not exists (
            select 1
            from orders
            where
                orders.account_id = pattern_breaks.account_id
                and pattern_breaks.direction = -1
                and orders.payee_bank = pattern_breaks.counterparty_bank
                and orders.payee_account = pattern_breaks.counterparty_account
        )
),

missing as (
    select * from missing_standing_orders
    union all
    select * from missing_patterns
),

final as (
    select
        md5(concat_ws(
            '|', expectation_source, account_id, missing_month, order_id, direction,
            counterparty_bank, counterparty_account
        )) as missing_payment_id,
        account_id,
        missing_month,
        expectation_source,
        order_id,
        case when direction = 1 then 'incoming' else 'outgoing' end as direction,
        counterparty_bank,
        counterparty_account,
        category,
        expected_amount,
        last_seen_month,
        (
            (extract(year from missing_month) * 12 + extract(month from missing_month))
            - (extract(year from last_seen_month) * 12 + extract(month from last_seen_month))
        )::int as months_since_last_seen,
        months_seen_in_streak
    from missing
)

select * from final
