"""Which rows train the model that scores each month: windows that follow the data, not the calendar.

With a retrain cadence of N months, models are trained for calendar-fixed retrain months (with 3:
January, April, July and October) and a month is scored by the model of its `retrain_month`, trained
on the `training_months` months before that one. Where that window holds too little (less than
`min_weeks` weeks of data and fewer than `min_rows` rows: the data starts shortly before the retrain
month), the month gets a model of its own, trained on everything before it, which is the most recent
data there is. Either way no month is scored by a model that saw it or anything later.

The one exception is a month with too little before it to learn from: the data's first month, and the
first months of a small bank while fewer than `min_cold_start_rows` rows precede them. Such a month
is a cold start, scored transductively by a model trained on the data from its own month on (as many
months as it takes to hold `min_cold_start_rows` rows, at most `training_months`);
`TrainingWindow.cold_start` says so and the assets report it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import pandas as pd


@dataclass(frozen=True)
class TrainingWindow:
    """Training rows are those dated in [start, end); `cold_start` when the window is the scored month itself."""

    start: date
    end: date
    cold_start: bool = False

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


def shift_months(month: date, count: int) -> date:
    """The first day of the month `count` months after `month` (before, for a negative count)."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def retrain_month(month: date, every: int) -> date:
    """The first day of the month whose model scores `month` when models are retrained every `every` months.

    Retrain months are fixed on the calendar, whatever span a run covers: every month with 1, January, April,
    July and October with 3, January with 12.
    """
    if every < 1:
        raise ValueError(f"models are retrained every 1 or more months, not {every}")
    index = month.year * 12 + month.month - 1
    start = index - index % every
    return date(start // 12, start % 12 + 1, 1)


def training_windows(
    months: Iterable[date],
    first_day: date,
    monthly_rows: Mapping[date, int],
    every: int,
    training_months: int = 12,
    min_weeks: int = 8,
    min_rows: int = 50_000,
    min_cold_start_rows: int = 2_000,
) -> dict[date, TrainingWindow]:
    """The training window of the model that scores each month (first days of months) of `months`.

    `first_day` is the data's first transaction date; `monthly_rows` the rows of each month (keyed by
    first days of months), used to judge whether a window holds enough.
    """
    plan: dict[date, TrainingWindow] = {}
    for month in months:
        month = month.replace(day=1)
        if first_day >= month or _rows(monthly_rows, date.min, month) < min_cold_start_rows:
            start = max(first_day.replace(day=1), shift_months(month, 1 - training_months))
            end = shift_months(month, 1)
            while end < shift_months(start, training_months) and _rows(monthly_rows, start, end) < min_cold_start_rows:
                end = shift_months(end, 1)
            plan[month] = TrainingWindow(start, end, cold_start=True)
            continue
        retrain = retrain_month(month, every)
        window = TrainingWindow(shift_months(retrain, -training_months), retrain)
        if not _holds_enough(window, first_day, monthly_rows, min_weeks, min_rows):
            window = TrainingWindow(shift_months(month, -training_months), month)
        plan[month] = window
    return plan


def _holds_enough(
    window: TrainingWindow, first_day: date, monthly_rows: Mapping[date, int], min_weeks: int, min_rows: int
) -> bool:
    days = (window.end - max(window.start, first_day)).days
    return days >= 7 * min_weeks or _rows(monthly_rows, window.start, window.end) >= min_rows


def _rows(monthly_rows: Mapping[date, int], start: date, end: date) -> int:
    return sum(count for month, count in monthly_rows.items() if start <= month < end)


def training_frame(features: pd.DataFrame, window: TrainingWindow, confirmed: Collection[int] = ()) -> pd.DataFrame:
    """The rows of `features` dated within `window`, minus the confirmed anomalies' trans_ids."""
    days = pd.to_datetime(features["trans_date"])
    keep = (days >= pd.Timestamp(window.start)) & (days < pd.Timestamp(window.end))
    if confirmed:
        keep &= ~features["trans_id"].isin(list(confirmed))
    return features.loc[keep.to_numpy()]


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's column names, dtypes and values in row order (the index is ignored)."""
    digest = hashlib.sha256()
    digest.update(repr([(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
