"""How detection writes numbers, kinds, dates and counts for analysts: 52,000; 14 times; cash withdrawal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import text


def money(value: float) -> str:
    """An amount as an analyst reads it: 52,000 or 1,234.50."""
    if value is None or not np.isfinite(value):
        return "unknown"
    return f"{value:,.0f}" if abs(value - round(value)) < 0.005 else f"{value:,.2f}"


def times(value: float) -> str:
    """A ratio as '14 times' / '2.5 times'."""
    return f"{value:,.0f} times" if value >= 9.95 else f"{value:.1f} times"


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
