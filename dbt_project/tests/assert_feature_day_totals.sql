-- The day-level features agree with the transactions of the day.
with

days as (
    select
        account_id,
        trans_date,
        count(*) as txn_count,
        coalesce(sum(amount) filter (where direction = -1), 0) as spend,
        min(txn_count_day) as min_txn_count_day,
        max(txn_count_day) as max_txn_count_day,
        min(day_spend) as min_day_spend,
        max(day_spend) as max_day_spend
    from {{ ref('fct_transaction_features') }}
    where {{ feature_window_condition('trans_date') }}
    group by account_id, trans_date
)

select *
from days
where
    min_txn_count_day <> txn_count
    or max_txn_count_day <> txn_count
    or min_day_spend <> spend
    or max_day_spend <> spend
