"""Isolation Forest over the model features, in a scikit-learn Pipeline.

The pipeline imputes each feature's neutral value where it cannot be computed (no history: 0 = "as
usual") and feeds an `IsolationForest`. Isolation Forest splits each feature uniformly between its
node's minimum and maximum, so it needs no scaling, but it is sensitive to heavy tails: every ratio
is therefore a log ratio, which also makes a 10x and a 0.1x equally far from usual. It sees every
model feature, the raw signals (amount, balance, kind rarity) among them.

The forest is fitted on a random sample of the training rows (`fit_rows`) and calibrated on the
others, so the calibration reference is not scored in-sample. `explain` gives each row's SHAP values
(shap.TreeExplainer), signed so that positive pushes toward anomalous.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline

from .features import FEATURES_BY_NAME, MODEL_FEATURES, describe
from .pipelines import PipelineDetector, imputer

DEFAULT_FEATURES: tuple[str, ...] = tuple(feature.name for feature in MODEL_FEATURES)


class IsolationForestDetector(PipelineDetector):
    """Isolation Forest on the model features; `shap_values` explains it with shap.TreeExplainer."""

    name = "iforest"

    def __init__(
        self,
        random_state: int = 0,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        n_estimators: int = 100,
        max_samples: int = 1024,
        fit_rows: int = 100_000,
        calibration_rows: int = 100_000,
        threads: int = 2,
    ) -> None:
        super().__init__(features, threads=threads, random_state=random_state)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.fit_rows = fit_rows
        self.calibration_rows = calibration_rows

    def _pipeline(self, training_rows: int) -> Pipeline:
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, max(training_rows, 2)),
            random_state=self.random_state,
            n_jobs=1,
        )
        return Pipeline([("features", imputer(self.features)), ("forest", forest)])

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit the forest on a sample of `frame` and calibrate on the rest (or on all when small)."""
        features = self.fit_peers(frame)
        order = np.random.default_rng(self.random_state).permutation(len(features))
        fit_part = np.sort(order[: self.fit_rows])
        rest = order[self.fit_rows :]
        calibration_part = np.sort(rest[: self.calibration_rows]) if len(rest) >= 1_000 else np.arange(len(features))
        self.fit_pipeline(features, fit_part, calibration_part)
        self.transformed_names_ = list(self._check_pipeline().named_steps["features"].get_feature_names_out())
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The imputed feature matrix the forest sees, with the feature names as columns."""
        matrix = self.inputs(self.feature_frame(frame))
        return pd.DataFrame(matrix, columns=self.transformed_names_, index=frame.index)

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

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row, the `top` features with the largest positive SHAP value, with value and typical value."""
        if not len(frame):
            return []
        context = self.context(frame)
        values, _ = self.shap_values(context)
        scores = self.score(context)
        shown = {name: describe(context, name) for name in self.transformed_names_}
        out: list[dict[str, Any]] = []
        for row in range(len(frame)):
            features = []
            for column in np.argsort(-values[row])[:top]:
                name = self.transformed_names_[column]
                if values[row, column] <= 0:
                    continue
                value, typical = shown[name]
                features.append(
                    {
                        "feature": name,
                        "label": FEATURES_BY_NAME[name].label,
                        "shap": round(float(values[row, column]), 4),
                        "value": finite(value[row]),
                        "typical": finite(typical[row]),
                    }
                )
            out.append({"detector": self.name, "score": round(float(scores[row]), 4), "features": features})
        return out


def finite(value: float) -> float | None:
    """A number rounded to cents for JSON, None when missing or not finite."""
    return None if value is None or not np.isfinite(value) else round(float(value), 2)
