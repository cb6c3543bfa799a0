"""The detector contract shared by every machine-learning detector, and small column helpers.

A detector follows the scikit-learn / PyOD shape and implements four things:

- `name`, the key it is registered under (`registry.DETECTORS`) and the key of its score in the
  per-detector score map of `anomaly.transaction_scores`;
- `fit(frame) -> self` learns from training rows of `marts.fct_transaction_features` and calibrates
  itself by calling `self.calibrate(raw)` with the raw scores of training rows it did not learn from;
- `raw_score(frame, history=None)`: uncalibrated anomaly scores, higher = more anomalous, on no fixed
  scale. `history` holds the same accounts' rows from before `frame` (at most `lookback_days` days),
  for detectors that read sequences; detectors with `lookback_days = 0` ignore it;
- `explain(frame, top=3, history=None)`: per row, a JSON-serializable dict with at least `detector`,
  `score` and a list under `features` (each with `feature`, `label` and, where it has one, `text`).

The base gives the calibrated views from the detector's own `TailCalibrator`:
`score(frame)` in [0, 1] (the share of the training reference scoring lower) and `evidence(frame)`
= -log10(tail probability), unbounded, so the strongest rows keep their order. Scores are
deterministic: every random choice uses the detector's `random_state`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from .calibration import TailCalibrator


class NotFittedError(RuntimeError):
    """The detector was used before `fit`."""


class Detector(ABC):
    """A fitted-on-training, calibrated anomaly detector over feature-mart rows."""

    name: ClassVar[str] = "detector"
    lookback_days: ClassVar[int] = 0
    """Days of each account's earlier rows `raw_score` needs as `history` (0: none)."""
    uses_labels: ClassVar[bool] = False
    """Fitted on every training row with its `analyst_label`, labelled frauds and rule hits included."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state
        self.calibrator_: TailCalibrator | None = None

    @abstractmethod
    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn from `frame` (training rows only) and calibrate against it; returns self."""

    @abstractmethod
    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """Uncalibrated anomaly scores, one per row of `frame`, higher = more anomalous."""

    @abstractmethod
    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row of `frame`, the detector's reasons as a JSON-serializable dict."""

    def calibrate(self, reference_raw: np.ndarray) -> None:
        """Fit the calibration on raw scores of training rows the detector did not learn from."""
        self.calibrator_ = TailCalibrator().fit(reference_raw)

    @property
    def is_fitted(self) -> bool:
        return self.calibrator_ is not None

    def calibrator(self) -> TailCalibrator:
        """The fitted calibration; `NotFittedError` before `fit`."""
        if self.calibrator_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(frame) first")
        return self.calibrator_

    def score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """Calibrated anomaly scores in [0, 1], comparable across months (see `TailCalibrator`)."""
        calibrator = self.calibrator()
        return calibrator.cdf(self.raw_score(frame, history))

    def evidence(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """-log10 of each row's tail probability under the training reference (0 = typical, 3 = 1 in 1,000)."""
        calibrator = self.calibrator()
        return calibrator.evidence(self.raw_score(frame, history))

    def parameters(self) -> dict[str, Any]:
        """The constructor settings (public, non-fitted attributes), JSON-serializable."""
        return {
            key: value
            for key, value in vars(self).items()
            if not key.endswith("_") and not key.startswith("_") and isinstance(value, int | float | str | tuple | bool)
        }


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
