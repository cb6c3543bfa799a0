"""The detector interface shared by every detector of the library, and small helpers.

A detector follows the scikit-learn / PyOD shape:

- `fit(frame)` learns from a training frame of `marts.fct_transaction_features` rows and returns the
  detector; it also fits the detector's calibration against that training reference;
- `raw_score(frame)` is the uncalibrated anomaly score, higher = more anomalous, on no fixed scale;
- `score(frame)` is the calibrated score in [0, 1]: the share of the training reference scoring lower
  (with an extrapolated tail beyond it), so 0.999 means "more anomalous than 99.9 % of training" in
  every month, whatever the month's own mix;
- `explain(frame, top)` gives, per row, a JSON-serializable dict of why the detector scored it so.

Scores are deterministic: every random choice uses the detector's `random_state`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np
import pandas as pd

from .calibration import TailCalibrator


class NotFittedError(RuntimeError):
    """The detector was used before `fit`."""


class Detector(ABC):
    """A fitted-on-training, calibrated anomaly detector over feature-mart rows."""

    name: str = "detector"

    def __init__(self) -> None:
        self.calibrator_: TailCalibrator | None = None

    @abstractmethod
    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn from `frame` (training rows only) and calibrate against it; returns self."""

    @abstractmethod
    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated anomaly scores, one per row, higher = more anomalous."""

    def raw_score_features(self, features: pd.DataFrame) -> np.ndarray:
        """`raw_score` from an already computed `features.model_features` frame; by default recomputes nothing else."""
        raise NotImplementedError(f"{type(self).__name__} scores frames only")

    @abstractmethod
    def explain(self, frame: pd.DataFrame, top: int = 3) -> list[dict[str, Any]]:
        """Per row, the detector's reasons as a JSON-serializable dict."""

    @property
    def is_fitted(self) -> bool:
        return self.calibrator_ is not None

    def _check_fitted(self) -> TailCalibrator:
        if self.calibrator_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(frame) first")
        return self.calibrator_

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated anomaly scores in [0, 1], comparable across months (see `TailCalibrator`)."""
        return self._check_fitted().cdf(self.raw_score(frame))

    def evidence(self, frame: pd.DataFrame) -> np.ndarray:
        """-log10 of each row's tail probability under the training reference (0 = typical, 3 = 1 in 1,000)."""
        return self._check_fitted().evidence(self.raw_score(frame))


def numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 (NaN for missing, booleans as 0/1); all-NaN when the column is absent."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = frame[column]
    if values.dtype == object or isinstance(values.dtype, pd.BooleanDtype):
        values = pd.to_numeric(
            values.astype("Float64") if isinstance(values.dtype, pd.BooleanDtype) else values, errors="coerce"
        )
    return np.asarray(values.to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64)


def flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean column as bool (missing = False); all False when the column is absent."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.nan_to_num(numeric(frame, column), nan=0.0) > 0


def text(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A text column as an object array of str ('' for missing)."""
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    values = frame[column]
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(numbers) & (numbers == np.floor(numbers))
        out = np.full(len(numbers), "", dtype=object)
        out[whole] = numbers[whole].astype(np.int64).astype(str)
        fractional = np.flatnonzero(np.isfinite(numbers) & ~whole)
        out[fractional] = [repr(float(number)) for number in numbers[fractional]]
        return out
    if values.dtype == object:
        return values.where(values.notna(), "").astype(str).to_numpy(dtype=object)
    return values.astype("str").to_numpy(dtype=object, na_value="")


def stratified_sample(strata: np.ndarray, size: int, random_state: int, minimum: int = 50) -> np.ndarray:
    """Sorted positions of at most `size` rows, proportional per stratum with at least `minimum` each.

    A stratum smaller than its share is taken whole; the sample is deterministic for `random_state`.
    """
    count = len(strata)
    if count <= size:
        return np.arange(count)
    rng = np.random.default_rng(random_state)
    labels, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    quota = np.maximum(np.minimum(counts, minimum), np.floor(counts * size / count).astype(np.int64))
    chosen: list[np.ndarray] = []
    for index in range(len(labels)):
        members = np.flatnonzero(inverse == index)
        take = int(min(quota[index], len(members)))
        chosen.append(members if take == len(members) else rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))
