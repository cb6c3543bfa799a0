"""Isolation Forest over the scale-free model features, in a scikit-learn Pipeline.

The pipeline imputes each feature's neutral value where it cannot be computed (no history: 0 = "as
usual") and feeds an `IsolationForest`. Isolation Forest splits each feature uniformly between its
node's minimum and maximum, so it needs no scaling, but it is sensitive to heavy tails: every ratio
is therefore a log ratio, which also makes a 10x and a 0.1x equally far from usual.

The forest is fitted on a random sample of the training rows (`fit_rows`) and calibrated on the
others, so the calibration reference is not scored in-sample.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from .base import Detector, NotFittedError
from .calibration import TailCalibrator
from .features import FEATURES_BY_NAME, MODEL_FEATURES, describe, model_features, with_frame_context

DEFAULT_FEATURES: tuple[str, ...] = tuple(feature.name for feature in MODEL_FEATURES)
CHUNK_ROWS = 50_000


def _imputer_groups(names: tuple[str, ...]) -> list[tuple[str, Any, list[str]]]:
    """One SimpleImputer per distinct neutral value."""
    fills: dict[float, list[str]] = {}
    for name in names:
        fills.setdefault(FEATURES_BY_NAME[name].fill, []).append(name)
    return [
        (f"fill_{index}", SimpleImputer(strategy="constant", fill_value=fill, keep_empty_features=True), columns)
        for index, (fill, columns) in enumerate(fills.items())
    ]


class IsolationForestDetector(Detector):
    """Isolation Forest on the model features; `shap_values` explains it with shap.TreeExplainer."""

    name = "iforest"

    def __init__(
        self,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        n_estimators: int = 100,
        max_samples: int = 1024,
        fit_rows: int = 100_000,
        calibration_rows: int = 100_000,
        threads: int = 2,
        random_state: int = 0,
    ) -> None:
        super().__init__()
        self.features = tuple(features)
        self.threads = threads
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.fit_rows = fit_rows
        self.calibration_rows = calibration_rows
        self.random_state = random_state
        self.pipeline_: Pipeline | None = None

    def _pipeline(self) -> Pipeline:
        columns = _imputer_groups(self.features)
        transformer = ColumnTransformer(columns, remainder="drop", verbose_feature_names_out=False)
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
            n_jobs=1,
        )
        return Pipeline([("features", transformer), ("forest", forest)])

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit the forest on a sample of `frame` and calibrate on the rest (or on all when small)."""
        features = model_features(with_frame_context(frame), self.features)
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(features))
        fit_part = np.sort(order[: self.fit_rows])
        rest = order[self.fit_rows :]
        calibration_part = np.sort(rest[: self.calibration_rows]) if len(rest) >= 1_000 else np.arange(len(features))
        self.pipeline_ = self._pipeline().fit(features.iloc[fit_part])
        self.calibrator_ = TailCalibrator().fit(self._raw(features.iloc[calibration_part]))
        self.transformed_names_ = list(self.pipeline_.named_steps["features"].get_feature_names_out())
        self.features_ = list(self.features)
        return self

    def _check_pipeline(self) -> Pipeline:
        if self.pipeline_ is None:
            raise NotFittedError("IsolationForestDetector is not fitted: call fit(frame) first")
        return self.pipeline_

    def _raw(self, features: pd.DataFrame) -> np.ndarray:
        pipeline = self._check_pipeline()
        if not len(features):
            return np.zeros(0)
        matrix = np.asarray(pipeline[:-1].transform(features[list(self.features)]), dtype=np.float32)
        forest = pipeline[-1]
        chunks = [matrix[start : start + CHUNK_ROWS] for start in range(0, len(matrix), CHUNK_ROWS)]
        if self.threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                parts = list(pool.map(forest.score_samples, chunks))
        else:
            parts = [forest.score_samples(chunk) for chunk in chunks]
        return -np.concatenate(parts)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """The forest's anomaly score (-score_samples: mean normalised path length, higher = more anomalous)."""
        return self._raw(model_features(with_frame_context(frame), self.features))

    def raw_score_features(self, features: pd.DataFrame) -> np.ndarray:
        """`raw_score` from an already computed `model_features` frame (with at least this detector's features)."""
        return self._raw(features)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The imputed feature matrix the forest sees, with the feature names as columns."""
        pipeline = self._check_pipeline()
        matrix = pipeline.named_steps["features"].transform(model_features(with_frame_context(frame), self.features))
        return pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=self.transformed_names_, index=frame.index)

    def shap_values(self, frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """SHAP values of the forest for `frame`'s rows, signed so that positive = pushes toward anomalous.

        shap.TreeExplainer explains the forest's expected path length (long path = normal); the values
        returned here are negated, so a positive value is a feature that shortened the row's isolation
        path, i.e. made it more anomalous. Returns (values of shape rows x features, the feature matrix).
        """
        import shap

        matrix = self.transform(frame)
        explainer = getattr(self, "explainer_", None)
        if explainer is None:
            explainer = shap.TreeExplainer(self._check_pipeline().named_steps["forest"])
            self.explainer_ = explainer
        values = explainer.shap_values(matrix.to_numpy(), check_additivity=False)
        return -np.asarray(values, dtype=np.float64), matrix

    def explain(self, frame: pd.DataFrame, top: int = 3) -> list[dict[str, Any]]:
        """Per row, the `top` features with the largest positive SHAP value, with value and typical value."""
        if not len(frame):
            return []
        context = with_frame_context(frame)
        values, _ = self.shap_values(context)
        scores = self.score(context)
        shown = {name: describe(context, name) for name in self.transformed_names_}
        out: list[dict[str, Any]] = []
        for row in range(len(frame)):
            order = np.argsort(-values[row])[:top]
            features = []
            for column in order:
                name = self.transformed_names_[column]
                if values[row, column] <= 0:
                    continue
                value, typical = shown[name]
                features.append(
                    {
                        "feature": name,
                        "label": FEATURES_BY_NAME[name].label,
                        "shap": round(float(values[row, column]), 4),
                        "value": _number(value[row]),
                        "typical": _number(typical[row]),
                    }
                )
            out.append({"detector": self.name, "score": round(float(scores[row]), 4), "features": features})
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("explainer_", None)
        return state


def _number(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 2)
