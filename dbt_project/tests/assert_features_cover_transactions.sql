-- Every transaction of the window has exactly one feature row and every feature row a
-- transaction. Without vars the whole table is checked; with vars, the window's rows.
with

features as (
    select trans_id from {{ ref('fct_transaction_features') }}
    where {{ feature_window_condition('trans_date') }}
),

transactions as (
    select trans_id from {{ ref('stg_transactions') }}
    where {{ feature_window_condition('trans_date') }}
)

select coalesce(features.trans_id, transactions.trans_id) as trans_id,
       features.trans_id is null as missing_from_features
from features
full outer join transactions
    on features.trans_id = transactions.trans_id
where features.trans_id is null or transactions.trans_id is null
