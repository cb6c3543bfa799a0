{#
    The per-account ledger: one row per transaction, in (account_id, trans_date) order, with each
    row's balance before, how it chains to the other transactions of its account and day, and the
    day's totals.

    Several transactions of one account on one day come in no known order, so a day is a set, not
    a sequence: a row has a same-day predecessor when its balance before equals another same-day
    row's balance after, and a same-day successor when its balance after equals another same-day
    row's balance before (within the ledger tolerance). The day's chain starts at the balance
    before of the row nothing precedes and ends at the balance after of the row nothing follows.

    Every window is partitioned by (account_id, trans_date): a filter on trans_date or account_id
    applied to this view is pushed below the windows to the raw table's date index.
#}
with

transactions as (
    select * from {{ ref('stg_transactions') }}
),

with_day as (
    select
        *,
        sum(signed_amount) over same_day as day_net_amount,
        coalesce(sum(amount) filter (where direction = -1) over same_day, 0) as day_spend_amount,
        max(amount) filter (where direction = -1 and has_counterparty) over same_day
            as day_max_payment_amount,
        row_number() over (partition by account_id, trans_date order by trans_id) as day_row_number,
        count(*) over (
            partition by
                account_id, trans_date, transaction_type, amount, counterparty_bank,
                counterparty_account
        ) - 1 as duplicate_posting_count
    from transactions
    window same_day as (partition by account_id, trans_date)
),

linked as (
    {{ same_day_links('with_day') }}
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
        balance_before,
        balance_after,
        counterparty_bank,
        counterparty_account,
        has_counterparty,
        has_same_day_predecessor,
        has_same_day_successor,
        duplicate_posting_count,
        day_row_number = 1 as is_first_of_day,
        day_txn_count,
        day_net_amount,
        day_spend_amount,
        day_max_payment_amount,
        {{ day_chain_balance('balance_before', 'not has_same_day_predecessor', 'over same_day') }}
            as day_chain_start_balance,
        {{ day_chain_balance('balance_after', 'not has_same_day_successor', 'over same_day') }}
            as day_chain_end_balance,
        min(balance_after) filter (where not has_same_day_successor) over same_day as day_chain_end_low,
        max(balance_after) filter (where not has_same_day_successor) over same_day as day_chain_end_high
    from linked
    window same_day as (partition by account_id, trans_date)
)

select * from final
