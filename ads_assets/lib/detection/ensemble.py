"""One score per transaction from the rules and the machine-learning detectors, and the alerts.

How the parts combine:

- every ML detector is calibrated against its own training reference; its evidence is
  e = -log10(tail probability) (0 = typical, 3 = as rare as 1 training row in 1,000). The ensemble
  averages the detectors' evidence with `weights` and calibrates that average once more against the
  training reference, giving the ML evidence E;
- the ML part of the score is M = ml_cap * E / (E + h), h chosen so that a row no rule hits scores
  exactly `threshold` when it is as rare as `ml_alert_rate` of the training rows; M stays below
  `ml_cap` (0.8) however extreme the row;
- the rules' part R is the noisy-OR of their severities;
- evidence = 1 - (1 - R)(1 - M): a weak rule hit (0.3) needs ML support to reach an alert, a
  moderate rule (0.6) with strong ML support (0.7) reaches 0.88, and rows no rule hits are ranked
  by the ML alone;
- rows a certain rule hit (severity >= CERTAIN = 0.95: a broken ledger, a payment posted twice, an
  amount exactly 10x a specific usual amount) score CERTAIN + (1 - CERTAIN) * evidence, all others
  CERTAIN * evidence: what is certain always ranks first, and the ML orders the rest.

Alerts: a row is flagged when its score reaches `threshold` (default 0.5: a rule of severity 0.5, or
ML evidence as rare as `ml_alert_rate` of training, or a combination), with at most `alert_budget`
of each month's rows flagged (the highest scores are kept). `threshold_`, `training_flagged_rate_`
(the share of the training reference that would be flagged) and, after scoring, `flagged_rate_`
(the share of the last scored frame flagged) are exposed; `Scored.flagged_rate` is the same for
one scoring.

Training convention: the caller passes the training frame (by default the months before the scored
month, see `training_frame`); `fit` drops rows any rule hits and rows analysts confirmed (a set of
trans_ids), so the ML learns what normal looks like. With a retrain cadence of N months, a month is
scored by the model of its `retrain_month` (the latest month at or before it that is a multiple of N
months from January of year 0), trained on the months before that one: never on the scored month.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

import numpy as np
import pandas as pd

from .base import Detector, NotFittedError, numeric
from .calibration import TailCalibrator
from .features import model_features, with_frame_context
from .iforest import IsolationForestDetector
from .lof import LocalOutlierFactorDetector
from .rules import CERTAIN, RuleReport, RuleSet


@dataclass
class Scored:
    """The ensemble's verdict on a frame: one row per input row, in input order."""

    table: pd.DataFrame
    """trans_id, account_id, trans_month, score, flagged, ml_score, rules_score, <detector>_score for
    each ML detector and <rule> severity columns for each rule."""
    rules: RuleReport
    threshold: float

    @property
    def flagged_rate(self) -> float:
        return float(self.table["flagged"].mean()) if len(self.table) else 0.0


def combine(rules_score: np.ndarray, ml_score: np.ndarray, strongest_rule: np.ndarray) -> np.ndarray:
    """The ensemble score: the noisy-OR of rules and ML, in [CERTAIN, 1] for rows a certain rule hit, else below."""
    evidence = 1.0 - (1.0 - rules_score) * (1.0 - ml_score)
    certain = strongest_rule >= CERTAIN
    return np.where(certain, CERTAIN + (1.0 - CERTAIN) * evidence, CERTAIN * evidence)


def training_frame(
    features: pd.DataFrame,
    month: str | pd.Timestamp,
    months: int | None = 12,
    confirmed: Collection[int] = (),
) -> pd.DataFrame:
    """The rows of the `months` calendar months before `month` (all earlier months when None), minus confirmed trans_ids."""
    start_of_month = pd.Timestamp(month).to_period("M").to_timestamp()
    row_month = pd.to_datetime(features["trans_month"])
    keep = row_month < start_of_month
    if months is not None:
        keep &= row_month >= start_of_month - pd.DateOffset(months=months)
    if confirmed:
        keep &= ~features["trans_id"].isin(list(confirmed))
    return features.loc[keep.to_numpy()]


def retrain_month(month: date, every: int) -> date:
    """The first day of the month whose model scores `month` when models are retrained every `every` months.

    Retrain months are fixed on the calendar, whatever span a run covers: every month with 1, January, April,
    July and October with 3, January with 12.
    """
    if every < 1:
        raise ValueError(f"models are retrained every 1 or more months, not {every}")
    index = month.year * 12 + month.month - 1
    start = index - index % every
    return date(start // 12, start % 12 + 1, 1)


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's column names, dtypes and values in row order (the index is ignored)."""
    digest = hashlib.sha256()
    digest.update(repr([(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


class EnsembleDetector:
    """Rules plus calibrated ML detectors, combined into one calibrated score with alerts."""

    name = "ensemble"

    def __init__(
        self,
        detectors: list[Detector] | None = None,
        rules: RuleSet | None = None,
        weights: Mapping[str, float] | None = None,
        ml_alert_rate: float = 0.002,
        threshold: float = 0.5,
        ml_cap: float = 0.8,
        alert_budget: float = 0.01,
        exclude_severity: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.detectors = (
            detectors
            if detectors is not None
            else [
                IsolationForestDetector(random_state=random_state),
                LocalOutlierFactorDetector(random_state=random_state),
            ]
        )
        self.rules = rules if rules is not None else RuleSet()
        self.weights = dict(weights) if weights is not None else {"iforest": 0.7, "lof": 0.3}
        self.ml_alert_rate = ml_alert_rate
        if not 0 < threshold < CERTAIN * ml_cap <= 1:
            raise ValueError(
                f"need 0 < threshold < {CERTAIN} * ml_cap <= 1, got threshold={threshold}, ml_cap={ml_cap}"
            )
        self.threshold = threshold
        self.ml_cap = ml_cap
        self.alert_budget = alert_budget
        self.exclude_severity = exclude_severity
        self.random_state = random_state
        self.ml_calibrator_: TailCalibrator | None = None
        self.flagged_rate_: float | None = None

    @property
    def threshold_(self) -> float:
        return self.threshold

    @property
    def alert_evidence(self) -> float:
        """E*: the ML evidence of a row as rare as `ml_alert_rate` of training; its ML part is the threshold."""
        return float(-np.log10(self.ml_alert_rate))

    @property
    def half_evidence(self) -> float:
        """h in M = ml_cap * E / (E + h), chosen so that M(E*) equals the threshold."""
        return self.alert_evidence * (CERTAIN * self.ml_cap / self.threshold - 1.0)

    def parameters(self) -> dict[str, Any]:
        """The ensemble's settings, JSON-serializable (for the model registry's manifest)."""
        return {
            "detectors": {detector.name: _public(detector) for detector in self.detectors},
            "rules": [rule.name for rule in self.rules.rules],
            "weights": self.weights,
            "ml_alert_rate": self.ml_alert_rate,
            "threshold": self.threshold,
            "ml_cap": self.ml_cap,
            "alert_budget": self.alert_budget,
            "exclude_severity": self.exclude_severity,
            "random_state": self.random_state,
        }

    def fit(self, frame: pd.DataFrame, confirmed: Collection[int] = ()) -> Self:
        """Fit every ML detector on `frame` minus rule hits and confirmed anomalies, then calibrate."""
        context = with_frame_context(frame)
        report = self.rules.evaluate(context)
        keep = report.combined() <= self.exclude_severity
        if confirmed:
            keep &= ~context["trans_id"].isin(list(confirmed)).to_numpy()
        clean = context.loc[keep]
        if len(clean) < 100:
            raise ValueError(f"only {len(clean)} training rows left after excluding rule hits and confirmed anomalies")
        for detector in self.detectors:
            detector.fit(clean)
        rng = np.random.default_rng(self.random_state)
        reference = clean.iloc[np.sort(rng.permutation(len(clean))[:50_000])]
        reference_evidence = self._ml_raw(reference)[0]
        self.ml_calibrator_ = TailCalibrator().fit(reference_evidence)
        self.training_rows_ = int(len(context))
        self.excluded_rule_rows_ = int((report.combined() > self.exclude_severity).sum())
        self.excluded_confirmed_rows_ = int(len(context) - len(clean) - self.excluded_rule_rows_)
        self.training_flagged_rate_ = float(np.mean(CERTAIN * self._ml_part(reference_evidence) >= self.threshold))
        return self

    def _ml_raw(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Weighted mean of the detectors' evidence, and each detector's calibrated score."""
        total = np.zeros(len(frame))
        weight_sum = 0.0
        scores: dict[str, np.ndarray] = {}
        names = sorted({name for detector in self.detectors for name in getattr(detector, "features", ())})
        features = model_features(frame, tuple(names)) if names else None
        for detector in self.detectors:
            try:
                raw = detector.raw_score_features(features) if features is not None else detector.raw_score(frame)
            except NotImplementedError:
                raw = detector.raw_score(frame)
            calibrator = detector.calibrator_
            if calibrator is None:
                raise NotFittedError(f"{detector.name} is not fitted")
            weight = self.weights.get(detector.name, 1.0)
            total += weight * calibrator.evidence(raw)
            weight_sum += weight
            scores[detector.name] = calibrator.cdf(raw)
        return total / max(weight_sum, 1e-12), scores

    def _ml_part(self, combined_evidence: np.ndarray) -> np.ndarray:
        if self.ml_calibrator_ is None:
            raise NotFittedError("EnsembleDetector is not fitted: call fit(frame) first")
        evidence = self.ml_calibrator_.evidence(combined_evidence)
        return self.ml_cap * evidence / (evidence + self.half_evidence)

    def score_frame(self, frame: pd.DataFrame) -> Scored:
        """Every row's score, each detector's and rule's own score, and the alert flag."""
        context = with_frame_context(frame)
        report = self.rules.evaluate(context)
        combined, detector_scores = self._ml_raw(context)
        ml = self._ml_part(combined)
        rules_score = report.combined()
        score = combine(rules_score, ml, report.strongest())
        table = pd.DataFrame(
            {
                "trans_id": context["trans_id"].to_numpy(),
                "account_id": context["account_id"].to_numpy(),
                "trans_month": context["trans_month"].to_numpy() if "trans_month" in context else None,
                "score": score,
                "ml_score": ml,
                "rules_score": rules_score,
                **{f"{name}_score": values for name, values in detector_scores.items()},
                **{name: result.severity for name, result in report.results.items()},
            }
        )
        table["flagged"] = self._flag(table)
        self.flagged_rate_ = float(table["flagged"].mean()) if len(table) else 0.0
        return Scored(table=table, rules=report, threshold=self.threshold)

    def _flag(self, table: pd.DataFrame) -> np.ndarray:
        """Score at or above the threshold, capped at `alert_budget` of each month's rows (highest first)."""
        above = table["score"].to_numpy() >= self.threshold
        flagged = np.zeros(len(table), dtype=bool)
        codes, _ = pd.factorize(table["trans_month"], use_na_sentinel=False)
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1) if len(order) else []
        scores = table["score"].to_numpy()
        for rows in groups:
            candidates = rows[above[rows]]
            budget = max(1, int(np.floor(self.alert_budget * len(rows))))
            if len(candidates) > budget:
                ranked = np.lexsort((numeric(table.iloc[candidates], "trans_id"), -scores[candidates]))
                candidates = candidates[ranked[:budget]]
            flagged[candidates] = True
        return flagged

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The ensemble score in [0, 1] of every row."""
        return self.score_frame(frame).table["score"].to_numpy()

    def explain(
        self, frame: pd.DataFrame, scored: Scored | None = None, only_flagged: bool = True
    ) -> list[dict[str, Any]]:
        """Reasons for the flagged rows (or every row), see `ads_assets.lib.explain.explain_rows`."""
        from ads_assets.lib.explain import explain_rows

        return explain_rows(self, frame, scored=scored, only_flagged=only_flagged)


def _public(detector: Detector) -> dict[str, Any]:
    """A detector's constructor settings (its public, non-fitted attributes)."""
    return {
        key: value
        for key, value in vars(detector).items()
        if not key.endswith("_") and not key.startswith("_") and isinstance(value, int | float | str | tuple | bool)
    }
