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
                       is expected in the months of its loan's term instead (the month after the
                       grant, for the loan's duration): the order outlives a repaid loan, and the
                       loan dates it, so it is expected there even if it was never paid (last
                       seen NULL). An order of another kind never paid is not reported: nothing
                       dates it, and an order in the snapshot that never ran is most plausibly one
                       set up to start later, not a payment that failed to arrive.
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

-- Every month in which the account was active, per standing order: the order's payment in it,
-- if any, the order's first payment month and the last month before it with a payment.
order_account_months as (
    select
        orders.order_id,
        orders.account_id,
        orders.payee_bank,
        orders.payee_account,
        orders.amount,
        orders.category,
        account_months.trans_month as expected_month,
        counterparty_months.trans_month as seen_month,
        min(counterparty_months.trans_month) over (partition by orders.order_id) as first_seen_month,
        max(counterparty_months.trans_month) over (
            partition by orders.order_id order by account_months.trans_month
            rows between unbounded preceding and 1 preceding
        ) as last_seen_month
    from orders
    inner join account_months
        on orders.account_id = account_months.account_id
    left join counterparty_months
        on orders.account_id = counterparty_months.account_id
        and counterparty_months.direction = -1
        and orders.payee_bank = counterparty_months.counterparty_bank
        and orders.payee_account = counterparty_months.counterparty_account
        and account_months.trans_month = counterparty_months.trans_month
),

-- The months an order was expected in: those after its first payment; for a loan-payment order
-- those of its loan's term instead, whether or not it was ever paid (the loan dates it).
order_months as (
    select order_account_months.*
    from order_account_months
    left join loan_terms
        on order_account_months.category = 'loan_payment'
        and order_account_months.account_id = loan_terms.account_id
    where
        case
            when order_account_months.category = 'loan_payment'
                then order_account_months.expected_month
                    between loan_terms.first_due_month and loan_terms.last_due_month
            else order_account_months.expected_month > order_account_months.first_seen_month
        end
),

missing_standing_orders as (
    select
        order_months.account_id,
        order_months.expected_month as missing_month,
        'standing_order' as expectation_source,
        order_months.order_id,
        -1 as direction,
        order_months.payee_bank as counterparty_bank,
        order_months.payee_account as counterparty_account,
        order_months.category,
        order_months.amount as expected_amount,
        order_months.last_seen_month,
        coalesce(counterparty_streaks.streak_months, 0) as months_seen_in_streak
    from order_months
    left join counterparty_streaks
        on order_months.account_id = counterparty_streaks.account_id
        and counterparty_streaks.direction = -1
        and order_months.payee_bank = counterparty_streaks.counterparty_bank
        and order_months.payee_account = counterparty_streaks.counterparty_account
        and order_months.last_seen_month = counterparty_streaks.trans_month
    where order_months.seen_month is null
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
