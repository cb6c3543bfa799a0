"""Model selection: the champion rule, candidates recombined from one fitted ensemble, and the dbt-built canaries.

A small generated bank (60 accounts, 1995-01..1996-06) is loaded into a database of the session's Postgres once;
its canary copy is built once (dbt run in a database of its own) for two validation months, and a two-detector
ensemble is fitted on the copy's feature rows before them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ads_assets.bundled import dbt_project_dir
from ads_assets.defs.detection.selection import Champions, _recall_drops
from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.canaries import CANARY_KINDS, Canaries, build_canaries, canary_database_name, injector_frame, plant
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.detection.ensemble import EnsembleDetector
from ads_assets.lib.detection.iforest import IsolationForestDetector
from ads_assets.lib.detection.scoring import by_date
from ads_assets.lib.detection.selection import (
    BASELINE,
    NORMAL,
    baseline_ensemble,
    baseline_evidence,
    candidate_scores,
    candidates,
    choose,
    ensure_selection_tables,
    flagged,
    leaderboard,
    top_overlap,
)
from ads_assets.lib.detection.tails import FeatureTailsDetector
from ads_assets.lib.metrics import Metric
from ads_assets.lib.tables import read_query
from tests.marts import load_source

VALIDATION_MONTHS = [date(1996, 3, 1), date(1996, 5, 1)]


@dataclass
class Bank:
    target: PostgresTarget
    canaries: Canaries
    raw: pd.DataFrame
    ensemble: EnsembleDetector
    month: pd.DataFrame


@pytest.fixture(scope="module")
def bank(postgres_target: PostgresTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bank]:
    work = tmp_path_factory.mktemp("model_selection")
    data = generate(GeneratorConfig(accounts=60, start="1995-01", end="1996-06", seed=11, anomaly_rate=0.0))
    write_dataset(data, work / "source", "asc")
    with temporary_database(postgres_target) as target:
        load_source(work / "source", target)
        with connect(target) as connection:
            canaries = build_canaries(
                target,
                connection,
                VALIDATION_MONTHS,
                dbt_project_dir(),
                work / "canaries",
                accounts=60,
                per_kind=3,
                lookback_days=400,
            )
            raw = read_query(connection, "SELECT trans_id, amount FROM raw.fin_trans")
        features = by_date(canaries.features)
        days = pd.to_datetime(features["trans_date"])
        training = features.loc[days < pd.Timestamp(VALIDATION_MONTHS[0])]
        month = features.loc[(days >= pd.Timestamp(VALIDATION_MONTHS[0])) & (days < pd.Timestamp("1996-04-01"))]
        ensemble = EnsembleDetector(
            detectors=[IsolationForestDetector(n_estimators=25), FeatureTailsDetector()],
            weights={"iforest": 0.6, "tails": 0.4},
        ).fit(training)
        yield Bank(target, canaries, raw, ensemble, month.reset_index(drop=True))


def board(rows: dict[str, tuple[float, dict[str, float]]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "candidate": name,
                "average_precision": ap,
                "recall_at_1pct": float(np.mean(list(recalls.values()))),
                "per_kind": {kind: {"recall_at_1pct": recall} for kind, recall in recalls.items()},
            }
            for name, (ap, recalls) in rows.items()
        ]
    )


def test_the_champion_has_the_best_ap_among_candidates_that_keep_every_kinds_floor() -> None:
    constructed = board(
        {
            "iforest": (0.50, {"burst": 0.80, "duplicate": 0.60}),
            "tails": (0.40, {"burst": 0.30, "duplicate": 0.90}),
            "default": (0.70, {"burst": 0.80, "duplicate": 0.30}),
            "equal": (0.60, {"burst": 0.75, "duplicate": 0.55}),
            BASELINE: (0.45, {"burst": 0.90, "duplicate": 0.90}),
        }
    )

    ranked = choose(constructed, singles=["iforest", "tails", BASELINE])

    assert ranked["candidate"].tolist() == ["equal", "iforest", BASELINE, "default", "tails"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert ranked["is_champion"].tolist() == [True, False, False, False, False]
    assert ranked["meets_floor"].tolist() == [True, True, True, False, False]


def test_the_champion_is_never_below_the_baseline_or_the_best_single_candidate() -> None:
    kinds = np.array([NORMAL] * 194 + ["burst"] * 4 + ["duplicate"] * 2, dtype=object)
    rows = np.arange(200, dtype=float)
    scores = {
        "iforest": np.where(kinds == "burst", 150.0 + rows, rows % 150),
        "default": np.where(kinds != NORMAL, 100.0 + rows % 7, rows % 190),
        BASELINE: rows,
    }

    ranked = leaderboard(scores, kinds, singles=["iforest", BASELINE])

    champion = ranked.iloc[0]
    assert champion["candidate"] == BASELINE and champion["average_precision"] == pytest.approx(1.0)
    assert champion["per_kind"]["burst"]["recall_at_1pct"] == 0.0
    assert champion["per_kind"]["duplicate"]["recall_at_1pct"] == 1.0
    best_single = ranked.loc[ranked["candidate"].isin(["iforest", BASELINE]), "average_precision"].max()
    assert champion["average_precision"] >= best_single
    assert ranked.set_index("candidate").loc["default", "average_precision"] < champion["average_precision"]


def test_candidates_are_each_detector_alone_the_weights_equal_weights_and_each_left_out() -> None:
    three = candidates({"iforest": 0.4, "tails": 0.4, "supervised": 0.2})
    two = candidates({"iforest": 0.5, "tails": 0.5})

    assert [candidate.name for candidate in three] == [
        "default",
        "iforest",
        "tails",
        "supervised",
        "equal",
        "without_iforest",
        "without_tails",
        "without_supervised",
        BASELINE,
    ]
    assert three[-2].weights == {"iforest": 0.4, "tails": 0.4, "supervised": 0.0}
    assert [candidate.name for candidate in two] == ["default", "iforest", "tails", BASELINE]
    assert [candidate.is_single for candidate in two] == [False, True, True, True]
    assert [candidate.name for candidate in candidates({"lstm": 1.0})] == ["default", BASELINE]


def test_flags_and_top_overlap_of_a_shadow_score() -> None:
    scores = np.array([0.9, 0.2, 0.7, 0.6, 0.1] + [0.0] * 195)
    other = np.array([0.1, 0.2, 0.8, 0.9, 0.1] + [0.0] * 195)

    assert np.flatnonzero(flagged(scores, threshold=0.5, alert_budget=0.01)).tolist() == [0, 2]
    assert top_overlap(scores, other) == 0.5


def test_a_single_detector_reweight_ranks_exactly_like_that_detector(bank: Bank) -> None:
    scored = bank.ensemble.score_frame(bank.month)
    alone = bank.ensemble.reweighted({"tails": 1.0})
    single = alone.score_frame(bank.month)

    evidence = scored.evidence["tails"]
    order = np.argsort(evidence, kind="stable")
    assert np.all(np.diff(single.table["ml_score"].to_numpy()[order]) >= 0)
    assert single.table["ml_score"].to_numpy()[np.argmax(evidence)] == single.table["ml_score"].max()
    np.testing.assert_array_equal(alone.score_evidence(scored.evidence, scored.rules), single.table["score"])
    assert alone.weights == {"iforest": 0.0, "tails": 1.0} and bank.ensemble.weights == {"iforest": 0.6, "tails": 0.4}
    assert alone.ml_calibrator_ is not bank.ensemble.ml_calibrator_


def test_reweighting_with_the_same_weights_scores_exactly_as_the_ensemble(bank: Bank) -> None:
    same = bank.ensemble.reweighted(bank.ensemble.weights)

    np.testing.assert_array_equal(same.score(bank.month), bank.ensemble.score(bank.month))
    assert same.training_flagged_rate_ == bank.ensemble.training_flagged_rate_


def test_candidate_scores_recombine_one_verdict_and_score_the_baseline_on_raw_columns(bank: Bank) -> None:
    scored = bank.ensemble.score_frame(bank.month)
    baseline = baseline_ensemble(bank.ensemble, bank.month, random_state=0)

    scores = candidate_scores(bank.ensemble, scored, baseline, bank.month)

    assert list(scores) == ["default", "iforest", "tails", "equal", BASELINE]
    np.testing.assert_array_equal(scores["default"], scored.table["score"])
    np.testing.assert_array_equal(scores[BASELINE], baseline_evidence(baseline, bank.month))
    assert [detector.name for detector in baseline.detectors] == ["raw_iforest"]


def test_the_canary_copy_plants_every_kind_into_rows_with_features(bank: Bank) -> None:
    canaries = bank.canaries
    features = canaries.features.set_index("trans_id")
    planted = pd.Series(canaries.kinds)
    with_features = planted[planted.index.isin(features.index)]

    assert set(with_features) == set(CANARY_KINDS)
    for month in VALIDATION_MONTHS:
        assert sum(canaries.counts(month).values()) >= len(CANARY_KINDS)
    days = pd.to_datetime(features.loc[with_features.index, "trans_date"]).dt.to_period("M").dt.start_time.dt.date
    assert set(days) <= set(VALIDATION_MONTHS)

    real = bank.raw.set_index("trans_id")["amount"].astype(float)
    wrong = with_features[with_features == "wrong_amount"].index
    ratios = features.loc[wrong, "amount"].astype(float) / real.loc[wrong]
    assert set(np.round(ratios, 6)) <= {10.0, 100.0}
    breaks = with_features[with_features == "ledger_break"].index
    assert (features.loc[breaks, "ledger_gap"].astype(float).abs() >= 100).all()
    new_rows = with_features[with_features.isin(["duplicate", "burst", "unusual_payee"])].index
    assert new_rows.min() > real.index.max()

    with connect(bank.target) as connection:
        left = connection.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (canary_database_name(bank.target.dbname),)
        ).fetchone()
    assert left == (0,)


def test_canaries_are_the_same_for_the_same_seed(bank: Bank) -> None:
    with connect(bank.target) as connection:
        trans = read_query(
            connection, "SELECT * FROM raw.fin_trans WHERE date < %s ORDER BY date, trans_id", (date(1996, 6, 1),)
        )
    first_new_id = int(bank.raw["trans_id"].max()) + 1
    first = plant(injector_frame(trans), VALIDATION_MONTHS, per_kind=3, seed=0, first_new_id=first_new_id)
    second = plant(injector_frame(trans), VALIDATION_MONTHS, per_kind=3, seed=0, first_new_id=first_new_id)

    pd.testing.assert_frame_equal(first, second)
    labelled = first.loc[first["label"] != NORMAL]
    assert dict(zip(labelled["trans_id"], labelled["label"], strict=True)) == bank.canaries.kinds


def test_a_month_is_scored_by_the_champion_and_compared_with_the_runner_up_in_shadow(bank: Bank) -> None:
    version = "v-test"
    with connect(bank.target) as connection:
        ensure_selection_tables(connection)
        with connection.transaction():
            for rank, candidate in enumerate(["tails", "default", "iforest"], start=1):
                connection.execute(
                    "INSERT INTO anomaly.model_leaderboard (month, retrain_month, validation_month, model_version,"
                    " candidate, rank, per_kind, meets_floor, is_champion, evaluated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, '{}', true, %s, now())",
                    ("1996-04", date(1996, 4, 1), date(1996, 3, 1), version, candidate, rank, rank == 1),
                )
        month = Champions(instance=None, connection=connection).score(
            bank.ensemble, bank.month, date(1996, 3, 1), version, None
        )
        unselected = Champions(instance=None, connection=connection).score(
            bank.ensemble, bank.month, date(1996, 3, 1), "v-other", None
        )
        shadow = read_query(connection, "SELECT * FROM anomaly.shadow_comparison WHERE month = '1996-03'")

    champion = bank.ensemble.reweighted({"tails": 1.0}).score_frame(bank.month)
    np.testing.assert_array_equal(month.scores["score"], champion.table["score"])
    assert set(month.scores["model_version"]) == {"v-test+tails"} and month.champion == "tails"
    assert set(unselected.scores["model_version"]) == {"v-other"} and unselected.champion is None
    runner_up = bank.ensemble.score_frame(bank.month).table
    expected = {
        "champion": "tails",
        "runner_up": "default",
        "rows": len(bank.month),
        "champion_flagged": int(champion.table["flagged"].sum()),
        "runner_up_flagged": int(runner_up["flagged"].sum()),
        "flagged_by_both": int((champion.table["flagged"] & runner_up["flagged"]).sum()),
    }
    assert {key: month.shadow[key] for key in expected} == expected
    assert shadow.loc[0, ["champion", "runner_up", "rows"]].tolist() == ["tails", "default", len(bank.month)]
    assert month.shadow["top_overlap"] == top_overlap(champion.table["score"].to_numpy(), runner_up["score"].to_numpy())


def test_a_canary_recall_drop_is_judged_against_what_the_alert_budget_lets_through() -> None:
    """A champion that catches all it may (its budget caps it at 0.2 of the canaries) raises nothing; one that
    catches less than half of that raises a model_performance alert naming its model and month."""
    rows = [
        Metric("run", "1996-01", "canaries", "recall", 0.2),
        Metric("run", "1996-01", "canaries", "recall_achievable", 0.2),
        Metric("run", "1996-07", "canaries", "recall", 0.05),
        Metric("run", "1996-07", "canaries", "recall_achievable", 0.2),
    ]
    champions = {
        month: {"champion": "lstm", "runner_up": None, "model_version": f"v{month}"} for month in ("1996-01", "1996-07")
    }
    (drop,) = _recall_drops(rows, champions)
    assert (drop.kind, drop.subject) == ("model_performance", "model v1996-07")
    assert drop.message == "canary_recall 0.050 is below 0.100 in 1996-07"
