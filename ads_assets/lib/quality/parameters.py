"""Runtime expectation parameters (`$PARAMETER` in the suites): date windows and reference distributions.

The distribution expectations of `raw.fin_trans` compare a month's amounts per transaction type with
the reference period, the twelve months before it: the month's median and 90th percentile must stay
within a factor of the reference's, and most amounts inside the reference 1st..99th percentile. Both
are robust to a handful of outliers (a fraudulent amount ×100 moves neither), so they flag a batch
whose amounts shifted as a whole, such as a month in the wrong unit. The references come from one
SQL query over the reference months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg

from ads_assets.lib.berka.schema import TRANS_TYPES

BERKA_FIRST_DAY = date(1993, 1, 1)
BERKA_LAST_DAY = date(1998, 12, 31)
REFERENCE_MONTHS = 12
MIN_REFERENCE_ROWS = 200
QUANTILES = (0.5, 0.9)
QUANTILE_FACTOR = 3.0


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """First days of the months from `first`'s through `last`'s, inclusive."""
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


@dataclass(frozen=True)
class Span:
    """The months the data covers: [first, end) on month boundaries."""

    first: date
    end: date

    @classmethod
    def of_months(cls, first_month: str, last_month: str) -> Span:
        first = date.fromisoformat(f"{first_month[:7]}-01")
        return cls(first, add_months(date.fromisoformat(f"{last_month[:7]}-01"), 1))


def date_parameters(span: Span, month: date | None = None) -> dict[str, str]:
    """Date windows: the batch's (its month, else the span) and the Berka era widened to the span."""
    window_first = month or span.first
    window_end = add_months(month, 1) if month else span.end
    return {
        "window_first_day": window_first.isoformat(),
        "window_last_day": (window_end - timedelta(days=1)).isoformat(),
        "berka_first_day": min(BERKA_FIRST_DAY, span.first).isoformat(),
        "berka_last_day": max(BERKA_LAST_DAY, span.end - timedelta(days=1)).isoformat(),
    }


@dataclass(frozen=True)
class AmountReference:
    """Amounts of one transaction type over a reference period: row count, 1st/99th and QUANTILES percentiles."""

    type: str
    rows: int
    p01: float
    p99: float
    quantiles: tuple[float, ...]


def amount_references(connection: psycopg.Connection, first_day: date, end_day: date) -> dict[str, AmountReference]:
    """Per transaction type: rows and percentiles of `amount` in [first_day, end_day)."""
    percentiles = [0.01, 0.99, *QUANTILES]
    rows = connection.execute(
        "SELECT type, count(*), "  # noqa: S608 - only %s placeholders are joined in
        + ", ".join("percentile_cont(%s) WITHIN GROUP (ORDER BY amount)" for _ in percentiles)
        + " FROM raw.fin_trans WHERE date >= %s AND date < %s GROUP BY type",
        (*percentiles, first_day, end_day),
    ).fetchall()
    return {
        kind: AmountReference(kind, int(count), float(p01), float(p99), tuple(float(value) for value in quantiles))
        for kind, count, p01, p99, *quantiles in rows
    }


def quantile_ranges(reference: AmountReference | None) -> dict[str, list]:
    """GX `quantile_ranges`: each of QUANTILES within QUANTILE_FACTOR of the reference's (open without one)."""
    if reference is None or reference.rows < MIN_REFERENCE_ROWS:
        ranges = [[0, None] for _ in QUANTILES]
    else:
        ranges = [
            [round(value / QUANTILE_FACTOR, 2), round(value * QUANTILE_FACTOR, 2)] for value in reference.quantiles
        ]
    return {"quantiles": list(QUANTILES), "value_ranges": ranges}


def distribution_parameters(references: dict[str, AmountReference]) -> dict[str, Any]:
    """Bounds of the distribution expectations; a type without enough reference rows gets open bounds."""
    parameters: dict[str, Any] = {}
    for kind in sorted(TRANS_TYPES):
        low = kind.lower()
        reference = references.get(kind)
        known = reference is not None and reference.rows >= MIN_REFERENCE_ROWS
        parameters |= {
            f"amount_quantiles_{low}": quantile_ranges(reference),
            f"amount_p01_{low}": round(reference.p01, 2) if known else 0,
            f"amount_p99_{low}": round(reference.p99, 2) if known else None,
        }
    return parameters


def trans_month_parameters(connection: psycopg.Connection, span: Span, month: date) -> dict[str, Any]:
    """Every parameter of the raw.fin_trans suite for one month, its reference period the 12 months before."""
    references = amount_references(connection, add_months(month, -REFERENCE_MONTHS), month)
    return date_parameters(span, month) | distribution_parameters(references)


def table_parameters(span: Span) -> dict[str, Any]:
    """Parameters of the whole-table suites, and of fin_trans validated whole (no reference period)."""
    return date_parameters(span) | distribution_parameters({})
