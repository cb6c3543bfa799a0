{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='trans_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['trans_id'], 'unique': True},
            {'columns': ['account_id', 'trans_date']},
            {'columns': ['trans_date']},
        ],
        pre_hook=[
            "set local work_mem = '256MB'",
            "set local enable_mergejoin = off",
            "{{ delete_feature_window() }}",
        ],
    )
}}

{#
    One row per transaction with the anomaly-detection features; the yml documents every column.

    Incremental by date window: the vars min_date/max_date select the window [min_date, max_date)
    (no vars: everything); a run deletes the window's rows and inserts them again. A row's
    features read the account's transactions of earlier days only, so the window's rows are
    computed over a context that starts at `context_start` (90 days and 3 calendar months before
    the window) plus summaries of everything before it: a row comes out the same whichever
    window computes it.
#}

{%- set window = feature_window() -%}
{%- set tol = ledger_tolerance() -%}

with

ledger as (
    select * from {{ ref('int_account_ledger') }}
),

transactions as not materialized (
    select * from {{ ref('stg_transactions') }}
),

accounts as (
    select * from {{ ref('int_accounts_enriched') }}
),

-- The window and its lookback.
context_rows as (
    select *
    from ledger
    where trans_date >= {{ window.context_start }} and trans_date < {{ window.max_date }}
),

-- Everything before the context, for the features that look back without limit (empty in a
-- build without vars). Not materialized: each summary reads the raw table by date.
history as not materialized (
    select
        account_id,
        trans_date,
        direction,
        amount,
        signed_amount,
        balance_after,
        counterparty_bank,
        counterparty_account,
        has_counterparty
    from transactions
    where trans_date < {{ window.context_start }}
),

-- The counterparties of the window's rows: the only ones whose history matters.
window_counterparties as (
    select distinct
        account_id,
        direction,
        counterparty_bank,
        counterparty_account
    from context_rows
    where trans_date >= {{ window.min_date }} and has_counterparty
),

-- Hashed, not sorted: a semi-join to the window's counterparties keeps the aggregate's estimate.
history_counterparty_amounts as (
    select
        account_id,
        direction,
        counterparty_bank,
        counterparty_account,
        amount,
        count(*) as txn_count
    from history
    where
        has_counterparty
        and (account_id, direction, counterparty_bank, counterparty_account) in (
            select account_id, direction, counterparty_bank, counterparty_account
            from window_counterparties
        )
    group by account_id, direction, counterparty_bank, counterparty_account, amount
),

history_counterparties as (
    select
        account_id,
        direction,
        counterparty_bank,
        counterparty_account,
        sum(txn_count) as txn_count
    from history_counterparty_amounts
    group by account_id, direction, counterparty_bank, counterparty_account
),

-- Per account, in one pass over the history: its largest payment, and its last day before the
-- context, the previous day of the context's first day, whose chain end (the balance after of
-- the row no same-day row follows) the context continues. The rows of that day come from the
-- month before the context, or, for an account idle then, by their date.
history_accounts as materialized (
    select
        account_id,
        max(amount) filter (where has_counterparty and direction = -1) as max_payment_amount,
        max(trans_date) as last_date
    from history
    group by account_id
),

history_last_days as (
    select account_id, last_date as trans_date
    from history_accounts
),

pre_context_rows as (
    select history.account_id, history.trans_date, history.signed_amount, history.balance_after
    from history
    inner join history_last_days
        on history.account_id = history_last_days.account_id
        and history.trans_date = history_last_days.trans_date
    where history.trans_date >= {{ window.context_start }} - 31
    union all
    select idle.account_id, idle.trans_date, idle.signed_amount, idle.balance_after
    from history_last_days
    cross join lateral (
        select transactions.*
        from transactions
        where
            transactions.account_id = history_last_days.account_id
            and transactions.trans_date = history_last_days.trans_date
    ) as idle
    where history_last_days.trans_date < {{ window.context_start }} - 31
),

pre_context_linked as (
    {{ same_day_links('pre_context_rows') }}
),

pre_context_days as (
    select
        account_id,
        trans_date,
        true as is_pre_context,
        count(*) as txn_count,
        sum(signed_amount) as net_amount,
        0::numeric as spend_amount,
        null::numeric as max_payment_amount,
        {{ day_chain_balance('balance_after', 'not has_same_day_successor') }} as end_balance,
        null::numeric as start_balance,
        min(balance_after) filter (where not has_same_day_successor) as end_low,
        max(balance_after) filter (where not has_same_day_successor) as end_high
    from pre_context_linked
    group by account_id, trans_date
),

days as (
    select * from pre_context_days
    union all
    select
        account_id,
        trans_date,
        false as is_pre_context,
        day_txn_count as txn_count,
        day_net_amount as net_amount,
        day_spend_amount as spend_amount,
        day_max_payment_amount as max_payment_amount,
        day_chain_end_balance as end_balance,
        day_chain_start_balance as start_balance,
        day_chain_end_low as end_low,
        day_chain_end_high as end_high
    from context_rows
    where is_first_of_day
),

-- The ledger's level: a day's chain end minus the running sum of amounts, constant over a
-- consistent ledger. A day is confirmed when its level equals the previous day's (both chain
-- ends agree with the amounts between them); the account's first day, when its chain end is
-- unambiguous, sets the first level.
days_levelled as (
    select
        *,
        lag(trans_date) over account_days as previous_date,
        lag(end_low) over account_days as previous_end_low,
        lag(end_high) over account_days as previous_end_high,
        end_balance - sum(net_amount) over (account_days rows unbounded preceding) as level,
        sum(net_amount) over (account_days rows unbounded preceding) - net_amount
            as previous_cumulative_net
    from days
    window account_days as (partition by account_id order by trans_date)
),

days_confirmed as (
    select
        *,
        lag(level) over account_days as previous_level,
        case
            when previous_date is null then end_balance is not null
            else coalesce(abs(level - lag(level) over account_days) <= {{ tol }}, false)
        end as is_confirmed
    from days_levelled
    window account_days as (partition by account_id order by trans_date)
),

-- Per day: the expected opening balance (the level of the latest confirmed day of the last 90
-- days, else the previous day's, plus the running sum; the account's first day opens at its own
-- chain start) and the day-level behaviour, all over days strictly before the day except the
-- day's own totals and the month to date, which include the whole day.
day_features as (
    select
        account_id,
        trans_date,
        is_pre_context,
        previous_date,
        previous_level,
        previous_cumulative_net,
        previous_end_low,
        previous_end_high,
        start_balance,
        net_amount,
        txn_count as txn_count_day,
        trans_date - previous_date as days_since_previous_txn,
        max(array[(trans_date - date '1970-01-01')::numeric, level]) filter (where is_confirmed)
            over (account_days rows between unbounded preceding and 1 preceding) as last_confirmed,
        sum(txn_count) over (
            account_days range between interval '6 days' preceding and current row
        ) as txn_count_7d,
        spend_amount as day_spend,
        avg(spend_amount) filter (where spend_amount > 0) over past_90_days as usual_daily_spend_90d,
        max(spend_amount) over past_90_days as max_daily_spend_90d,
        sum(spend_amount) over (
            partition by account_id, date_trunc('month', trans_date)
            order by trans_date rows unbounded preceding
        ) as month_spend_to_date,
        max(max_payment_amount) filter (where not is_pre_context)
            over (account_days rows between unbounded preceding and 1 preceding)
            as context_max_previous_payment
    from days_confirmed
    window
        account_days as (partition by account_id order by trans_date),
        past_90_days as (
            partition by account_id order by trans_date
            range between interval '90 days' preceding and interval '1 day' preceding
        )
),

days_opened as (
    select
        *,
        case
            when previous_date is null then start_balance
            else coalesce(
                coalesce(
                    case
                        when last_confirmed[1] >= (trans_date - date '1970-01-01') - 90
                            then last_confirmed[2]
                    end,
                    previous_level
                ) + previous_cumulative_net,
                start_balance
            )
        end as opening_balance
    from day_features
    where trans_date >= {{ window.min_date }} and not is_pre_context
),

months as (
    select
        account_id,
        date_trunc('month', trans_date)::date as trans_month,
        sum(spend_amount) as spend
    from days
    where not is_pre_context
    group by account_id, date_trunc('month', trans_date)
),

month_features as (
    select
        account_id,
        trans_month,
        coalesce(sum(spend) over (
            partition by account_id order by trans_month
            range between interval '3 months' preceding and interval '1 month' preceding
        ), 0) as spend_previous_3_months
    from months
),

-- Per account and transaction kind, the amounts of the 90 days before the transaction's day.
kind_windows as (
    select
        trans_id,
        trans_date,
        array_agg(amount) over (
            partition by account_id, transaction_kind order by trans_date
            range between interval '90 days' preceding and interval '1 day' preceding
        ) as kind_amounts_90d
    from context_rows
),

kind_stats as (
    select
        kind_windows.trans_id,
        prior.*
    from kind_windows
    cross join lateral (
        select
            count(*) as kind_txn_count_90d,
            avg(prior_amount) as kind_amount_mean_90d,
            percentile_cont(0.5) within group (order by prior_amount::float8)::numeric
                as kind_amount_median_90d,
            stddev_samp(prior_amount) as kind_amount_std_90d,
            max(prior_amount) as kind_amount_max_90d
        from unnest(kind_windows.kind_amounts_90d) as prior_amount
    ) as prior
    where kind_windows.trans_date >= {{ window.min_date }}
),

counterparty_stats as (
    select
        trans_id,
        count(*) over (
            partition by account_id, direction, counterparty_bank, counterparty_account
            order by trans_date
            range between unbounded preceding and interval '1 day' preceding
        ) as context_previous_count,
        count(*) over (
            partition by account_id, direction, counterparty_bank, counterparty_account, amount
            order by trans_date
            range between unbounded preceding and interval '1 day' preceding
        ) as context_previous_amount_count
    from context_rows
    where has_counterparty
),

window_rows as (
    select *
    from context_rows
    where trans_date >= {{ window.min_date }}
),

-- Ledger integrity: a row is consistent when a same-day row or the day's opening can precede it,
-- or a same-day row or the day's expected closing can follow it (least() skips the NULL candidates
-- of an account's first day or an ambiguous previous day). A day may open at the expected
-- opening or at the previous day's posted closing (either candidate when that day's end is
-- ambiguous): after an amount typed wrong under a right balance, or a posting missing, the
-- posted balances go on from the new level, and the next day is no break.
row_links as (
    select
        window_rows.trans_id,
        window_rows.account_id,
        window_rows.trans_date,
        window_rows.balance_before,
        window_rows.balance_after,
        window_rows.day_chain_end_balance,
        days_opened.opening_balance,
        days_opened.opening_balance + days_opened.net_amount as expected_closing,
        window_rows.has_same_day_predecessor
        or coalesce(
            least(
                abs(window_rows.balance_before - days_opened.opening_balance),
                abs(window_rows.balance_before - days_opened.previous_end_low),
                abs(window_rows.balance_before - days_opened.previous_end_high)
            ) <= {{ tol }},
            false
        ) as is_linked_before,
        window_rows.has_same_day_successor
        or coalesce(
            least(
                abs(window_rows.balance_after - days_opened.net_amount - days_opened.opening_balance),
                abs(window_rows.balance_after - days_opened.net_amount - days_opened.previous_end_low),
                abs(window_rows.balance_after - days_opened.net_amount - days_opened.previous_end_high)
            ) <= {{ tol }},
            false
        ) as is_linked_after
    from window_rows
    inner join days_opened
        on window_rows.account_id = days_opened.account_id
        and window_rows.trans_date = days_opened.trans_date
),

unlinked_before as (
    select * from row_links where not is_linked_before
),

-- A row linked on neither side carries the gap (its balance is off): its balance against the
-- balance before of a same-day row nothing precedes (the row that should have followed it; the
-- nearest if several), else against the day's expected closing (it was the day's last).
balance_gaps as (
    select distinct on (broken.trans_id)
        broken.trans_id,
        broken.account_id,
        broken.trans_date,
        broken.balance_after - coalesce(follower.balance_before, broken.expected_closing) as gap
    from unlinked_before as broken
    left join unlinked_before as follower
        on broken.account_id = follower.account_id
        and broken.trans_date = follower.trans_date
        and broken.trans_id <> follower.trans_id
    where not broken.is_linked_after
    order by
        broken.trans_id,
        abs(broken.balance_after - follower.balance_before) nulls last,
        follower.trans_id
),

-- On a day with no such row, a row only a same-day row or the expected closing can follow but
-- nothing can precede carries the gap (its amount is off, under a right balance): the day's
-- posted closing against the opening plus the amounts, when the day's closing is unambiguous.
amount_gaps as (
    select
        unlinked.trans_id,
        unlinked.day_chain_end_balance - unlinked.expected_closing as gap
    from unlinked_before as unlinked
    where
        unlinked.is_linked_after
        and unlinked.day_chain_end_balance is not null
        and unlinked.expected_closing is not null
        and not exists (
            select 1
            from balance_gaps
            where
                balance_gaps.account_id = unlinked.account_id
                and balance_gaps.trans_date = unlinked.trans_date
        )
),

ledger_gaps as (
    select trans_id, gap from balance_gaps
    union all
    select trans_id, gap from amount_gaps
),

joined as (
    select
        window_rows.*,
        accounts.owner_client_id,
        accounts.owner_birth_date,
        accounts.owner_sex,
        accounts.owner_district_id,
        accounts.account_district_id,
        accounts.statement_frequency,
        accounts.has_disponent,
        accounts.first_card_type,
        accounts.first_card_issued_date,
        accounts.loan_status as account_loan_status,
        accounts.loan_granted_date,
        accounts.owner_district_average_salary,
        accounts.owner_district_unemployment_rate_pct,
        accounts.owner_district_urban_ratio_pct,
        accounts.owner_district_crimes_per_1000,
        least(3, greatest(0,
            (extract(year from window_rows.trans_month) * 12 + extract(month from window_rows.trans_month))
            - (extract(year from accounts.opened_date) * 12 + extract(month from accounts.opened_date))
        ))::int as previous_months_open,
        kind_stats.kind_txn_count_90d,
        kind_stats.kind_amount_mean_90d,
        kind_stats.kind_amount_median_90d,
        kind_stats.kind_amount_std_90d,
        kind_stats.kind_amount_max_90d,
        days_opened.days_since_previous_txn,
        days_opened.txn_count_day,
        days_opened.txn_count_7d,
        days_opened.day_spend,
        days_opened.usual_daily_spend_90d,
        days_opened.max_daily_spend_90d,
        days_opened.month_spend_to_date,
        month_features.spend_previous_3_months,
        coalesce(history_counterparties.txn_count, 0) + counterparty_stats.context_previous_count
            as counterparty_previous_count,
        coalesce(history_counterparty_amounts.txn_count, 0)
        + counterparty_stats.context_previous_amount_count as counterparty_amount_previous_count,
        greatest(history_accounts.max_payment_amount, days_opened.context_max_previous_payment)
            as max_previous_payment,
        ledger_gaps.gap
    from window_rows
    inner join days_opened
        on window_rows.account_id = days_opened.account_id
        and window_rows.trans_date = days_opened.trans_date
    inner join kind_stats
        on window_rows.trans_id = kind_stats.trans_id
    inner join month_features
        on window_rows.account_id = month_features.account_id
        and window_rows.trans_month = month_features.trans_month
    left join accounts
        on window_rows.account_id = accounts.account_id
    left join counterparty_stats
        on window_rows.trans_id = counterparty_stats.trans_id
    left join history_counterparties
        on window_rows.account_id = history_counterparties.account_id
        and window_rows.direction = history_counterparties.direction
        and window_rows.counterparty_bank = history_counterparties.counterparty_bank
        and window_rows.counterparty_account = history_counterparties.counterparty_account
    left join history_counterparty_amounts
        on window_rows.account_id = history_counterparty_amounts.account_id
        and window_rows.direction = history_counterparty_amounts.direction
        and window_rows.counterparty_bank = history_counterparty_amounts.counterparty_bank
        and window_rows.counterparty_account = history_counterparty_amounts.counterparty_account
        and window_rows.amount = history_counterparty_amounts.amount
    left join history_accounts
        on window_rows.account_id = history_accounts.account_id
    left join ledger_gaps
        on window_rows.trans_id = ledger_gaps.trans_id
),

final as (
    select
        trans_id,
        account_id,
        trans_date,
        trans_month,
        transaction_type,
        operation,
        category,
        transaction_kind,
        direction,
        amount,
        signed_amount,
        counterparty_bank,
        counterparty_account,

        owner_client_id as client_id,
        extract(year from age(trans_date, owner_birth_date))::int as client_age_years,
        owner_sex as client_sex,
        owner_district_id as client_district_id,
        account_district_id,
        statement_frequency,
        has_disponent,
        case when first_card_issued_date <= trans_date then first_card_type else 'none' end as card_type,
        case when loan_granted_date <= trans_date then account_loan_status else 'none' end as loan_status,

        balance_before,
        balance_after,
        round(100 * signed_amount / nullif(abs(balance_before), 0), 4) as balance_change_pct,

        kind_txn_count_90d,
        round(kind_amount_mean_90d, 2) as kind_amount_mean_90d,
        round(kind_amount_median_90d, 2) as kind_amount_median_90d,
        round(kind_amount_std_90d, 2) as kind_amount_std_90d,
        kind_amount_max_90d,
        round((amount - kind_amount_mean_90d) / nullif(kind_amount_std_90d, 0), 4) as kind_amount_zscore,
        round(amount / nullif(kind_amount_median_90d, 0), 4) as kind_amount_to_median_ratio,

        days_since_previous_txn,
        txn_count_day,
        txn_count_7d,
        day_spend,
        round(usual_daily_spend_90d, 2) as usual_daily_spend_90d,
        max_daily_spend_90d,
        round(day_spend / nullif(usual_daily_spend_90d, 0), 4) as day_spend_ratio,
        month_spend_to_date,
        round(spend_previous_3_months / nullif(previous_months_open, 0), 2) as usual_monthly_spend_3m,
        round(
            month_spend_to_date / nullif(spend_previous_3_months / nullif(previous_months_open, 0), 0), 4
        ) as month_spend_ratio,

        case when has_counterparty then counterparty_previous_count end as counterparty_previous_txn_count,
        case when has_counterparty then counterparty_previous_count = 0 end as is_new_counterparty,
        case when has_counterparty then counterparty_amount_previous_count > 0 end
            as is_repeat_amount_to_counterparty,
        max_previous_payment,
        case
            when direction = -1 and has_counterparty
                then round(amount / nullif(max_previous_payment, 0), 4)
        end as amount_to_max_previous_payment_ratio,
        duplicate_posting_count,
        duplicate_posting_count > 0 as is_duplicate_posting,

        extract(day from trans_date)::int as day_of_month,
        extract(isodow from trans_date)::int as day_of_week,
        extract(month from trans_date)::int as month_of_year,

        owner_district_average_salary as district_average_salary,
        owner_district_unemployment_rate_pct as district_unemployment_rate_pct,
        owner_district_urban_ratio_pct as district_urban_ratio_pct,
        owner_district_crimes_per_1000 as district_crimes_per_1000,

        case when abs(coalesce(gap, 0)) <= {{ tol }} then 0 else gap end as ledger_gap
    from joined
)

select * from final
