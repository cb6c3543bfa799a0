"""Isolation Forest on the raw columns: what a plain model sees, as one detector of the ensemble.

Amount and balance in crowns, and the type, operation and category codes one-hot: nothing relative
to the account or its peers. Because Isolation Forest splits uniformly between a node's minimum and
maximum, crowns (not logs) make the largest amounts of the bank isolate first, whatever the
account's habits: a large fraud stands out here even where a customer's own history is short or
noisy. The behavioural detectors judge against the account and its peers; this one keeps the
ensemble from ranking below a plain forest on the raw columns.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from .base import numeric, text
from .iforest import finite
from .pipelines import PipelineDetector

NUMERIC = ("amount", "balance_after")
CODES = ("transaction_type", "operation", "category")
LABELS = {"amount": "amount in crowns", "balance_after": "balance after the transaction in crowns"}


class RawIsolationForestDetector(PipelineDetector):
    """IsolationForest on amount, balance and one-hot type / operation / category."""

    name = "raw_iforest"

    def __init__(
        self,
        random_state: int = 0,
        n_estimators: int = 100,
        max_samples: int = 1024,
        fit_rows: int = 100_000,
        calibration_rows: int = 100_000,
        threads: int = 2,
    ) -> None:
        super().__init__(NUMERIC + CODES, threads=threads, random_state=random_state)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.fit_rows = fit_rows
        self.calibration_rows = calibration_rows

    def _pipeline(self, training_rows: int) -> Pipeline:
        columns = ColumnTransformer(
            [
                ("numeric", "passthrough", list(NUMERIC)),
                ("codes", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CODES)),
            ]
        )
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, max(training_rows, 2)),
            random_state=self.random_state,
            n_jobs=1,
        )
        return Pipeline([("columns", columns), ("forest", forest)])

    def feature_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The raw columns: amount and balance as numbers (0 where missing), the codes as text."""
        columns: dict[str, np.ndarray] = {name: np.nan_to_num(numeric(frame, name), nan=0.0) for name in NUMERIC}
        columns |= {name: np.where(text(frame, name) == "", "none", text(frame, name)) for name in CODES}
        return pd.DataFrame(columns, index=frame.index)

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit the forest on a sample of `frame` and calibrate on the rest (or on all when small)."""
        features = self.feature_frame(frame)
        order = np.random.default_rng(self.random_state).permutation(len(features))
        fit_part = np.sort(order[: self.fit_rows])
        rest = order[self.fit_rows :]
        calibration_part = np.sort(rest[: self.calibration_rows]) if len(rest) >= 1_000 else np.arange(len(features))
        self.fit_pipeline(features, fit_part, calibration_part)
        return self

    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The forest's anomaly score (-score_samples) plus the magnitude tie-break; `history` is not used."""
        self._check_pipeline()
        return self._raw(self.feature_frame(frame))

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row, the raw amount and balance, the larger departure from the training range first."""
        if not len(frame):
            return []
        features = self.feature_frame(frame)
        scores = self.calibrator().cdf(self._raw(features))
        inputs = self.inputs(features)[:, : len(NUMERIC)]
        middle = (self.range_low_[: len(NUMERIC)] + self.range_high_[: len(NUMERIC)]) / 2
        spread = self.range_scale_[: len(NUMERIC)]
        out = []
        for row in range(len(frame)):
            order = np.argsort(-np.abs(inputs[row] - middle) / spread)[:top]
            listed = [
                {
                    "feature": NUMERIC[column],
                    "label": LABELS[NUMERIC[column]],
                    "value": finite(inputs[row, column]),
                    "typical": finite(middle[column]),
                }
                for column in order
            ]
            out.append({"detector": self.name, "score": round(float(scores[row]), 4), "features": listed})
        return out
