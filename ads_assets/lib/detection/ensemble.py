"""One score per transaction from the rules and the machine-learning detectors, and the alerts.

How the parts combine:

- the ML detectors are named with weights (`DEFAULT_WEIGHTS`, or `DetectionConfig.detectors`) and
  built from `registry.DETECTORS`; each is calibrated against its own training reference, and its
  evidence is e = -log10(tail probability) (0 = typical, 3 = as rare as 1 training row in 1,000),
  unbounded above, so the strongest rows keep their order. The ensemble averages the detectors'
  evidence with the weights and calibrates that average once more against the training reference,
  giving the ML evidence E;
- the ML part of the score is M = ml_cap * E / (E + h), h chosen so that a row no rule hits scores
  exactly `threshold` when it is as rare as `ml_alert_rate` of the training rows; M grows with E
  without a ceiling short of `ml_cap` (0.9, the highest severity of a rule that judges behaviour),
  so an extreme ML finding ranks with the strong rules;
- the rules' part R is the noisy-OR of their severities, where a weak hit (severity below
  `WEAK_RULE`, 0.3) counts only in proportion to the ML support of the row: a weak rule adds
  certainty to what the ML found, and never orders the top of the ranking on its own;
- evidence = 1 - (1 - R)(1 - M); rows a certain rule hit (severity >= CERTAIN = 0.95: a broken
  ledger, a payment posted twice, an amount exactly 10x a specific usual amount) score
  CERTAIN + (1 - CERTAIN) * evidence, all others CERTAIN * evidence: what is certain ranks first, and
  the ML orders the rest.

Alerts: a row is flagged when its score reaches `threshold` (default 0.5: a rule of severity 0.5, or
ML evidence as rare as `ml_alert_rate` of training, or a combination), with at most `alert_budget`
of each month's rows flagged (the highest scores are kept). `training_flagged_rate_` (the share of
the training reference that would be flagged) and, after scoring, `flagged_rate_` are exposed.

Training convention: the caller passes the training frame (see `training.training_windows`); `fit`
drops rows any rule hits and rows analysts confirmed (a set of trans_ids), so the ML learns what
normal looks like. Detectors that learn from analyst labels (`uses_labels`, the supervised one) are
fitted on the whole frame instead, with its `analyst_label` column. Detectors that read sequences (`lookback_days` > 0) get the scored accounts'
earlier rows as `history`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd

from .base import Detector, NotFittedError, numeric
from .calibration import TailCalibrator
from .features import with_frame_context
from .pipelines import FeatureDetector
from .registry import build_detector
from .rules import CERTAIN, UNCERTAIN_MAX, RuleReport, RuleSet

DEFAULT_WEIGHTS: dict[str, float] = {"iforest": 0.4, "tails": 0.4, "lstm": 0.2, "supervised": 1.0}
"""The ML detectors of the default ensemble and the weight of each one's evidence. LOF and the raw-column
forest are registered too; measured alone they find little the forest and the tails miss
(docs/benchmarks.md), so they are not in the default. The supervised detector learns from analyst labels;
until there are enough it is dormant (evidence 0 for every row, which leaves the ranking unchanged)."""
WEAK_RULE = 0.3
"""A rule hit below this severity counts only in proportion to the row's ML support."""
REFERENCE_ROWS = 50_000
"""Training rows (whole accounts) on which the combined ML evidence is calibrated."""


@dataclass
class Scored:
    """The ensemble's verdict on a frame: one row per input row, in input order."""

    table: pd.DataFrame
    """trans_id, account_id, trans_month, score, flagged, ml_score, rules_score, <detector>_score for
    each ML detector and <rule> severity columns for each rule."""
    rules: RuleReport
    threshold: float
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    """Each ML detector's evidence per row."""

    @property
    def flagged_rate(self) -> float:
        return float(self.table["flagged"].mean()) if len(self.table) else 0.0

    def detector_scores(self) -> list[dict[str, float]]:
        """Per row, every ML detector's calibrated score, plus the `ml` and `rules` parts, rounded for storage."""
        names = list(self.evidence)
        columns = {name: self.table[f"{name}_score"].to_numpy() for name in names}
        columns["ml"] = self.table["ml_score"].to_numpy()
        columns["rules"] = self.table["rules_score"].to_numpy()
        keys = list(columns)
        matrix = np.round(np.column_stack([columns[key] for key in keys]), 6) if len(self.table) else np.zeros((0, 0))
        return [dict(zip(keys, row.tolist(), strict=True)) for row in matrix]


def combine(rules_score: np.ndarray, ml_score: np.ndarray, strongest_rule: np.ndarray) -> np.ndarray:
    """The ensemble score: the noisy-OR of rules and ML, in [CERTAIN, 1] for rows a certain rule hit, else below."""
    evidence = 1.0 - (1.0 - rules_score) * (1.0 - ml_score)
    certain = strongest_rule >= CERTAIN
    return np.where(certain, CERTAIN + (1.0 - CERTAIN) * evidence, CERTAIN * evidence)


def supported_rules(report: RuleReport, ml_support: np.ndarray) -> np.ndarray:
    """Noisy-OR of the rule severities, each weak hit (below WEAK_RULE) scaled by the row's ML support in [0, 1]."""
    if not report.results:
        return np.zeros(len(ml_support))
    keep = np.ones(len(ml_support))
    for result in report.results.values():
        severity = np.where(result.severity < WEAK_RULE, result.severity * ml_support, result.severity)
        keep = keep * (1.0 - severity)
    return 1.0 - keep


def account_sample(frame: pd.DataFrame, rows: int, random_state: int) -> pd.DataFrame:
    """Whole accounts of `frame`, drawn at random until about `rows` rows, in frame order."""
    if len(frame) <= rows:
        return frame
    accounts = frame["account_id"].to_numpy()
    unique, counts = np.unique(accounts, return_counts=True)
    order = np.random.default_rng(random_state).permutation(len(unique))
    chosen = unique[order[: int(np.searchsorted(np.cumsum(counts[order]), rows)) + 1]]
    return frame.loc[np.isin(accounts, chosen)]


def _history_for(
    detector: Detector, history: pd.DataFrame | None, label_history: pd.DataFrame | None
) -> pd.DataFrame | None:
    if detector.uses_labels and label_history is not None:
        return label_history
    return history if detector.lookback_days else None


class EnsembleDetector:
    """Rules plus calibrated ML detectors, combined into one calibrated score with alerts."""

    name = "ensemble"

    def __init__(
        self,
        detectors: Mapping[str, float] | Sequence[Detector] | None = None,
        rules: RuleSet | None = None,
        weights: Mapping[str, float] | None = None,
        ml_alert_rate: float = 0.002,
        threshold: float = 0.5,
        ml_cap: float = UNCERTAIN_MAX,
        alert_budget: float = 0.01,
        exclude_severity: float = 0.0,
        random_state: int = 0,
    ) -> None:
        """`detectors`: names and weights from the registry (default DEFAULT_WEIGHTS), or built detectors with `weights`."""
        if detectors is None or isinstance(detectors, Mapping):
            named = dict(DEFAULT_WEIGHTS if detectors is None else detectors)
            self.detectors = [build_detector(name, random_state=random_state) for name in named]
            self.weights = named
        else:
            self.detectors = list(detectors)
            self.weights = {d.name: (weights or {}).get(d.name, 1.0) for d in self.detectors}
        self.rules = rules if rules is not None else RuleSet()
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
    def lookback_days(self) -> int:
        """Days of earlier rows the detectors need as history when scoring."""
        return max((detector.lookback_days for detector in self.detectors), default=0)

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
            "detectors": {detector.name: detector.parameters() for detector in self.detectors},
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
        hit = report.combined() > self.exclude_severity
        keep = ~hit
        if confirmed:
            keep &= ~context["trans_id"].isin(list(confirmed)).to_numpy()
        clean = context.loc[keep]
        if len(clean) < 100:
            raise ValueError(f"only {len(clean)} training rows left after excluding rule hits and confirmed anomalies")
        with ThreadPoolExecutor(self._workers()) as pool:
            list(pool.map(lambda detector: detector.fit(context if detector.uses_labels else clean), self.detectors))
        reference = account_sample(clean, REFERENCE_ROWS, self.random_state)
        reference_evidence, _, self.reference_evidence_ = self._ml_evidence(reference, None, label_history=context)
        self.ml_calibrator_ = TailCalibrator().fit(reference_evidence)
        self.training_rows_ = int(len(context))
        self.excluded_rule_rows_ = int(hit.sum())
        self.excluded_confirmed_rows_ = int(len(context) - len(clean) - self.excluded_rule_rows_)
        self.training_flagged_rate_ = float(np.mean(CERTAIN * self._ml_part(reference_evidence) >= self.threshold))
        return self

    def _with_peers(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the peer columns, looked up once for every detector that judges against peers.

        The detectors of one ensemble learn their peers from the same training rows, so the first one's
        lookup serves them all (a frame that carries the peer columns is not looked up again).
        """
        judges = [detector for detector in self.detectors if isinstance(detector, FeatureDetector)]
        return judges[0].context(frame) if judges else frame

    def _workers(self) -> int:
        """Threads for fitting and scoring the detectors side by side: one per detector, at most one per core."""
        return max(1, min(len(self.detectors), os.cpu_count() or 1))

    def _ml_evidence(
        self, frame: pd.DataFrame, history: pd.DataFrame | None, label_history: pd.DataFrame | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Weighted mean of the detectors' evidence, and each detector's calibrated score and evidence.

        `label_history`, when given, replaces `history` for the detectors that learn from analyst labels (the
        whole training frame, when the training reference is scored: its labelled frauds feed their risk features).
        """
        frame = self._with_peers(frame)
        total = np.zeros(len(frame))
        weight_sum = 0.0
        scores: dict[str, np.ndarray] = {}
        evidence: dict[str, np.ndarray] = {}
        with ThreadPoolExecutor(self._workers()) as pool:
            raws = list(
                pool.map(
                    lambda detector: detector.raw_score(frame, _history_for(detector, history, label_history)),
                    self.detectors,
                )
            )
        for detector, raw in zip(self.detectors, raws, strict=True):
            calibrator = detector.calibrator()
            weight = self.weights.get(detector.name, 1.0)
            evidence[detector.name] = calibrator.evidence(raw)
            total += weight * evidence[detector.name]
            weight_sum += weight
            scores[detector.name] = calibrator.cdf(raw)
        return total / max(weight_sum, 1e-12), scores, evidence

    def _ml_part(self, combined_evidence: np.ndarray) -> np.ndarray:
        if self.ml_calibrator_ is None:
            raise NotFittedError("EnsembleDetector is not fitted: call fit(frame) first")
        evidence = self.ml_calibrator_.evidence(combined_evidence)
        return self.ml_cap * evidence / (evidence + self.half_evidence)

    def combined_evidence(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        """The weighted mean of the detectors' evidence, before its calibration: as `_ml_evidence` combines it."""
        total = np.zeros(len(next(iter(evidence.values()))) if evidence else 0)
        weight_sum = 0.0
        for detector in self.detectors:
            weight = self.weights.get(detector.name, 1.0)
            total += weight * evidence[detector.name]
            weight_sum += weight
        return total / max(weight_sum, 1e-12)

    def reweighted(self, weights: Mapping[str, float]) -> EnsembleDetector:
        """This fitted ensemble with other detector weights (a detector not named gets 0).

        The fitted detectors and rules are shared, not copied; the combined evidence is calibrated again on
        the training reference (`reference_evidence_`), so the alert threshold keeps its meaning.
        """
        reference = getattr(self, "reference_evidence_", None)
        if reference is None:
            raise NotFittedError("reweighting needs an ensemble fitted with reference_evidence_ (fit it again)")
        clone = copy.copy(self)
        clone.weights = {detector.name: float(weights.get(detector.name, 0.0)) for detector in self.detectors}
        if sum(clone.weights.values()) <= 0:
            raise ValueError(f"weights {dict(weights)} give no detector of {list(clone.weights)} a positive weight")
        combined = clone.combined_evidence(reference)
        clone.ml_calibrator_ = TailCalibrator().fit(combined)
        clone.training_flagged_rate_ = float(np.mean(CERTAIN * clone._ml_part(combined) >= clone.threshold))
        clone.flagged_rate_ = None
        return clone

    def score_evidence(self, evidence: Mapping[str, np.ndarray], rules: RuleReport) -> np.ndarray:
        """The score of rows whose detectors' evidence and rule report are known (a `Scored` of any weights)."""
        ml = self._ml_part(self.combined_evidence(evidence))
        return combine(supported_rules(rules, ml / self.ml_cap), ml, rules.strongest())

    def score_frame(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> Scored:
        """Every row's score, each detector's and rule's own score, and the alert flag.

        `history`: the scored accounts' rows from before `frame` (at least `lookback_days` days), for
        the detectors that read sequences; without it they see only `frame`.
        """
        context = with_frame_context(frame)
        report = self.rules.evaluate(context)
        combined, detector_scores, evidence = self._ml_evidence(context, history)
        ml = self._ml_part(combined)
        rules_score = supported_rules(report, ml / self.ml_cap)
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
        table["flagged"] = budget_flags(table, self.threshold, self.alert_budget, combined)
        self.flagged_rate_ = float(table["flagged"].mean()) if len(table) else 0.0
        return Scored(table=table, rules=report, threshold=self.threshold, evidence=evidence)

    def score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The ensemble score in [0, 1] of every row."""
        return self.score_frame(frame, history).table["score"].to_numpy()

    def explain(
        self,
        frame: pd.DataFrame,
        scored: Scored | None = None,
        only_flagged: bool = True,
        history: pd.DataFrame | None = None,
    ) -> list[dict[str, Any]]:
        """Reasons for the flagged rows (or every row), see `explain.explain_rows`."""
        from .explain import explain_rows

        return explain_rows(self, frame, scored=scored, only_flagged=only_flagged, history=history)


def budget_flags(
    table: pd.DataFrame, threshold: float, alert_budget: float, evidence: np.ndarray | None = None
) -> np.ndarray:
    """The alert flag of each row of `table` (`trans_id`, `trans_month`, `score`): a score at or above `threshold`,
    capped at `alert_budget` of each month's rows. Highest score first; among equal scores (a score saturates at
    1 when a month is flooded with outliers) the most ML `evidence` (the detectors' weighted evidence, which does
    not saturate) first; then the lowest trans_id."""
    scores = table["score"].to_numpy()
    above = scores >= threshold
    flagged = np.zeros(len(table), dtype=bool)
    codes, _ = pd.factorize(table["trans_month"], use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1) if len(order) else []
    for rows in groups:
        candidates = rows[above[rows]]
        budget = max(1, int(np.floor(alert_budget * len(rows))))
        if len(candidates) > budget:
            ties = -evidence[candidates] if evidence is not None else np.zeros(len(candidates))
            ranked = np.lexsort((numeric(table.iloc[candidates], "trans_id"), ties, -scores[candidates]))
            candidates = candidates[ranked[:budget]]
        flagged[candidates] = True
    return flagged
