"""Volume and freshness anomalies of the raw data, computed in SQL.

Volume: rows per month (and per day) of `raw.fin_trans`, per account open at the time so that the
bank's growth is not read as a spike, compared with the trailing twelve months as a z-score of the
log rate against its log-linear trend. The spread has a floor, so a very regular history does not
turn small wobbles into alarms, and a count must also lie far outside its counting (Poisson) noise.
A month or day with no rows where the history expects some is a gap. Freshness: time since the last
successful load of a relation in `raw.load_audit`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from statistics import fmean

import psycopg

from ads_assets.lib.quality.parameters import add_months

TRAILING_MONTHS = 12
MONTH_MIN_HISTORY = 6
MONTH_STD_FLOOR = 0.10
DAY_MIN_HISTORY = 6
DAY_STD_FLOOR = 0.25
DAY_MIN_EXPECTED_ROWS = 5.0
Z_THRESHOLD = 4.0
FRESHNESS_MAX_AGE = timedelta(hours=26)


@dataclass(frozen=True)
class VolumePoint:
    """Rows of one month or day against the trailing twelve months."""

    period: date
    rows: int
    accounts: int
    expected_rows: float | None
    z: float | None
    flag: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "period": self.period.isoformat(),
            "rows": self.rows,
            "accounts": self.accounts,
            "expected_rows": None if self.expected_rows is None else round(self.expected_rows, 1),
            "z": None if self.z is None or not math.isfinite(self.z) else round(self.z, 2),
            "flag": self.flag,
        }


def _score(rate: float, history: dict[int, float], floor: float, min_history: int) -> tuple[float | None, float | None]:
    """(expected rate, z of the log rate) from a log-linear trend over `history` ({months back: rate}).

    The trend carries the bank's growth (new accounts take months to reach their usual activity), so a
    ramp-up is not a spike; the spread is the residuals' standard deviation, at least `floor`.
    """
    points = [(-back, math.log(value)) for back, value in history.items() if value > 0]
    if len(points) < min_history:
        return None, None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x_mean, y_mean = fmean(xs), fmean(ys)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in points) / sxx if sxx else 0.0
    intercept = y_mean - slope * x_mean
    residuals = [y - (intercept + slope * x) for x, y in points]
    spread = max(math.sqrt(sum(r * r for r in residuals) / max(len(points) - 2, 1)), floor)
    expected = math.exp(intercept)
    if rate <= 0:
        return expected, -math.inf
    return expected, (math.log(rate) - intercept) / spread


def _flag(z: float | None, expected_rows: float | None, rows: int, min_expected: float) -> str | None:
    """gap, drop or spike when both the trend z-score and the count's own (Poisson) noise say so."""
    if z is None or expected_rows is None or expected_rows < min_expected:
        return None
    counting_z = (rows - expected_rows) / math.sqrt(expected_rows)
    if z <= -Z_THRESHOLD and counting_z <= -Z_THRESHOLD:
        return "gap" if rows == 0 else "drop"
    if z >= Z_THRESHOLD and counting_z >= Z_THRESHOLD:
        return "spike"
    return None


def _accounts_open(connection: psycopg.Connection, days: list[date]) -> dict[date, int]:
    """Accounts opened on or before each day."""
    opened = sorted(connection.execute("SELECT date, count(*) FROM raw.fin_account GROUP BY date").fetchall())
    open_days = [day for day, _ in opened]
    cumulative = list(accumulate(int(count) for _, count in opened))
    result = {}
    for day in days:
        position = bisect_right(open_days, day)
        result[day] = cumulative[position - 1] if position else 0
    return result


def monthly_volume(connection: psycopg.Connection, months: list[date]) -> list[VolumePoint]:
    """Each month's rows per open account against the trailing twelve months."""
    if not months:
        return []
    first, end = add_months(min(months), -TRAILING_MONTHS), add_months(max(months), 1)
    counts = dict(
        connection.execute(
            "SELECT date_trunc('month', date)::date, count(*) FROM raw.fin_trans "
            "WHERE date >= %s AND date < %s GROUP BY 1",
            (first, end),
        ).fetchall()
    )
    all_months = [add_months(first, offset) for offset in range((end.year - first.year) * 12 + end.month - first.month)]
    accounts = _accounts_open(connection, [add_months(month, 1) - timedelta(days=1) for month in all_months])
    rate = {
        month: counts.get(month, 0) / accounts[add_months(month, 1) - timedelta(days=1)]
        for month in all_months
        if accounts[add_months(month, 1) - timedelta(days=1)]
    }
    points = []
    for month in sorted(months):
        month_accounts = accounts[add_months(month, 1) - timedelta(days=1)]
        rows = int(counts.get(month, 0))
        history = {
            offset: rate[previous]
            for offset in range(1, TRAILING_MONTHS + 1)
            if (previous := add_months(month, -offset)) in rate
        }
        expected, z = (
            (None, None) if not month_accounts else _score(rate[month], history, MONTH_STD_FLOOR, MONTH_MIN_HISTORY)
        )
        expected_rows = None if expected is None else expected * month_accounts
        points.append(VolumePoint(month, rows, month_accounts, expected_rows, z, _flag(z, expected_rows, rows, 1.0)))
    return points


def _day_key(day: date) -> int:
    """Day of month, with every month's last day as 0: month-end postings align across month lengths."""
    return 0 if (day + timedelta(days=1)).day == 1 else day.day


def daily_volume(connection: psycopg.Connection, months: list[date]) -> list[VolumePoint]:
    """Each day's rows per open account against the same day of the month in the trailing twelve months."""
    if not months:
        return []
    first, end = add_months(min(months), -TRAILING_MONTHS), add_months(max(months), 1)
    counts = dict(
        connection.execute(
            "SELECT date, count(*) FROM raw.fin_trans WHERE date >= %s AND date < %s GROUP BY 1", (first, end)
        ).fetchall()
    )
    days = [first + timedelta(days=offset) for offset in range((end - first).days)]
    accounts = _accounts_open(connection, days)
    history: dict[tuple[int, date], float] = {}
    for day in days:
        if accounts[day]:
            history[(_day_key(day), day.replace(day=1))] = counts.get(day, 0) / accounts[day]
    by_key: dict[int, dict[date, float]] = defaultdict(dict)
    for (key, month), value in history.items():
        by_key[key][month] = value
    wanted = set(months)
    points = []
    for day in days:
        if day.replace(day=1) not in wanted:
            continue
        rows, day_accounts = int(counts.get(day, 0)), accounts[day]
        month = day.replace(day=1)
        trailing = {
            offset: value
            for offset in range(1, TRAILING_MONTHS + 1)
            if (value := by_key[_day_key(day)].get(add_months(month, -offset))) is not None
        }
        expected, z = (
            (None, None) if not day_accounts else _score(rows / day_accounts, trailing, DAY_STD_FLOOR, DAY_MIN_HISTORY)
        )
        expected_rows = None if expected is None else expected * day_accounts
        points.append(
            VolumePoint(day, rows, day_accounts, expected_rows, z, _flag(z, expected_rows, rows, DAY_MIN_EXPECTED_ROWS))
        )
    return points


@dataclass(frozen=True)
class Freshness:
    """Time since the last successful load of one relation."""

    relation: str
    last_load: datetime | None
    age: timedelta | None
    max_age: timedelta

    @property
    def fresh(self) -> bool:
        return self.age is not None and self.age <= self.max_age

    def as_json(self) -> dict[str, object]:
        return {
            "relation": self.relation,
            "last_load": None if self.last_load is None else self.last_load.isoformat(),
            "age_hours": None if self.age is None else round(self.age.total_seconds() / 3600, 2),
            "max_age_hours": round(self.max_age.total_seconds() / 3600, 2),
        }


def freshness(
    connection: psycopg.Connection,
    relation: str,
    max_age: timedelta = FRESHNESS_MAX_AGE,
    now: datetime | None = None,
) -> Freshness:
    """When `relation` last loaded successfully (its newest `raw.load_audit` row) and how long ago."""
    row = connection.execute("SELECT max(finished_at) FROM raw.load_audit WHERE relation = %s", (relation,)).fetchone()
    last = row[0] if row else None
    age = None if last is None else (now or datetime.now(UTC)) - last
    return Freshness(relation, last, age, max_age)
