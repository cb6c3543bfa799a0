"""Everything about detection, in one room: detectors, rules, the ensemble, explanations and score tables.

Plain Python (no Dagster). Every ML detector implements one contract (`base.Detector`) and is
registered by name (`registry.DETECTORS`); the ensemble (`ensemble.EnsembleDetector`) combines the
rules (`rules`) and the named, weighted detectors into one calibrated score with alerts; `explain`
turns flagged rows into reasons, `wording` writes numbers as analysts read them, `training` says
which rows train the model of each month, `scoring` scores a month into the rows of
`anomaly.transaction_scores`, whose definitions live in `tables`.
"""

from .base import Detector, NotFittedError
from .calibration import TailCalibrator
from .ensemble import DEFAULT_WEIGHTS, EnsembleDetector, Scored
from .iforest import IsolationForestDetector
from .lof import LocalOutlierFactorDetector
from .raw_iforest import RawIsolationForestDetector
from .registry import DETECTORS, build_detector
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
from .tails import FeatureTailsDetector
from .training import TrainingWindow, frame_digest, retrain_month, training_frame, training_windows

__all__ = [
    "DEFAULT_WEIGHTS",
    "DETECTORS",
    "AmountBeyondHistory",
    "Burst",
    "Detector",
    "DuplicatePosting",
    "EnsembleDetector",
    "FeatureTailsDetector",
    "IsolationForestDetector",
    "LocalOutlierFactorDetector",
    "RawIsolationForestDetector",
    "LedgerBreak",
    "NewPayeeLarge",
    "NotFittedError",
    "Overdraft",
    "Rule",
    "RuleReport",
    "RuleResult",
    "RuleSet",
    "Scored",
    "TailCalibrator",
    "TrainingWindow",
    "build_detector",
    "frame_digest",
    "retrain_month",
    "training_frame",
    "training_windows",
]
