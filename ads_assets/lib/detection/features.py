"""Model features: scale-free transforms of `marts.fct_transaction_features` columns.

The machine-learning detectors never see an amount in crowns; they see how a transaction compares
with the same account's own past (log ratios to the 90-day median and maximum of the same kind, how
much that history varies, a z-score with a floored spread, the day's and month's spending against the
account's usual), how busy the account is (same-day counts of the kind and overall, the 7-day count,
days since the previous transaction), whom it pays (a first payment to a new payee, sized in district
monthly salaries; a payment above the largest earlier one) and what it does to the balance (relative
change, overdraft), plus the amount in district monthly salaries as the one measure of size. Every
feature is 0 (or its neutral value) when the account has no history to compare with, so a young
account is not an outlier merely for being young; ratios below a tenth of usual are clipped, since
small amounts vary for ordinary reasons. No calendar, demographic or identifier column is a feature:
they describe who the customer is, not what the transaction does, and would make rare customers
look anomalous.

Two frame-level quantities are derived here because the mart does not carry them:
`same_day_kind_count` (transactions of the row's kind by the account that day) and `posting_rank`
(0 for the first of identical same-day postings by trans_id order, 1 for the second, ...). Both need
the whole day of the account in the frame; scoring whole months guarantees it.

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
)
FEATURES_BY_NAME: dict[str, ModelFeature] = {feature.name: feature for feature in MODEL_FEATURES}


def with_frame_context(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the derived `same_day_kind_count`, `kind_daily_rate_90d` and `posting_rank` columns."""
    out = frame.copy(deep=False)
    if "same_day_kind_count" not in out.columns:
        out["same_day_kind_count"] = same_day_kind_count(frame)
    if "posting_rank" not in out.columns:
        out["posting_rank"] = posting_rank(frame)
    if "kind_daily_rate_90d" not in out.columns:
        out["kind_daily_rate_90d"] = np.round(np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0) / 90.0, 3)
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


KIND_NAMES: dict[str, str] = {
    "cash_credit": "cash deposit",
    "collection_from_other_bank": "incoming transfer",
    "remittance_to_other_bank": "transfer to another bank",
    "interest_credited": "interest credit",
    "old_age_pension": "pension credit",
    "statement_fee": "statement fee",
    "sanction_interest": "sanction interest charge",
    "other_credit": "credit",
    "other_debit": "debit",
}


def kind_label(frame: pd.DataFrame) -> np.ndarray:
    """A readable name of each row's transaction kind ('cash withdrawal', 'household payment')."""
    codes, uniques = pd.factorize(text(frame, "transaction_kind"))
    names = np.asarray(
        [KIND_NAMES.get(kind, kind.replace("_", " ")) if kind else "transaction" for kind in uniques], dtype=object
    )
    return names[codes] if len(names) else np.full(len(frame), "transaction", dtype=object)


def plural(count: float, noun: str) -> str:
    """'1 cash withdrawal', '3 cash withdrawals' (nouns ending in s are left alone)."""
    number = int(count) if np.isfinite(count) else 0
    return f"{number:,} {noun}" if number == 1 or noun.endswith("s") else f"{number:,} {noun}s"


def iso_date(value: object) -> str:
    """A date or timestamp as YYYY-MM-DD ('' for missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    try:
        return pd.Timestamp(value).date().isoformat()
    except (TypeError, ValueError):
        return str(value)


def iso_dates(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A date column as YYYY-MM-DD strings."""
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
    return np.asarray([iso_date(value) for value in uniques], dtype=object)[codes]
