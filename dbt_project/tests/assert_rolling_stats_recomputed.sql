-- Recompute the per-kind 90-day statistics straight from the transactions for a deterministic
-- sample of rows (trans_id divisible by 37), strictly from earlier days: the mart must agree.
-- Only the window and its lookback are read (through the raw table's date index).
{%- set window = feature_window() %}
with

features as (
    select * from {{ ref('fct_transaction_features') }}
    where {{ feature_window_condition('trans_date') }} and trans_id % 37 = 0
),

transactions as (
    select * from {{ ref('stg_transactions') }}
    where trans_date >= {{ window.context_start }} and trans_date < {{ window.max_date }}
),

recomputed as (
    select
        features.trans_id,
        count(earlier.trans_id) as txn_count,
        round(avg(earlier.amount), 2) as mean_amount,
        max(earlier.amount) as max_amount,
        round((percentile_cont(0.5) within group (order by earlier.amount::float8))::numeric, 2)
            as median_amount
    from features
    left join transactions as earlier
        on features.account_id = earlier.account_id
        and features.transaction_kind = earlier.transaction_kind
        and earlier.trans_date between features.trans_date - 90 and features.trans_date - 1
    group by features.trans_id
)

select features.trans_id, features.kind_txn_count_90d, recomputed.txn_count
from features
inner join recomputed
    on features.trans_id = recomputed.trans_id
where
    features.kind_txn_count_90d <> recomputed.txn_count
    or features.kind_amount_mean_90d is distinct from recomputed.mean_amount
    or features.kind_amount_max_90d is distinct from recomputed.max_amount
    or features.kind_amount_median_90d is distinct from recomputed.median_amount
