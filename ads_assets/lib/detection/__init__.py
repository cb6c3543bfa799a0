"""Anomaly detectors for feature-mart rows: rules, Isolation Forest, LOF, calibration and the ensemble.

Plain Python (no Dagster). Every detector shares one interface (`base.Detector`): `fit(frame)`,
`score(frame)` -> calibrated scores in [0, 1], `raw_score(frame)`, `explain(frame)`. The ensemble
combines the rules and the ML detectors into one score with alerts; `ads_assets.lib.explain` turns
flagged rows into reasons.
"""

from .base import Detector, NotFittedError
from .calibration import TailCalibrator
from .ensemble import EnsembleDetector, Scored, frame_digest, retrain_month, training_frame
from .iforest import IsolationForestDetector
from .lof import LocalOutlierFactorDetector
from .rules import (
    AmountBeyondHistory,
    Burst,
    DuplicatePosting,
    LedgerBreak,
    NewPayeeLarge,
    Overdraft,
    Rule,
    RuleReport,
    RuleResult,
    RuleSet,
)

__all__ = [
    "AmountBeyondHistory",
    "Burst",
    "Detector",
    "DuplicatePosting",
    "EnsembleDetector",
    "IsolationForestDetector",
    "LedgerBreak",
    "LocalOutlierFactorDetector",
    "NewPayeeLarge",
    "Overdraft",
    "NotFittedError",
    "Rule",
    "RuleReport",
    "RuleResult",
    "RuleSet",
    "Scored",
    "TailCalibrator",
    "frame_digest",
    "retrain_month",
    "training_frame",
]
