"""Per-feature tail evidence: how rare each of a transaction's model features is, added up.

For every model feature the detector keeps the training rows' distribution of the distance from the
feature's median (a `TailCalibrator` each) and scores a row by the sum over features of
-log10(the share of training rows at least as far out). It is a histogram-based outlier score
(HBOS) with calibrated tails: a row far out in one feature (a ledger off by 2,000, a payment 40
times the account's usual, a fourth identical posting) gets that feature's full evidence, which an
Isolation Forest over thirty features dilutes, and a row a little unusual in many features adds up.
Features are taken as independent, which is what makes it fast, explainable feature by feature and
robust to data it was not tuned on; the Isolation Forest beside it in the ensemble sees their
interactions. Each feature's tail slope has a floor (`MIN_SCALE`), so a feature whose training values
are nearly all one value (a ledger gap of 0.10 rounding) does not turn 0.20 into a certainty.

The per-feature tails are fitted on a sample of the training rows (`fit_rows`) without each
feature's largest `trim` share (0.2 %), so a few anomalies in the training rows (a kind no rule
excluded) do not teach the detector that a broken ledger is merely uncommon; beyond that the tail is
extrapolated. The summed score is calibrated on other training rows.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd

from .base import NotFittedError
from .calibration import TailCalibrator
from .features import FEATURES_BY_NAME, MODEL_FEATURES, describe
from .iforest import finite
from .pipelines import FeatureDetector

DEFAULT_FEATURES: tuple[str, ...] = tuple(feature.name for feature in MODEL_FEATURES)
MIN_SCALE = 0.1
"""Model features are logs and log ratios: beyond its training tail, a feature gains at most one decade of
evidence per 0.23 (a tenth, times ln 10) of its units, however narrow that tail was."""


class FeatureTailsDetector(FeatureDetector):
    """The sum over model features of each feature's calibrated tail evidence."""

    name = "tails"

    def __init__(
        self,
        random_state: int = 0,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        fit_rows: int = 100_000,
        calibration_rows: int = 100_000,
        trim: float = 0.002,
    ) -> None:
        super().__init__(features, random_state=random_state)
        self.trim = trim
        self.fit_rows = fit_rows
        self.calibration_rows = calibration_rows
        self.tails_: dict[str, TailCalibrator] = {}

    def _filled(self, features: pd.DataFrame) -> np.ndarray:
        fills = np.asarray([FEATURES_BY_NAME[name].fill for name in self.features])
        values = features[list(self.features)].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isnan(values), fills, values)

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit each feature's tail on a sample of `frame` and calibrate the sum on the rest (or on all when small)."""
        values = self._filled(self.fit_peers(frame))
        order = np.random.default_rng(self.random_state).permutation(len(values))
        fit_part = np.sort(order[: self.fit_rows])
        rest = order[self.fit_rows :]
        calibration_part = np.sort(rest[: self.calibration_rows]) if len(rest) >= 1_000 else np.arange(len(values))
        self.medians_ = np.median(values[fit_part], axis=0)
        distances = np.abs(values[fit_part] - self.medians_)
        self.tails_ = {
            name: TailCalibrator(trim=self.trim, min_scale=MIN_SCALE).fit(distances[:, i])
            for i, name in enumerate(self.features)
        }
        self.calibrate(self.per_feature(values[calibration_part]).sum(axis=1))
        self.features_ = list(self.features)
        return self

    def per_feature(self, values: np.ndarray) -> np.ndarray:
        """Each feature's tail evidence per row (rows x features)."""
        if not self.tails_:
            raise NotFittedError("FeatureTailsDetector is not fitted: call fit(frame) first")
        distances = np.abs(values - self.medians_)
        return np.column_stack([self.tails_[name].evidence(distances[:, i]) for i, name in enumerate(self.features)])

    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The sum of the features' tail evidence; `history` is not used."""
        if not len(frame):
            return np.zeros(0)
        return self.per_feature(self._filled(self.feature_frame(frame))).sum(axis=1)

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row, the `top` features furthest in their tails, with value and typical value."""
        if not len(frame):
            return []
        context = self.context(frame)
        evidence = self.per_feature(self._filled(self.feature_frame(frame)))
        scores = self.calibrator().cdf(evidence.sum(axis=1))
        shown = {name: describe(context, name) for name in self.features}
        out = []
        for row in range(len(frame)):
            listed = []
            for column in np.argsort(-evidence[row])[:top]:
                if evidence[row, column] < 1:
                    continue
                name = self.features[column]
                value, typical = shown[name]
                listed.append(
                    {
                        "feature": name,
                        "label": FEATURES_BY_NAME[name].label,
                        "evidence": round(float(evidence[row, column]), 3),
                        "value": finite(value[row]),
                        "typical": finite(typical[row]),
                    }
                )
            out.append({"detector": self.name, "score": round(float(scores[row]), 4), "features": listed})
        return out
