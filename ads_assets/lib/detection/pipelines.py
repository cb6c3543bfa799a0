"""The shared parts of the detectors over model features, and of those that are scikit-learn pipelines.

A `FeatureDetector` learns the peer statistics of its training rows (`peers.PeerProfile`) and turns
rows into its model features (`features.model_features`). A `PipelineDetector` imputes each
feature's neutral value and feeds a scikit-learn `Pipeline` whose last step has `score_samples`
(higher = more normal). Scoring runs in chunks of `CHUNK_ROWS` on `threads` threads, so time grows
linearly and memory stays bounded.

Tree and neighbour scores stop growing once a row lies beyond everything seen in training: two rows
ten and a thousand times outside the training range isolate at the same depth. The raw score adds
`MAGNITUDE_WEIGHT` times the log of how far (in robust units of the training rows) the row's inputs
lie outside the training range, so such ties at the top are broken by magnitude.
"""

from __future__ import annotations

from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from .base import Detector, NotFittedError
from .features import FEATURES_BY_NAME, model_features, with_frame_context
from .peers import PeerProfile

CHUNK_ROWS = 50_000
MAGNITUDE_WEIGHT = 0.02
RANGE_QUANTILES = (0.005, 0.995)


def imputer(names: tuple[str, ...]) -> ColumnTransformer:
    """One SimpleImputer per distinct neutral value of the features `names`, in that order."""
    fills: dict[float, list[str]] = {}
    for name in names:
        fills.setdefault(FEATURES_BY_NAME[name].fill, []).append(name)
    groups = [
        (f"fill_{index}", SimpleImputer(strategy="constant", fill_value=fill, keep_empty_features=True), columns)
        for index, (fill, columns) in enumerate(fills.items())
    ]
    return ColumnTransformer(groups, remainder="drop", verbose_feature_names_out=False)


class FeatureDetector(Detector):
    """A detector over model features, judged against the peers of its training rows."""

    def __init__(self, features: tuple[str, ...], random_state: int = 0) -> None:
        super().__init__(random_state=random_state)
        self.features = tuple(features)
        self.peers_: PeerProfile | None = None

    def fit_peers(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Learn the peer statistics of the training `frame`; returns its model features."""
        self.peers_ = PeerProfile().fit(frame)
        return self.feature_frame(frame)

    def context(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the frame-level and peer columns the features read."""
        if self.peers_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(frame) first")
        return self.peers_.transform(with_frame_context(frame))

    def feature_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The detector's model features of every row (NaN where not computable)."""
        return model_features(self.context(frame), self.features)


class PipelineDetector(FeatureDetector):
    """A detector whose model is a scikit-learn Pipeline over model features, scored in chunks."""

    def __init__(self, features: tuple[str, ...], threads: int = 2, random_state: int = 0) -> None:
        super().__init__(features, random_state=random_state)
        self.threads = threads
        self.pipeline_: Pipeline | None = None

    @abstractmethod
    def _pipeline(self, training_rows: int) -> Pipeline:
        """The unfitted pipeline: features -> ... -> an estimator with `score_samples`."""

    def fit_pipeline(self, features: pd.DataFrame, fit_rows: np.ndarray, calibration_rows: np.ndarray) -> None:
        """Fit the pipeline on `fit_rows` of `features`, learn the training range, calibrate on `calibration_rows`."""
        self.pipeline_ = self._pipeline(len(fit_rows)).fit(features.iloc[fit_rows])
        inputs = self.inputs(features.iloc[fit_rows])
        low, high = np.quantile(inputs, RANGE_QUANTILES, axis=0)
        quartiles = np.quantile(inputs, (0.25, 0.75), axis=0)
        self.range_low_, self.range_high_ = low, high
        self.range_scale_ = np.fmax(quartiles[1] - quartiles[0], np.fmax(high - low, 1e-6) / 10)
        self.calibrate(self._raw(features.iloc[calibration_rows]))
        self.features_ = list(self.features)

    def _check_pipeline(self) -> Pipeline:
        if self.pipeline_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(frame) first")
        return self.pipeline_

    def inputs(self, features: pd.DataFrame) -> np.ndarray:
        """The matrix the pipeline's estimator sees (imputed, and transformed by any steps before it)."""
        pipeline = self._check_pipeline()
        return np.asarray(pipeline[:-1].transform(features[list(self.features)]), dtype=np.float64)

    def magnitude(self, inputs: np.ndarray) -> np.ndarray:
        """log1p of how far each row lies outside the training range, summed over inputs in robust units."""
        outside = np.fmax(inputs - self.range_high_, 0.0) + np.fmax(self.range_low_ - inputs, 0.0)
        return np.log1p((outside / self.range_scale_).sum(axis=1))

    def _raw(self, features: pd.DataFrame) -> np.ndarray:
        if not len(features):
            return np.zeros(0)
        inputs = self.inputs(features)
        estimator = self._check_pipeline()[-1]
        chunks = [inputs[start : start + CHUNK_ROWS].astype(np.float32) for start in range(0, len(inputs), CHUNK_ROWS)]
        if self.threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                parts = list(pool.map(estimator.score_samples, chunks))
        else:
            parts = [estimator.score_samples(chunk) for chunk in chunks]
        return -np.concatenate(parts) + MAGNITUDE_WEIGHT * self.magnitude(inputs)

    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The estimator's anomaly score (-score_samples) plus the magnitude tie-break; `history` is not used."""
        return self._raw(self.feature_frame(frame))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("explainer_", None)
        return state
