"""Model features: scale-free transforms of `marts.fct_transaction_features` columns, plus the raw signals.

What the machine-learning detectors see of a transaction:

- the raw signals a plain model on the raw columns sees: the amount (log), the balance after it
  (signed log) and how rare its kind is in the bank (`kind_rarity`);
- how it compares with the same account's own past: log ratios to the 90-day median and largest of
  the same kind, how much that history varies, a z-score with a floored spread, whether a payment to
  a known payee changed its amount;
- how it compares with its peers (`peers.PeerProfile`): the amount against the same kind in the
  account's district, and against what other accounts pay the same payee, and how many accounts pay
  that payee at all;
- behaviour over the day and the month: same-day counts of the kind and overall, the 7-day count, the
  day's and the month's spending against the account's usual, the month's count and amount of the
  row's kind against the account's usual month of that kind, and the kind's count in the 7 days to
  the row against the account's usual week;
- whom it pays and what it does to the balance: a first payment to a new payee, a payment above the
  largest earlier one, the relative balance change, overdraft, days since the previous transaction,
  and the amount in district monthly salaries;
- whether the ledger holds together: identical postings earlier the same day, and how far the
  balance after the row is from the previous balance plus the amount.

Every behavioural feature is 0 (or its neutral value) when the account has no history to compare
with, so a young account is not an outlier merely for being young; ratios below a tenth of usual are
clipped, since small amounts vary for ordinary reasons. No calendar, demographic or identifier column
is a feature: they describe who the customer is, not what the transaction does.

Frame-level quantities derived here because the mart does not carry them (`with_frame_context`):
`same_day_kind_count`, `posting_rank` (0 for the first of identical same-day postings by trans_id, 1
for the second, ...), `month_kind_count` and `month_kind_amount` (the account's transactions of the
row's kind in the row's whole month) and `kind_count_7d`. They need the whole day and month of the
account in the frame; scoring whole months guarantees it.

`describe(frame, feature)` returns the analyst-facing value and the account's typical value behind a
feature, in the mart's units (crowns, counts, days), for explanations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import flag, numeric, text

SPENDING_KINDS = frozenset({"cash_withdrawal", "card_withdrawal"})
DUPLICATE_KEY = (
    "account_id",
    "trans_date",
    "transaction_type",
    "amount",
    "counterparty_bank",
    "counterparty_account",
)
MART_COLUMNS: tuple[str, ...] = (
    "trans_id",
    "account_id",
    "trans_date",
    "trans_month",
    "transaction_type",
    "operation",
    "category",
    "transaction_kind",
    "direction",
    "amount",
    "counterparty_bank",
    "counterparty_account",
    "balance_before",
    "balance_after",
    "balance_change_pct",
    "kind_txn_count_90d",
    "kind_amount_mean_90d",
    "kind_amount_median_90d",
    "kind_amount_std_90d",
    "kind_amount_max_90d",
    "days_since_previous_txn",
    "txn_count_day",
    "txn_count_7d",
    "day_spend",
    "usual_daily_spend_90d",
    "day_spend_ratio",
    "month_spend_to_date",
    "usual_monthly_spend_3m",
    "month_spend_ratio",
    "counterparty_previous_txn_count",
    "is_new_counterparty",
    "max_previous_payment",
    "amount_to_max_previous_payment_ratio",
    "is_duplicate_posting",
    "district_average_salary",
    "account_district_id",
    "is_repeat_amount_to_counterparty",
    "ledger_gap",
)
"""The mart columns the detectors and rules read."""

FALLBACK_SALARY = 9_000.0
"""Crowns; a district average monthly salary of the Berka era, for rows whose district has none."""


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """log(numerator / denominator); NaN where either is missing or not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        valid = (numerator > 0) & (denominator > 0)
        return np.where(valid, np.log(np.where(valid, numerator, 1.0) / np.where(valid, denominator, 1.0)), np.nan)


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def same_day_kind_count(frame: pd.DataFrame) -> np.ndarray:
    """Transactions of the row's kind the account posted on the row's day (the row included)."""
    if not len(frame):
        return np.zeros(0)
    codes = [
        pd.factorize(frame[column], use_na_sentinel=False)[0]
        for column in ("account_id", "trans_date", "transaction_kind")
    ]
    key = (codes[0].astype(np.int64) * (codes[1].max() + 1) + codes[1]) * (codes[2].max() + 1) + codes[2]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.float64)


def posting_rank(frame: pd.DataFrame) -> np.ndarray:
    """0 for the first of identical same-day postings (by trans_id), 1 for the next, and so on.

    Only rows the mart marks `is_duplicate_posting` are ranked when the column is present.
    """
    if not len(frame):
        return np.zeros(0, dtype=np.int64)
    out = np.zeros(len(frame), dtype=np.int64)
    candidates = np.flatnonzero(flag(frame, "is_duplicate_posting")) if "is_duplicate_posting" in frame else None
    if candidates is None:
        candidates = np.arange(len(frame))
    if not len(candidates):
        return out
    keyed = frame.iloc[candidates][list(DUPLICATE_KEY)].reset_index(drop=True)
    order = np.argsort(frame["trans_id"].to_numpy()[candidates], kind="stable")
    ranks = keyed.iloc[order].groupby(list(DUPLICATE_KEY), sort=False, dropna=False).cumcount().to_numpy()
    out[candidates[order]] = ranks
    return out


def salary(frame: pd.DataFrame) -> np.ndarray:
    """The district average monthly salary of each row's owner (the fallback where missing)."""
    values = numeric(frame, "district_average_salary")
    return np.where(values > 0, values, FALLBACK_SALARY)


@dataclass(frozen=True)
class ModelFeature:
    """One model input: how it is computed and which mart columns an analyst sees behind it."""

    name: str
    label: str
    compute: Callable[[pd.DataFrame], np.ndarray]
    value: str
    typical: str | None = None
    fill: float = 0.0
    """The neutral value used where the feature cannot be computed (no history)."""


MIN_PAYEE_PAYERS = 3
"""Accounts that must pay a payee before its usual amount is a peer reference."""

LOWEST_LOG_RATIO = float(np.log(0.1))
"""Ratios below a tenth of usual are all alike to the models: small amounts vary for ordinary reasons."""


def _amount_vs_median(frame: pd.DataFrame) -> np.ndarray:
    return np.clip(
        _log_ratio(numeric(frame, "amount"), numeric(frame, "kind_amount_median_90d")), LOWEST_LOG_RATIO, None
    )


def _amount_vs_max(frame: pd.DataFrame) -> np.ndarray:
    return np.clip(_log_ratio(numeric(frame, "amount"), numeric(frame, "kind_amount_max_90d")), LOWEST_LOG_RATIO, None)


def _amount_zscore(frame: pd.DataFrame) -> np.ndarray:
    amount, mean = numeric(frame, "amount"), numeric(frame, "kind_amount_mean_90d")
    spread = np.fmax(numeric(frame, "kind_amount_std_90d"), 0.05 * np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, (amount - mean) / spread, np.nan)
    return np.clip(_signed_log1p(z), -np.log1p(3.0), None)


def _history_spread(frame: pd.DataFrame) -> np.ndarray:
    return _log_ratio(numeric(frame, "kind_amount_max_90d"), numeric(frame, "kind_amount_median_90d"))


def _history_depth(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0))


def _same_day_kind(frame: pd.DataFrame) -> np.ndarray:
    if "same_day_kind_count" in frame.columns:
        return np.log(numeric(frame, "same_day_kind_count"))
    return np.log(same_day_kind_count(frame))


def _day_kind_count(frame: pd.DataFrame) -> np.ndarray:
    usual = np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0) / 90.0
    return np.log(numeric(frame, "same_day_kind_count") / (1.0 + usual))


def _same_day(frame: pd.DataFrame) -> np.ndarray:
    return np.log(np.fmax(numeric(frame, "txn_count_day"), 1.0))


def _week(frame: pd.DataFrame) -> np.ndarray:
    return np.log(np.fmax(numeric(frame, "txn_count_7d"), 1.0))


def _day_spend(frame: pd.DataFrame) -> np.ndarray:
    ratio = numeric(frame, "day_spend_ratio")
    return np.log1p(np.fmax(ratio, 0.0))


def _month_spend(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.fmax(numeric(frame, "month_spend_ratio"), 0.0))


def _new_payee(frame: pd.DataFrame) -> np.ndarray:
    new = flag(frame, "is_new_counterparty") & (numeric(frame, "direction") < 0)
    return np.where(new, np.log1p(numeric(frame, "amount") / salary(frame)), 0.0)


def _new_payee_vs_usual(frame: pd.DataFrame) -> np.ndarray:
    new = flag(frame, "is_new_counterparty") & (numeric(frame, "direction") < 0)
    ratio = _log_ratio(numeric(frame, "amount"), numeric(frame, "kind_amount_median_90d"))
    return np.where(new, np.clip(np.nan_to_num(ratio, nan=0.0), 0.0, None), 0.0)


def _payment_vs_largest(frame: pd.DataFrame) -> np.ndarray:
    return np.clip(np.log(numeric(frame, "amount_to_max_previous_payment_ratio")), 0.0, None)


def _quiet_days(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.fmax(numeric(frame, "days_since_previous_txn"), 0.0))


def _balance_change(frame: pd.DataFrame) -> np.ndarray:
    return _signed_log1p(numeric(frame, "balance_change_pct") / 100.0)


def _overdraft(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.fmax(-numeric(frame, "balance_after"), 0.0) / salary(frame))


def _amount_vs_salary(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(numeric(frame, "amount") / salary(frame))


def _log_amount(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.fmax(numeric(frame, "amount"), 0.0))


def _balance_level(frame: pd.DataFrame) -> np.ndarray:
    return _signed_log1p(numeric(frame, "balance_after"))


def _kind_rarity(frame: pd.DataFrame) -> np.ndarray:
    return -np.log(np.fmax(numeric(frame, "kind_share"), 1e-6))


def _amount_vs_peers(frame: pd.DataFrame) -> np.ndarray:
    spread = numeric(frame, "peer_log_amount_spread")
    return np.clip((_log_amount(frame) - numeric(frame, "peer_log_amount_median")) / spread, -3.0, None)


def _amount_vs_payee_peers(frame: pd.DataFrame) -> np.ndarray:
    known = numeric(frame, "payee_payers") >= MIN_PAYEE_PAYERS
    difference = _log_amount(frame) - numeric(frame, "payee_log_amount_median")
    return np.where(known, np.clip(difference, LOWEST_LOG_RATIO, None), 0.0)


def _payee_reach(frame: pd.DataFrame) -> np.ndarray:
    paying = (text(frame, "counterparty_account") != "") & (numeric(frame, "direction") < 0)
    return np.where(paying, np.log1p(np.nan_to_num(numeric(frame, "payee_payers"), nan=0.0)), -1.0)


def _payee_amount_change(frame: pd.DataFrame) -> np.ndarray:
    recurring = np.nan_to_num(numeric(frame, "counterparty_previous_txn_count"), nan=0.0) >= 2
    changed = recurring & ~flag(frame, "is_repeat_amount_to_counterparty")
    return np.where(
        changed, np.abs(_log_ratio(numeric(frame, "amount"), numeric(frame, "kind_amount_median_90d"))), 0.0
    )


def _identical_posting(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.fmax(numeric(frame, "posting_rank"), 0.0))


def _ledger_gap(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.abs(np.nan_to_num(numeric(frame, "ledger_gap"), nan=0.0)))


def usual_month_kind_count(frame: pd.DataFrame) -> np.ndarray:
    """Transactions of the row's kind in the account's usual month (a third of its 90-day count)."""
    return np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0) / 3.0


def usual_month_kind_amount(frame: pd.DataFrame) -> np.ndarray:
    """Amount of the row's kind in the account's usual month (90-day mean times a third of its count)."""
    return usual_month_kind_count(frame) * np.nan_to_num(numeric(frame, "kind_amount_mean_90d"), nan=0.0)


def usual_week_kind_count(frame: pd.DataFrame) -> np.ndarray:
    """Transactions of the row's kind in the account's usual week (its 90-day count over 13 weeks)."""
    return np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0) / 13.0


def _month_kind_count(frame: pd.DataFrame) -> np.ndarray:
    return np.log((numeric(frame, "month_kind_count") + 1.0) / (usual_month_kind_count(frame) + 1.0))


def _week_kind_count(frame: pd.DataFrame) -> np.ndarray:
    return np.log((numeric(frame, "kind_count_7d") + 1.0) / (usual_week_kind_count(frame) + 1.0))


def _month_kind_amount(frame: pd.DataFrame) -> np.ndarray:
    usual = usual_month_kind_amount(frame)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(usual > 0, np.log1p(numeric(frame, "month_kind_amount") / usual), np.nan)


MODEL_FEATURES: tuple[ModelFeature, ...] = (
    ModelFeature(
        "amount_vs_median",
        "amount vs the account's 90-day median of this kind",
        _amount_vs_median,
        "amount",
        "kind_amount_median_90d",
    ),
    ModelFeature(
        "amount_vs_max",
        "amount vs the account's 90-day largest of this kind",
        _amount_vs_max,
        "amount",
        "kind_amount_max_90d",
    ),
    ModelFeature(
        "amount_zscore",
        "amount's z-score within the account's 90 days of this kind",
        _amount_zscore,
        "amount",
        "kind_amount_mean_90d",
    ),
    ModelFeature(
        "history_spread",
        "how much the account's amounts of this kind vary (90-day largest vs median)",
        _history_spread,
        "kind_amount_max_90d",
        "kind_amount_median_90d",
    ),
    ModelFeature(
        "history_depth",
        "transactions of this kind in the previous 90 days",
        _history_depth,
        "kind_txn_count_90d",
        None,
        0.0,
    ),
    ModelFeature(
        "same_day_kind_count",
        "transactions of this kind by the account that day",
        _same_day_kind,
        "same_day_kind_count",
        "kind_daily_rate_90d",
    ),
    ModelFeature(
        "day_kind_count_vs_usual",
        "transactions of this kind by the account that day vs its usual day",
        _day_kind_count,
        "same_day_kind_count",
        "kind_daily_rate_90d",
    ),
    ModelFeature("same_day_count", "transactions by the account that day", _same_day, "txn_count_day", None),
    ModelFeature("week_count", "transactions by the account in the last 7 days", _week, "txn_count_7d", None),
    ModelFeature(
        "day_spend_vs_usual",
        "the day's spending vs the account's usual spending day",
        _day_spend,
        "day_spend",
        "usual_daily_spend_90d",
    ),
    ModelFeature(
        "month_spend_vs_usual",
        "month-to-date spending vs the account's usual month",
        _month_spend,
        "month_spend_to_date",
        "usual_monthly_spend_3m",
    ),
    ModelFeature(
        "new_payee",
        "first payment to a new payee, its size in district monthly salaries",
        _new_payee,
        "amount",
        "district_average_salary",
    ),
    ModelFeature(
        "new_payee_vs_usual",
        "first payment to a new payee, against the account's usual amount of the kind",
        _new_payee_vs_usual,
        "amount",
        "kind_amount_median_90d",
    ),
    ModelFeature(
        "payment_vs_largest",
        "payment above the account's largest earlier payment",
        _payment_vs_largest,
        "amount",
        "max_previous_payment",
    ),
    ModelFeature(
        "days_since_previous",
        "days since the account's previous transaction",
        _quiet_days,
        "days_since_previous_txn",
        None,
        float(np.log1p(3.0)),
    ),
    ModelFeature(
        "balance_change",
        "change of the balance relative to the balance before",
        _balance_change,
        "balance_after",
        "balance_before",
    ),
    ModelFeature(
        "overdraft",
        "overdraft after the transaction, in district monthly salaries",
        _overdraft,
        "balance_after",
        None,
    ),
    ModelFeature(
        "amount_vs_salary",
        "amount in district average monthly salaries",
        _amount_vs_salary,
        "amount",
        "district_average_salary",
    ),
    ModelFeature("log_amount", "amount", _log_amount, "amount", "peer_amount_median"),
    ModelFeature("balance_level", "balance after the transaction", _balance_level, "balance_after", "balance_before"),
    ModelFeature("kind_rarity", "how rare this kind of transaction is in the bank", _kind_rarity, "kind_share"),
    ModelFeature(
        "amount_vs_peers",
        "amount vs the same kind at accounts of the same district",
        _amount_vs_peers,
        "amount",
        "peer_amount_median",
    ),
    ModelFeature(
        "amount_vs_payee_peers",
        "amount vs what other accounts pay this payee",
        _amount_vs_payee_peers,
        "amount",
        "payee_amount_median",
    ),
    ModelFeature("payee_reach", "how many accounts pay this payee", _payee_reach, "payee_payers", None, -1.0),
    ModelFeature(
        "payee_amount_change",
        "a recurring payee paid a new amount",
        _payee_amount_change,
        "amount",
        "kind_amount_median_90d",
    ),
    ModelFeature(
        "month_kind_count_vs_usual",
        "transactions of this kind in the month vs the account's usual month",
        _month_kind_count,
        "month_kind_count",
        "usual_month_kind_count",
    ),
    ModelFeature(
        "month_kind_amount_vs_usual",
        "amount of this kind in the month vs the account's usual month",
        _month_kind_amount,
        "month_kind_amount",
        "usual_month_kind_amount",
    ),
    ModelFeature(
        "week_kind_count_vs_usual",
        "transactions of this kind in the 7 days to this one vs the account's usual week",
        _week_kind_count,
        "kind_count_7d",
        "usual_week_kind_count",
    ),
    ModelFeature(
        "identical_posting",
        "identical postings (amount, type, counterparty) earlier the same day",
        _identical_posting,
        "posting_rank",
    ),
    ModelFeature(
        "ledger_gap",
        "how far the balance after the transaction is from the previous balance plus the amount",
        _ledger_gap,
        "ledger_gap",
    ),
)
FEATURES_BY_NAME: dict[str, ModelFeature] = {feature.name: feature for feature in MODEL_FEATURES}


def kind_activity(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: transactions and amount of its kind by its account in its whole month, and in the 7 days to its day.

    Counted over the frame, so a scored month (a whole month) gives whole-month totals; the 7-day count
    of the month's first days misses the previous month's last days.
    """
    if not len(frame):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    days = pd.to_datetime(frame["trans_date"])
    account = pd.factorize(numeric(frame, "account_id"))[0].astype(np.int64)
    kind = pd.factorize(text(frame, "transaction_kind"))[0].astype(np.int64)
    month = (days.dt.year * 12 + days.dt.month).to_numpy(dtype=np.int64)
    group = account * (kind.max() + 1) + kind
    month_key = pd.factorize(group * 100_000 + month)[0]
    amount = np.nan_to_num(numeric(frame, "amount"), nan=0.0)
    month_count = np.bincount(month_key)[month_key].astype(np.float64)
    month_amount = np.bincount(month_key, weights=amount)[month_key]
    day = (days - pd.Timestamp("1900-01-01")).dt.days.to_numpy(dtype=np.int64)
    key = group * 1_000_000 + day
    ordered = np.sort(key)
    week_count = np.searchsorted(ordered, key, side="right") - np.searchsorted(ordered, key - 6, side="left")
    return month_count, month_amount, week_count.astype(np.float64)


def with_frame_context(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the derived same-day, posting-rank and month-to-date columns (existing ones are kept)."""
    out = frame.copy(deep=False)
    if "same_day_kind_count" not in out.columns:
        out["same_day_kind_count"] = same_day_kind_count(frame)
    if "posting_rank" not in out.columns:
        out["posting_rank"] = posting_rank(frame)
    if "kind_daily_rate_90d" not in out.columns:
        out["kind_daily_rate_90d"] = np.round(np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0) / 90.0, 3)
    if "month_kind_count" not in out.columns:
        out["month_kind_count"], out["month_kind_amount"], out["kind_count_7d"] = kind_activity(frame)
        out["usual_month_kind_count"] = np.round(usual_month_kind_count(frame), 2)
        out["usual_month_kind_amount"] = np.round(usual_month_kind_amount(frame), 2)
        out["usual_week_kind_count"] = np.round(usual_week_kind_count(frame), 2)
    return out


def model_features(frame: pd.DataFrame, names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The model features of every row (NaN where not computable; the pipelines impute `fill`)."""
    chosen = MODEL_FEATURES if names is None else tuple(FEATURES_BY_NAME[name] for name in names)
    columns = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for feature in chosen:
            values = np.asarray(feature.compute(frame), dtype=np.float64)
            columns[feature.name] = np.where(np.isfinite(values), values, np.nan)
    return pd.DataFrame(columns, index=frame.index)


def describe(frame: pd.DataFrame, feature: str) -> tuple[np.ndarray, np.ndarray]:
    """The value and the account's typical value behind `feature`, in mart units (NaN where none)."""
    spec = FEATURES_BY_NAME[feature]
    value = numeric(frame, spec.value)
    typical = numeric(frame, spec.typical) if spec.typical else np.full(len(frame), np.nan)
    return value, typical
