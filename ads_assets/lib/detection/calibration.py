"""Calibration of raw detector scores against the detector's training reference distribution.

`TailCalibrator.fit(reference)` keeps a quantile grid of the raw scores of the training rows and an
exponential model of their upper tail. `cdf(raw)` is then the share of the reference scoring at most
`raw` (linear between grid points) and, above the reference's (1 - tail) quantile q, the fitted tail
1 - tail * exp(-(raw - q) / scale), which keeps growing beyond the largest reference score instead of
saturating at 1. The tail is computed in log space and never clipped, so `evidence` has no ceiling and
keeps the order of the strongest rows: no two raw scores that differ share the maximum evidence. The share is
inclusive (the reference rows scoring at least as high), so a reference that is one repeated value
gives that value no evidence at all. The map is fixed once fitted: the same raw score gets the same calibrated score in
every month, unlike a min-max of the scored batch, so months are comparable and a quiet month stays
quiet. `evidence(raw)` = -log10(1 - cdf(raw)) is the same thing on an additive scale (3 = as rare as
1 row in 1,000 of the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

MIN_TAIL_PROBABILITY = 1e-300
"""The smallest tail probability `tail_probability` returns; `evidence` is computed in log space without it."""


@dataclass
class TailCalibrator:
    """Empirical CDF of a reference sample with an exponential upper tail."""

    grid_size: int = 2001
    tail: float = 0.01
    trim: float = 0.0
    """Share of the largest reference values left out before fitting, as possible contamination."""
    min_scale: float = 0.0
    """The smallest tail scale, in raw units: a reference whose top is one repeated value gets this slope."""
    values_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    probabilities_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The share of the reference strictly below each of `values_`."""
    tail_start_: float = 0.0
    tail_scale_: float = 1.0
    reference_size_: int = 0

    def fit(self, reference: np.ndarray) -> Self:
        """Fit on the raw scores of the training reference (NaN ignored); returns self."""
        reference = np.asarray(reference, dtype=np.float64)
        reference = np.sort(reference[np.isfinite(reference)])
        if not len(reference):
            raise ValueError("cannot calibrate on an empty reference")
        if self.trim > 0:
            reference = reference[: max(1, int(np.ceil(len(reference) * (1.0 - self.trim))))]
        probabilities = np.linspace(0.0, 1.0, self.grid_size)
        quantiles = np.quantile(reference, probabilities)
        values = np.unique(quantiles)
        self.values_ = values
        self.probabilities_ = np.searchsorted(reference, values, side="left") / len(reference)
        self.tail_start_ = float(np.quantile(reference, 1.0 - self.tail))
        excess = reference[reference > self.tail_start_] - self.tail_start_
        spread = float(np.std(reference)) or 1.0
        self.tail_scale_ = max(
            float(excess.mean()) if len(excess) and excess.mean() > 0 else 0.1 * spread, self.min_scale
        )
        self.reference_size_ = len(reference)
        return self

    def log10_tail_probability(self, raw: np.ndarray) -> np.ndarray:
        """log10 of the share of the reference expected to score at least `raw`: 0 down to -inf, never clipped."""
        if not self.reference_size_:
            raise RuntimeError("TailCalibrator is not fitted")
        raw = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=-np.inf, posinf=np.finfo(np.float64).max)
        below = 1.0 - np.interp(raw, self.values_, self.probabilities_, left=0.0, right=1.0)
        start = max(1.0 - float(np.interp(self.tail_start_, self.values_, self.probabilities_)), 1e-9)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            beyond = np.log10(start) - (raw - self.tail_start_) / (self.tail_scale_ * np.log(10.0))
            inside = np.log10(np.clip(below, 1.0 / (self.reference_size_ + 1), 1.0))
            unseen = -np.log10(self.reference_size_ + 1.0) - (raw - self.values_[-1]) / (
                self.tail_scale_ * np.log(10.0)
            )
        beyond = np.where(raw > self.values_[-1], np.minimum(beyond, unseen), beyond)
        return np.minimum(np.where(raw > self.tail_start_, beyond, inside), 0.0)

    def tail_probability(self, raw: np.ndarray) -> np.ndarray:
        """Share of the reference expected to score at least `raw`, in (0, 1]."""
        return np.clip(10.0 ** self.log10_tail_probability(raw), MIN_TAIL_PROBABILITY, 1.0)

    def cdf(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated scores in [0, 1], non-decreasing in `raw`."""
        return 1.0 - self.tail_probability(raw)

    def evidence(self, raw: np.ndarray) -> np.ndarray:
        """-log10 of the tail probability: 0 for typical rows, 2 for the reference's top 1 %, unbounded above.

        Never -0.0 (a probability of 1 gives 0.0), so JSON and Postgres numeric write the same text.
        """
        return 0.0 - self.log10_tail_probability(raw)

    def summary(self) -> dict[str, Any]:
        """A JSON-serializable description (reference size, tail start and scale, a few quantiles)."""
        return {
            "reference_size": self.reference_size_,
            "tail": self.tail,
            "trim": self.trim,
            "min_scale": self.min_scale,
            "tail_start": self.tail_start_,
            "tail_scale": self.tail_scale_,
            "quantiles": {
                str(q): float(np.interp(q, self.probabilities_, self.values_)) for q in (0.5, 0.9, 0.99, 0.999)
            },
        }
