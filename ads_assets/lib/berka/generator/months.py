"""The month grid a generated data set covers, as numpy day numbers (days since 1970-01-01)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def parse_month(text: str) -> np.datetime64:
    """'YYYY-MM' as a numpy month; ValueError for anything else."""
    parts = text.split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2 or not (parts[0] + parts[1]).isdigit():
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
    if not 1 <= int(parts[1]) <= 12:
        raise ValueError(f"month out of range in {text!r}")
    return np.datetime64(text, "M")


@dataclass(frozen=True)
class Window:
    """Consecutive calendar months; month index 0 is the first."""

    first: np.datetime64
    months: int

    @classmethod
    def between(cls, start: str, end: str) -> Window:
        """The months from `start` to `end` inclusive, both 'YYYY-MM'."""
        first, last = parse_month(start), parse_month(end)
        count = int((last - first).astype(int)) + 1
        if count < 1:
            raise ValueError(f"end {end} is before start {start}")
        return cls(first, count)

    @property
    def starts(self) -> np.ndarray:
        """First day of each month, plus the day after the last month, as day numbers."""
        return (self.first + np.arange(self.months + 1)).astype("datetime64[D]").astype(np.int64)

    @property
    def lengths(self) -> np.ndarray:
        """Days in each month."""
        return np.diff(self.starts)

    @property
    def years(self) -> np.ndarray:
        """Calendar year of each month."""
        return (self.first + np.arange(self.months)).astype("datetime64[Y]").astype(np.int64) + 1970

    @property
    def months_of_year(self) -> np.ndarray:
        """Calendar month (1..12) of each month."""
        return (self.first + np.arange(self.months)).astype(np.int64) % 12 + 1

    @property
    def first_day(self) -> int:
        return int(self.starts[0])

    @property
    def last_day(self) -> int:
        return int(self.starts[-1]) - 1

    def month_of(self, days: np.ndarray) -> np.ndarray:
        """Month index of each day number."""
        return np.searchsorted(self.starts, days, side="right") - 1

    def labels(self) -> np.ndarray:
        """'YYYY-MM' of each month."""
        return np.datetime_as_string(self.first + np.arange(self.months), unit="M")
