"""Online learning between retrains: a stored model refreshed by each newly scored month's normal rows.

`OnlineUpdater.reference_rows(model, training)` chooses, once per stored model, its fixed reference: whole
accounts of its clean training rows (those the LSTM held out first, so the sequence model is not judged
on rows it learned from). `start(model, reference, version)` scores it once. Each
`refresh(state, batch)` returns a new state whose model is a refreshed copy (the stored model is never
changed):

1. admission: rows flagged, scoring at or above the threshold, hit by any rule, or labelled (analyst
   confirmed, or named in a label set) never enter; the others are the batch's normal rows;
2. the forest's sliding window: at most `tree_share` of each Isolation Forest's trees (the oldest first,
   round the forest) are replaced by trees grown on the batch's normal rows with the forest's own
   sample size; sklearn's per-tree arrays are replaced with them, so scoring stays sklearn's own;
3. one pass of the LSTM over at most `lstm_windows` windows of normal rows at a small learning rate;
4. recalibration: every detector's calibrator, then the ensemble's combined-evidence calibrator, is
   refitted on a pool that always holds the whole fixed reference (scored by the refreshed model) plus at
   most `recent_share` of the pool from this batch's normal rows. The pool never carries earlier batches,
   so a slow drift has no memory to accumulate in: the share of the reference at or above the alert level
   can rise by at most about 1 / (1 - recent_share) when the recent rows all lie below it.

`ThresholdCheck` compares that share after the refresh with the nominal alert rate: outside a factor
`threshold_band` either way, the threshold has moved, which `RefreshReport.threshold.moved` says.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from .base import Detector, numeric
from .calibration import TailCalibrator
from .ensemble import EnsembleDetector, Scored, account_sample
from .features import with_frame_context
from .lstm import LstmDetector
from .pipelines import PipelineDetector

PER_TREE_ATTRIBUTES: tuple[str, ...] = (
    "estimators_",
    "estimators_features_",
    "_decision_path_lengths",
    "_average_path_length_per_tree",
    "_seeds",
)
"""The IsolationForest attributes that hold one entry per tree (scikit-learn 1.4 and later)."""


@dataclass(frozen=True)
class OnlinePolicy:
    """How far one refresh may move a model, and how much of the stored model stays fixed."""

    tree_share: float = 0.1
    """At most this share of each forest's trees is replaced per batch."""
    recent_share: float = 0.2
    """At most this share of each calibration pool comes from the batch; the rest is the fixed reference."""
    lstm_windows: int = 64
    """Windows of normal rows the LSTM's one fine-tuning pass reads at most."""
    lstm_learning_rate: float = 1e-3
    reference_rows: int = 5_000
    """Rows (whole accounts) of the fixed reference."""
    threshold_band: float = 1.5
    """The factor either way by which the reference's share at or above the alert level may move from nominal."""


@dataclass(frozen=True)
class Batch:
    """A newly scored month: the feature rows that were scored and what scoring said of each.

    `scores` has a row per scored transaction with `trans_id`, `score`, `is_anomaly` and `rule_hits` (the
    rows of `scoring.score_month`); `labelled` the trans_ids analysts confirmed or labels name; `history`
    the month's accounts' earlier rows, for the sequence model.
    """

    rows: pd.DataFrame
    scores: pd.DataFrame
    labelled: Collection[int] = frozenset()
    history: pd.DataFrame | None = None

    @classmethod
    def from_scored(
        cls,
        rows: pd.DataFrame,
        scored: Scored,
        labelled: Collection[int] = frozenset(),
        history: pd.DataFrame | None = None,
    ) -> Batch:
        """The batch of `rows` as `EnsembleDetector.score_frame` scored them."""
        hits = list(scored.rules.results)
        severities = scored.table[hits].to_numpy() if hits else np.zeros((len(scored.table), 0))
        scores = pd.DataFrame(
            {
                "trans_id": scored.table["trans_id"].to_numpy(),
                "score": scored.table["score"].to_numpy(),
                "is_anomaly": scored.table["flagged"].to_numpy(dtype=bool),
                "rule_hits": [[hits[i] for i in np.flatnonzero(row > 0)] for row in severities],
            }
        )
        return cls(rows, scores, labelled, history)


@dataclass(frozen=True)
class ThresholdCheck:
    """Where the alert level lies in the fixed reference: the share of its rows at or above it.

    The refreshed calibrations are fitted on a pool that holds the whole reference, so the share is the
    nominal `ml_alert_rate`, up to nominal / (1 - recent_share) when the batch's rows in the pool all lie
    below the alert level. It leaves the band when the batch's rows crowd the top of the pool: the
    threshold then moved toward what the batch made look normal. `stored_share` is the share under the
    stored model, whose calibration saw other rows, for comparison.
    """

    nominal_share: float
    stored_share: float
    refreshed_share: float
    band: float

    @property
    def moved(self) -> bool:
        """Whether the refreshed share lies outside a factor `band` of the nominal one, either way."""
        return not self.nominal_share / self.band <= self.refreshed_share <= self.nominal_share * self.band


@dataclass(frozen=True)
class RefreshReport:
    """What one refresh did."""

    admitted_rows: int
    excluded_rows: int
    replaced_trees: dict[str, tuple[int, ...]]
    lstm_windows: int
    recent_rows: int
    threshold: ThresholdCheck
    seconds: float


@dataclass(frozen=True)
class OnlineState:
    """A stored model, its fixed reference and its refreshes so far; `model` scores the next month."""

    model: EnsembleDetector
    version: str
    reference: pd.DataFrame
    stored_share: float
    reference_raw: dict[str, np.ndarray] = field(default_factory=dict)
    refreshes: int = 0
    next_tree: int = 0

    @property
    def model_version(self) -> str:
        """The stored model's version, with `+online.<n>` after n refreshes."""
        return self.version if not self.refreshes else f"{self.version}+online.{self.refreshes}"


def admitted_rows(batch: Batch, threshold: float) -> np.ndarray:
    """Per row of `batch.rows`: whether it may teach the model (scored, not flagged, below `threshold`, no rule, not labelled)."""
    scores = batch.scores.drop_duplicates("trans_id").set_index("trans_id")
    trans_ids = numeric(batch.rows, "trans_id")
    found = scores.reindex(trans_ids)
    score = found["score"].to_numpy(dtype=np.float64, na_value=np.nan)
    flagged = found["is_anomaly"].fillna(True).to_numpy(dtype=bool)
    hit = np.asarray([not isinstance(hits, list | tuple | np.ndarray) or len(hits) > 0 for hits in found["rule_hits"]])
    labelled = np.isin(trans_ids, np.asarray(list(batch.labelled), dtype=np.float64))
    return (score < threshold) & ~flagged & ~hit & ~labelled


def detector_evidence(model: EnsembleDetector, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each detector's evidence under its own calibration, from its raw scores."""
    return {detector.name: detector.calibrator().evidence(raw[detector.name]) for detector in model.detectors}


def alert_share(model: EnsembleDetector, raw: Mapping[str, np.ndarray]) -> float:
    """The share of rows whose ML evidence reaches the alert level (a row no rule hits is flagged there)."""
    if model.ml_calibrator_ is None:
        raise ValueError("the ensemble is not fitted")
    evidence = model.ml_calibrator_.evidence(model.combined_evidence(detector_evidence(model, raw)))
    return float(np.mean(evidence >= model.alert_evidence)) if len(evidence) else 0.0


def replace_trees(forest: IsolationForest, donor: IsolationForest, positions: np.ndarray) -> None:
    """Put `donor`'s trees (fitted with the same `max_samples`) at `positions` of `forest`, in place."""
    if donor._max_samples != forest._max_samples:
        raise ValueError(f"donor trees saw {donor._max_samples} rows each, the forest's {forest._max_samples}")
    for name in PER_TREE_ATTRIBUTES:
        if not hasattr(forest, name):
            continue
        kept, given = list(getattr(forest, name)), list(getattr(donor, name))
        for position, value in zip(positions, given, strict=True):
            kept[position] = value
        original = getattr(forest, name)
        setattr(forest, name, np.asarray(kept) if isinstance(original, np.ndarray) else type(original)(kept))


def _fresh(calibrator: TailCalibrator) -> TailCalibrator:
    return TailCalibrator(
        grid_size=calibrator.grid_size, tail=calibrator.tail, trim=calibrator.trim, min_scale=calibrator.min_scale
    )


def _raw(detector: Detector, frame: pd.DataFrame, history: pd.DataFrame | None) -> np.ndarray:
    return detector.raw_score(frame, history if detector.lookback_days else None)


class OnlineUpdater:
    """Refreshes a stored ensemble with each newly scored month's normal rows, within `OnlinePolicy`'s guards."""

    def __init__(self, policy: OnlinePolicy | None = None) -> None:
        self.policy = policy or OnlinePolicy()

    def reference_rows(
        self, model: EnsembleDetector, training: pd.DataFrame, confirmed: Collection[int] = ()
    ) -> pd.DataFrame:
        """The fixed reference of `model` (fitted on `training`): whole accounts of its clean training rows.

        Clean as in `EnsembleDetector.fit` (no rule hit, not `confirmed`); the accounts the LSTM held out
        come first, so the sequence model is not judged on rows it learned from; `reference_rows` at most.
        """
        context = with_frame_context(training)
        keep = ~(model.rules.evaluate(context).combined() > model.exclude_severity)
        if confirmed:
            keep &= ~context["trans_id"].isin(list(confirmed)).to_numpy()
        clean = training.loc[keep]
        sequence = [detector for detector in model.detectors if isinstance(detector, LstmDetector)]
        held_out = np.zeros(len(clean), dtype=bool)
        if sequence:
            held_out = np.isin(numeric(clean, "account_id"), sequence[0].holdout_accounts(clean))
        size = self.policy.reference_rows
        chosen = account_sample(clean.loc[held_out], size, model.random_state)
        if len(chosen) < size:
            others = account_sample(clean.loc[~held_out], size - len(chosen), model.random_state)
            chosen = pd.concat([chosen, others]).sort_index()
        return chosen.reset_index(drop=True)

    def start(self, model: EnsembleDetector, reference: pd.DataFrame, version: str) -> OnlineState:
        """The state before any refresh: the stored `model` (of `version`) and its fixed `reference` rows."""
        raw = {detector.name: _raw(detector, reference, None) for detector in model.detectors}
        return OnlineState(model, version, reference, alert_share(model, raw), reference_raw=raw)

    def refresh(self, state: OnlineState, batch: Batch) -> tuple[OnlineState, RefreshReport]:
        """A new state whose model learned from `batch`'s normal rows; `state.model` is left as it was."""
        started = time.perf_counter()
        policy = self.policy
        model = copy.deepcopy(state.model)
        rows = batch.rows.reset_index(drop=True)
        admitted = admitted_rows(replace(batch, rows=rows), model.threshold)
        seed = model.random_state + 1 + state.refreshes
        replaced: dict[str, tuple[int, ...]] = {}
        next_tree = state.next_tree
        windows = 0
        changed: set[str] = set()
        for detector in model.detectors:
            if isinstance(detector, PipelineDetector) and isinstance(detector.pipeline_[-1], IsolationForest):
                positions = self._refresh_forest(detector, rows, admitted, state.next_tree, seed)
                if len(positions):
                    replaced[detector.name] = tuple(int(position) for position in positions)
                    next_tree = int(positions[-1]) + 1
                    changed.add(detector.name)
            elif isinstance(detector, LstmDetector):
                windows = detector.fine_tune(rows, admitted, policy.lstm_windows, policy.lstm_learning_rate, seed)
                if windows:
                    changed.add(detector.name)
        recent, kept = self._recent(rows, admitted, len(state.reference), seed)
        reference_raw = {
            detector.name: _raw(detector, state.reference, None)
            if detector.name in changed
            else state.reference_raw[detector.name]
            for detector in model.detectors
        }
        recent_raw = {detector.name: _raw(detector, recent, batch.history)[kept] for detector in model.detectors}
        for detector in model.detectors:
            pool = np.concatenate([reference_raw[detector.name], recent_raw[detector.name]])
            detector.calibrator_ = _fresh(detector.calibrator()).fit(pool)
        assert model.ml_calibrator_ is not None  # noqa: S101 - narrows the type: a fitted ensemble has its calibrator
        reference_evidence = detector_evidence(model, reference_raw)
        recent_evidence = model.combined_evidence(detector_evidence(model, recent_raw))
        model.ml_calibrator_ = _fresh(model.ml_calibrator_).fit(
            np.concatenate([model.combined_evidence(reference_evidence), recent_evidence])
        )
        if hasattr(model, "reference_evidence_"):
            model.reference_evidence_ = reference_evidence
        check = ThresholdCheck(
            model.ml_alert_rate, state.stored_share, alert_share(model, reference_raw), policy.threshold_band
        )
        refreshed = replace(
            state,
            model=model,
            reference_raw=reference_raw,
            refreshes=state.refreshes + 1,
            next_tree=next_tree,
        )
        report = RefreshReport(
            admitted_rows=int(admitted.sum()),
            excluded_rows=int(len(admitted) - admitted.sum()),
            replaced_trees=replaced,
            lstm_windows=windows,
            recent_rows=len(kept),
            threshold=check,
            seconds=time.perf_counter() - started,
        )
        return refreshed, report

    def _refresh_forest(
        self, detector: PipelineDetector, rows: pd.DataFrame, admitted: np.ndarray, first: int, seed: int
    ) -> np.ndarray:
        """Replace the oldest trees of the detector's forest with trees of the admitted rows; their positions."""
        forest = detector.pipeline_[-1]
        size = len(forest.estimators_)
        count = min(size, max(1, int(np.floor(self.policy.tree_share * size))))
        if admitted.sum() < forest._max_samples:
            return np.zeros(0, dtype=np.int64)
        inputs = detector.inputs(detector.feature_frame(rows).loc[admitted])
        donor = IsolationForest(n_estimators=count, max_samples=forest._max_samples, random_state=seed, n_jobs=1).fit(
            inputs
        )
        positions = (first + np.arange(count)) % size
        replace_trees(forest, donor, positions)
        return positions

    def _recent(
        self, rows: pd.DataFrame, admitted: np.ndarray, reference_rows: int, seed: int
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Whole accounts of the batch to score, and the positions in them of the admitted rows that join the pool.

        The pool takes at most recent_share of its rows from the batch: share / (1 - share) of the reference.
        """
        share = self.policy.recent_share
        cap = int(np.floor(share / (1.0 - share) * reference_rows)) if share < 1 else len(rows)
        if not cap or not admitted.any():
            return rows.iloc[:0], np.zeros(0, dtype=np.int64)
        sampled = account_sample(rows.assign(admitted_=admitted), int(np.ceil(cap / admitted.mean())), seed)
        kept = np.flatnonzero(sampled["admitted_"].to_numpy())
        if len(kept) > cap:
            kept = np.sort(np.random.default_rng(seed).choice(kept, size=cap, replace=False))
        return sampled.drop(columns="admitted_").reset_index(drop=True), kept
