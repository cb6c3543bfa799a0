"""The detector contract, checked on every registered detector (as scikit-learn checks every estimator).

Hand-built frames, no Postgres: `fit` returns the detector, scores lie in [0, 1], the same data and
seed give the same scores, a detector used before `fit` says so, a pickled detector scores the same,
and `explain` gives one dict per row.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.detection import DETECTORS, NotFittedError, TailCalibrator
from ads_assets.lib.detection.base import Detector
from tests.synthetic import ledger_frame

SMALL = {"lstm": {"epochs": 2}, "iforest": {"n_estimators": 30}}
"""Settings that keep each detector's test fit small."""


def small(name: str, random_state: int = 0) -> Detector:
    cls = DETECTORS[name]
    options = {key: value for key, value in SMALL.get(name, {}).items() if key in cls.__init__.__code__.co_varnames}
    return cls(random_state=random_state, **options)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training months, the scored month and its history."""
    frame = ledger_frame(accounts=60, months=7, seed=1)
    scored_from = pd.Timestamp("1997-07-01")
    train = frame.loc[frame["trans_date"] < scored_from].reset_index(drop=True)
    test = frame.loc[frame["trans_date"] >= scored_from].reset_index(drop=True)
    return train, test, train


@pytest.fixture(scope="module")
def fitted(frames) -> dict[str, Detector]:
    train, _, _ = frames
    detectors = {name: small(name) for name in DETECTORS}
    for detector in detectors.values():
        assert detector.fit(train) is detector
    return detectors


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_fit_returns_the_detector_and_scores_lie_in_the_unit_interval(name: str, frames, fitted) -> None:
    _, test, history = frames
    detector = fitted[name]
    assert detector.name == name
    assert isinstance(detector.calibrator(), TailCalibrator)
    scores = detector.score(test, history)
    assert scores.shape == (len(test),)
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(np.isfinite(detector.evidence(test, history)))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_the_same_data_and_seed_give_the_same_scores(name: str, frames, fitted) -> None:
    train, test, history = frames
    again = small(name).fit(train)
    np.testing.assert_array_equal(again.raw_score(test, history), fitted[name].raw_score(test, history))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_detector_used_before_fit_says_so(name: str, frames) -> None:
    _, test, history = frames
    with pytest.raises(NotFittedError):
        small(name).score(test, history)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_pickled_detector_scores_the_same(name: str, frames, fitted) -> None:
    _, test, history = frames
    restored = pickle.loads(pickle.dumps(fitted[name]))
    np.testing.assert_array_equal(restored.score(test, history), fitted[name].score(test, history))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_explain_gives_one_dict_per_row_naming_the_detector(name: str, frames, fitted) -> None:
    _, test, history = frames
    rows = test.iloc[:7]
    explained = fitted[name].explain(rows, top=2, history=history)
    assert len(explained) == len(rows)
    for item in explained:
        assert item["detector"] == name
        assert 0 <= item["score"] <= 1
        assert isinstance(item["features"], list) and len(item["features"]) <= 2
        assert all({"feature", "label"} <= set(feature) for feature in item["features"])
