"""The detectors an ensemble can be configured with, by name.

`DETECTORS` maps each name to its class; `DetectionConfig.detectors` and `EnsembleDetector` name
detectors and weights from it, and the contract test runs over every entry. A new detector is one
module implementing `base.Detector` plus one line here.
"""

from __future__ import annotations

from .base import Detector
from .iforest import IsolationForestDetector
from .lof import LocalOutlierFactorDetector
from .lstm import LstmDetector
from .raw_iforest import RawIsolationForestDetector
from .supervised import SupervisedDetector
from .tails import FeatureTailsDetector

DETECTORS: dict[str, type[Detector]] = {
    IsolationForestDetector.name: IsolationForestDetector,
    LocalOutlierFactorDetector.name: LocalOutlierFactorDetector,
    RawIsolationForestDetector.name: RawIsolationForestDetector,
    FeatureTailsDetector.name: FeatureTailsDetector,
    LstmDetector.name: LstmDetector,
    SupervisedDetector.name: SupervisedDetector,
}


def build_detector(name: str, random_state: int = 0) -> Detector:
    """A new, unfitted detector of the registered `name`."""
    try:
        return DETECTORS[name](random_state=random_state)
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; registered: {', '.join(sorted(DETECTORS))}") from None
