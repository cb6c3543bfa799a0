-- A reported missing payment has no transaction of the account with that counterparty and
-- direction in its month, the account was active in that month, and it was last seen before
-- (or, for a loan-payment order never paid, never: then not at all before or in that month).
with

missing as (
    select * from {{ ref('fct_missing_payments') }}
),

transactions as (
    select * from {{ ref('stg_transactions') }}
),

active_months as (
    select distinct account_id, trans_month
    from transactions
),

paid_months as (
    select distinct
        account_id,
        trans_month,
        case when direction = 1 then 'incoming' else 'outgoing' end as direction,
        counterparty_bank,
        counterparty_account
    from transactions
    where has_counterparty
)

select missing.*
from missing
left join paid_months
    on missing.account_id = paid_months.account_id
    and missing.missing_month = paid_months.trans_month
    and missing.direction = paid_months.direction
    and missing.counterparty_bank = paid_months.counterparty_bank
    and missing.counterparty_account = paid_months.counterparty_account
left join active_months
    on missing.account_id = active_months.account_id
    and missing.missing_month = active_months.trans_month
where
    paid_months.account_id is not null
    or active_months.account_id is null
    or missing.last_seen_month >= missing.missing_month
    or (missing.last_seen_month is null) <> (missing.months_since_last_seen is null)
    or (
        missing.last_seen_month is null
        and exists (
            select 1
            from paid_months as earlier
            where
                earlier.account_id = missing.account_id
                and earlier.trans_month <= missing.missing_month
                and earlier.direction = missing.direction
                and earlier.counterparty_bank = missing.counterparty_bank
                and earlier.counterparty_account = missing.counterparty_account
        )
    )
