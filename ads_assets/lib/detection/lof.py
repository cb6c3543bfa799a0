"""Local Outlier Factor (novelty mode) against a bounded, stratified reference sample.

LOF compares a row's local density with its neighbours' in the reference. The reference is a sample
of at most `reference_rows` training rows stratified by transaction kind (every kind keeps at least
`min_per_kind` rows, so rare kinds have neighbours of their own kind), with identical feature vectors
collapsed (recurring payments repeat exactly, and duplicates break LOF's density ratios). Scoring
is a k-d tree query per row in chunks, so time grows linearly with the rows scored. It uses a few
model features, robustly scaled: the amount against the account's own history and against its
peers, the raw amount, and the day's and the month's spending of the kind against usual; distances
lose meaning in many dimensions and a k-d tree query slows down with each one. The raw score is the
log of the local outlier factor, so a row 1,000 times less dense than its neighbours is not a
million times more anomalous than one 10 times less dense.

The reference is calibrated on training rows outside the reference sample.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler

from .base import stratified_sample, text
from .features import FEATURES_BY_NAME, describe, model_features
from .iforest import finite
from .pipelines import PipelineDetector, imputer

DEFAULT_FEATURES: tuple[str, ...] = (
    "amount_vs_median",
    "amount_vs_peers",
    "log_amount",
    "day_spend_vs_usual",
    "month_kind_amount_vs_usual",
)


class _LogFactor(LocalOutlierFactor):
    """LocalOutlierFactor whose `score_samples` is minus the log of the outlier factor."""

    def score_samples(self, X: Any) -> np.ndarray:
        return -np.log(np.fmax(-super().score_samples(X), 1e-9))


class LocalOutlierFactorDetector(PipelineDetector):
    """LocalOutlierFactor(novelty=True) on robustly scaled model features."""

    name = "lof"

    def __init__(
        self,
        random_state: int = 0,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        n_neighbors: int = 15,
        reference_rows: int = 5_000,
        min_per_kind: int = 200,
        calibration_rows: int = 20_000,
        threads: int = 2,
    ) -> None:
        super().__init__(features, threads=threads, random_state=random_state)
        self.n_neighbors = n_neighbors
        self.reference_rows = reference_rows
        self.min_per_kind = min_per_kind
        self.calibration_rows = calibration_rows

    def _pipeline(self, training_rows: int) -> Pipeline:
        neighbours = max(1, min(self.n_neighbors, training_rows - 1))
        lof = _LogFactor(n_neighbors=neighbours, novelty=True, algorithm="kd_tree", leaf_size=20)
        scale = RobustScaler(quantile_range=(10.0, 90.0))
        return Pipeline([("features", imputer(self.features)), ("scale", scale), ("lof", lof)])

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit on a stratified, de-duplicated reference sample; calibrate on other training rows."""
        features = self.fit_peers(frame)
        sample = stratified_sample(
            text(frame, "transaction_kind"), self.reference_rows, self.random_state, self.min_per_kind
        )
        rounded = features.iloc[sample].fillna({name: FEATURES_BY_NAME[name].fill for name in self.features}).round(3)
        reference = sample[~rounded.duplicated().to_numpy()]
        outside = np.setdiff1d(np.arange(len(features)), sample)
        if len(outside) < 1_000:
            outside = np.arange(len(features))
        rng = np.random.default_rng(self.random_state)
        calibration = np.sort(rng.permutation(outside)[: self.calibration_rows])
        self.fit_pipeline(features, reference, calibration)
        self.reference_size_ = len(reference)
        return self

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row, the features whose scaled value lies furthest from the reference's centre."""
        if not len(frame):
            return []
        context = self.context(frame)
        features = model_features(context, self.features)
        scaled = self.inputs(features)
        scores = self.calibrator().cdf(self._raw(features))
        shown = {name: describe(context, name) for name in self.features}
        out = []
        for row in range(len(frame)):
            listed = []
            for column in np.argsort(-np.abs(scaled[row]))[:top]:
                name = self.features[column]
                value, typical = shown[name]
                listed.append(
                    {
                        "feature": name,
                        "label": FEATURES_BY_NAME[name].label,
                        "scaled_distance": round(float(scaled[row, column]), 3),
                        "value": finite(value[row]),
                        "typical": finite(typical[row]),
                    }
                )
            out.append({"detector": self.name, "score": round(float(scores[row]), 4), "features": listed})
        return out
