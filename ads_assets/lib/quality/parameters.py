"""Runtime expectation parameters (`$PARAMETER` in the suites): date windows and reference distributions.

The distribution expectations of `raw.fin_trans` compare a month's amounts per transaction type with
the reference period, the twelve months before it: the mean must stay within a factor of the
reference mean, and most amounts inside the reference 1st..99th percentile. Both references are
computed by one SQL query over the reference months.
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
MEAN_FACTOR = 2.5


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
    """Amounts of one transaction type over a reference period."""

    type: str
    rows: int
    mean: float
    p01: float
    p99: float


def amount_references(connection: psycopg.Connection, first_day: date, end_day: date) -> dict[str, AmountReference]:
    """Per transaction type: rows, mean and 1st/99th percentile of `amount` in [first_day, end_day)."""
    rows = connection.execute(
        "SELECT type, count(*), avg(amount), percentile_cont(0.01) WITHIN GROUP (ORDER BY amount), "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY amount) "
        "FROM raw.fin_trans WHERE date >= %s AND date < %s GROUP BY type",
        (first_day, end_day),
    ).fetchall()
    return {
        kind: AmountReference(kind, int(count), float(mean), float(p01), float(p99))
        for kind, count, mean, p01, p99 in rows
    }


def distribution_parameters(references: dict[str, AmountReference]) -> dict[str, Any]:
    """Bounds of the distribution expectations; a type without enough reference rows gets open bounds."""
    parameters: dict[str, Any] = {}
    for kind in sorted(TRANS_TYPES):
        low = kind.lower()
        reference = references.get(kind)
        if reference is None or reference.rows < MIN_REFERENCE_ROWS:
            parameters |= {
                f"amount_mean_{low}_min": 0,
                f"amount_mean_{low}_max": None,
                f"amount_p01_{low}": 0,
                f"amount_p99_{low}": None,
            }
            continue
        parameters |= {
            f"amount_mean_{low}_min": round(reference.mean / MEAN_FACTOR, 2),
            f"amount_mean_{low}_max": round(reference.mean * MEAN_FACTOR, 2),
            f"amount_p01_{low}": round(reference.p01, 2),
            f"amount_p99_{low}": round(reference.p99, 2),
        }
    return parameters


def trans_month_parameters(connection: psycopg.Connection, span: Span, month: date) -> dict[str, Any]:
    """Every parameter of the raw.fin_trans suite for one month, its reference period the 12 months before."""
    references = amount_references(connection, add_months(month, -REFERENCE_MONTHS), month)
    return date_parameters(span, month) | distribution_parameters(references)


def table_parameters(span: Span) -> dict[str, Any]:
    """Parameters of the whole-table suites, and of fin_trans validated whole (no reference period)."""
    return date_parameters(span) | distribution_parameters({})
