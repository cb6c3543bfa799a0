-- Row-level identities of the features: the balance identity, the trans_month key, the order of
-- the rolling statistics, the counts, and the flags that restate a count.
select *
from {{ ref('fct_transaction_features') }}
where
    {{ feature_window_condition('trans_date') }}
    and (
        balance_before + signed_amount <> balance_after
        or signed_amount <> direction * amount
        or trans_month <> date_trunc('month', trans_date)::date
        or (kind_txn_count_90d = 0) <> (kind_amount_mean_90d is null)
        or (kind_txn_count_90d = 0) <> (kind_amount_median_90d is null)
        or (kind_txn_count_90d < 2) <> (kind_amount_std_90d is null)
        or kind_amount_std_90d < 0
        or kind_amount_median_90d > kind_amount_max_90d
        or kind_amount_mean_90d > kind_amount_max_90d
        or (kind_amount_zscore is not null and coalesce(kind_amount_std_90d, 0) = 0)
        or days_since_previous_txn <= 0
        or txn_count_day < 1
        or txn_count_7d < txn_count_day
        or day_spend < 0
        or month_spend_to_date < day_spend
        or (counterparty_bank is null) <> (is_new_counterparty is null)
        or is_new_counterparty <> (counterparty_previous_txn_count = 0)
        or (is_repeat_amount_to_counterparty and is_new_counterparty)
        or is_duplicate_posting <> (duplicate_posting_count > 0)
        or (amount_to_max_previous_payment_ratio is not null and max_previous_payment is null)
        or day_of_month <> extract(day from trans_date)
        or month_of_year <> extract(month from trans_date)
        or day_of_week not between 1 and 7
    )
