"""The detection library: rules, calibration, detectors, ensemble and reasons.

The end-to-end tests build a small generated ledger with labelled anomalies of every kind through the
real pipeline (generator files -> ingestion -> dbt marts in the session's embedded Postgres), fit
the ensemble on the earlier months and score the last ones. The rule tests use hand-built rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.detection import (
    AmountBeyondHistory,
    Burst,
    DuplicatePosting,
    EnsembleDetector,
    IsolationForestDetector,
    LedgerBreak,
    LocalOutlierFactorDetector,
    NewPayeeLarge,
    Overdraft,
    RuleSet,
    TailCalibrator,
    TrainingWindow,
    training_frame,
    training_windows,
)
from ads_assets.lib.detection.ensemble import WEAK_RULE, budget_flags, combine, supported_rules
from ads_assets.lib.detection.explain import explain_rows
from ads_assets.lib.detection.features import FEATURES_BY_NAME, describe, model_features, with_frame_context
from ads_assets.lib.tables import read_query
from tests.marts import build_feature_mart

SCORE_FROM = pd.Timestamp("1997-07-01")
KINDS = ("wrong_amount", "ledger_break", "duplicate_posting", "burst", "new_payee")


@dataclass(frozen=True)
class Ledger:
    features: pd.DataFrame
    kinds: dict[int, str]
    train: pd.DataFrame
    test: pd.DataFrame
    ensemble: EnsembleDetector


@pytest.fixture(scope="module")
def ledger(postgres_target: PostgresTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """A generated ledger (400 accounts, 1995-07..1997-12) through ingestion and dbt, with a fitted ensemble."""
    work = tmp_path_factory.mktemp("detectors")
    data = generate(GeneratorConfig(accounts=400, start="1995-07", end="1997-12", seed=3, anomaly_rate=0.004))
    write_dataset(data, work / "source", "asc")
    with temporary_database(postgres_target) as target:
        build_feature_mart(work / "source", target, work)
        with connect(target) as connection:
            features = read_query(connection, "SELECT * FROM marts.fct_transaction_features ORDER BY trans_id")
    labels = data.labels.loc[data.labels["trans_id"].notna()]
    kinds = dict(zip(labels["trans_id"].astype(int), labels["kind"].astype(str), strict=True))
    features["trans_month"] = pd.to_datetime(features["trans_month"])
    train = training_frame(features, TrainingWindow(date(1996, 7, 1), date(1997, 7, 1)))
    test = features.loc[features["trans_month"] >= SCORE_FROM].reset_index(drop=True)
    yield Ledger(features, kinds, train, test, EnsembleDetector(random_state=0).fit(train))


def test_every_anomaly_kind_lands_in_the_top_percent(ledger: Ledger) -> None:
    scores = ledger.ensemble.score(ledger.test)
    kinds = ledger.test["trans_id"].map(ledger.kinds).fillna("normal").to_numpy()
    top = np.zeros(len(scores), dtype=bool)
    top[np.argsort(-scores, kind="stable")[: int(np.ceil(0.01 * len(scores)))]] = True
    for kind in KINDS:
        rows = kinds == kind
        assert rows.sum() >= 3, f"too few {kind} rows in the scored months to judge"
        assert top[rows].mean() >= 0.85, f"{kind}: only {top[rows].sum()} of {rows.sum()} in the top 1 %"


def test_scores_are_deterministic(ledger: Ledger) -> None:
    first = ledger.ensemble.score_frame(ledger.test).table
    second = ledger.ensemble.score_frame(ledger.test).table
    pd.testing.assert_frame_equal(first, second)
    refitted = EnsembleDetector(random_state=0).fit(ledger.train)
    np.testing.assert_array_equal(refitted.score(ledger.test), first["score"].to_numpy())


def test_scores_lie_in_the_unit_interval_and_a_month_does_not_depend_on_what_follows(ledger: Ledger) -> None:
    scored = ledger.ensemble.score_frame(ledger.test).table
    parts = ["score", "ml_score", "rules_score"] + [f"{name}_score" for name in ledger.ensemble.weights]
    assert ((scored[parts] >= 0) & (scored[parts] <= 1)).all().all()
    months = ledger.test["trans_month"]
    first, second = sorted(months.unique())[:2]
    history = ledger.train.loc[ledger.train["trans_month"] >= first - pd.DateOffset(months=2)]
    alone = ledger.test.loc[months == first].reset_index(drop=True)
    with_next = ledger.test.loc[months.isin([first, second])].reset_index(drop=True)
    batch = ledger.ensemble.score(with_next, history)[: len(alone)]
    np.testing.assert_allclose(ledger.ensemble.score(alone, history), batch, rtol=0, atol=1e-9)


def test_calibration_maps_the_training_reference_monotonically_onto_the_unit_interval(ledger: Ledger) -> None:
    forest = next(d for d in ledger.ensemble.detectors if isinstance(d, IsolationForestDetector))
    reference = forest.raw_score(ledger.train)
    calibrated = forest.calibrator_.cdf(reference)
    assert calibrated.min() >= 0 and calibrated.max() <= 1
    order = np.argsort(reference)
    assert np.all(np.diff(calibrated[order]) >= 0)
    assert abs(np.median(calibrated) - 0.5) < 0.1
    assert abs(np.mean(calibrated >= 0.99) - 0.01) < 0.01

    values = np.random.default_rng(0).lognormal(size=20_000)
    calibrator = TailCalibrator().fit(values)
    grid = np.linspace(-1, values.max() * 3, 5_000)
    mapped = calibrator.cdf(grid)
    assert np.all(np.diff(mapped) >= 0) and mapped[0] == 0 and mapped[-1] < 1
    assert calibrator.cdf(np.array([values.max() * 2]))[0] > calibrator.cdf(np.array([values.max()]))[0]
    np.testing.assert_allclose(np.quantile(calibrator.cdf(values), [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=0.01)


def test_flagged_rows_have_reasons_with_the_rows_real_values(ledger: Ledger) -> None:
    frame = ledger.test.reset_index(drop=True)
    scored = ledger.ensemble.score_frame(frame)
    reasons = explain_rows(ledger.ensemble, frame, scored=scored)
    flagged = scored.table.loc[scored.table["flagged"], "trans_id"].tolist()
    assert flagged and [reason["trans_id"] for reason in reasons] == flagged
    assert scored.flagged_rate <= ledger.ensemble.alert_budget + 1 / len(frame)
    json.dumps(reasons)
    forest = next(d for d in ledger.ensemble.detectors if isinstance(d, IsolationForestDetector))
    context = forest.context(frame).set_index("trans_id")
    for reason in reasons:
        row = context.loc[[reason["trans_id"]]]
        assert reason["sentence"] and not reason["sentence"][0].islower() and reason["sentence"].endswith(".")
        assert reason["features"] or reason["rules"]
        assert set(reason["detectors"]) >= {"rules", "ml", *ledger.ensemble.weights}
        shares = [part["contribution"] for part in reason["detectors"].values() if "contribution" in part]
        assert abs(sum(shares) - 1) < 1e-3
        leading = reason["detectors"][reason["leading_detector"]]
        assert reason["features"] == leading["features"]
        for feature in reason["features"]:
            if feature["feature"] not in FEATURES_BY_NAME:
                assert feature["text"] and feature["feature"].startswith(reason["leading_detector"])
                continue
            value, typical = describe(row, feature["feature"])
            if feature["value"] is not None:
                assert feature["value"] == pytest.approx(value[0], abs=0.01)
            assert feature.get("shap", 1) > 0 and feature["text"]
        for fired in reason["rules"]:
            amount = float(row["amount"].iloc[0])
            shown = f"{amount:,.0f}" if abs(amount - round(amount)) < 0.005 else f"{amount:,.2f}"
            assert shown in fired["reason"], (shown, fired["reason"])
        numbers = re.findall(r"\d[\d,]*(?:\.\d+)?", reason["sentence"])
        assert numbers, reason["sentence"]


def test_shap_values_point_toward_anomalous(ledger: Ledger) -> None:
    forest = next(d for d in ledger.ensemble.detectors if isinstance(d, IsolationForestDetector))
    sample = ledger.test.iloc[:300]
    values, matrix = forest.shap_values(sample)
    path_score = -forest.pipeline_[-1].score_samples(matrix.to_numpy())
    assert np.corrcoef(values.sum(axis=1), path_score)[0, 1] > 0.99


def test_training_excludes_rule_hits_and_confirmed_anomalies(ledger: Ledger) -> None:
    confirmed = set(ledger.train["trans_id"].iloc[:25].tolist())
    ensemble = EnsembleDetector(detectors=[IsolationForestDetector(n_estimators=10)], weights={"iforest": 1.0})
    ensemble.fit(ledger.train, confirmed=confirmed)
    assert ensemble.excluded_rule_rows_ > 0
    assert ensemble.excluded_confirmed_rows_ > 0
    assert ensemble.training_rows_ == len(ledger.train)
    window = training_frame(ledger.features, TrainingWindow(date(1997, 4, 1), date(1997, 7, 1)), confirmed=confirmed)
    assert window["trans_month"].min() == SCORE_FROM - pd.DateOffset(months=3)
    assert window["trans_month"].max() < SCORE_FROM
    assert not window["trans_id"].isin(list(confirmed)).any()


def test_calibration_keeps_the_top_apart_on_an_extreme_cluster(ledger: Ledger) -> None:
    frame = ledger.test.reset_index(drop=True).copy()
    cluster = np.random.default_rng(0).choice(len(frame), size=len(frame) // 20, replace=False)
    frame.loc[cluster, "amount"] = frame.loc[cluster, "amount"] * np.linspace(100, 1_000, len(cluster))
    scored = ledger.ensemble.score_frame(frame)
    dormant = {detector.name for detector in ledger.ensemble.detectors if getattr(detector, "dormant", False)}
    assert dormant == {"supervised"}
    assert not scored.evidence["supervised"].any()
    for name, evidence in scored.evidence.items():
        if name not in dormant:
            assert np.mean(evidence == evidence.max()) <= 0.001, name
    top = scored.table["ml_score"].to_numpy()
    assert np.mean(top == top.max()) <= 0.001
    magnitude = frame.loc[cluster, "amount"].to_numpy() / ledger.test.loc[cluster, "amount"].to_numpy()
    forest = scored.table.loc[cluster, "iforest_score"].to_numpy()
    assert np.corrcoef(np.argsort(np.argsort(magnitude)), np.argsort(np.argsort(forest)))[0, 1] > 0


def test_a_weak_rule_adds_to_ml_support_and_never_ranks_on_its_own() -> None:
    weak = RuleSet([NewPayeeLarge()]).evaluate(
        _rows(is_new_counterparty=[True, True], amount=[6_000.0, 6_000.0], max_previous_payment=[4_000.0, 4_000.0])
    )
    severity = weak.results["new_payee_large"].severity
    assert 0 < severity[0] < WEAK_RULE
    rules = supported_rules(weak, np.array([0.0, 0.8]))
    assert rules[0] == 0 and rules[1] == pytest.approx(severity[1] * 0.8)
    quiet_ml, some_ml = np.array([0.0]), np.array([0.3])
    assert combine(rules[:1], quiet_ml, severity[:1])[0] == 0
    assert combine(np.zeros(1), some_ml, np.zeros(1))[0] > combine(rules[:1], quiet_ml, severity[:1])[0]


def test_a_short_history_trains_on_its_most_recent_weeks_and_a_small_start_is_a_cold_start() -> None:
    months = [date(1997, month, 1) for month in (6, 7, 8, 9, 10, 11)]
    monthly_rows = {month: 3_000 for month in months}
    plan = training_windows(months, date(1997, 6, 5), monthly_rows, every=3)
    assert plan[date(1997, 6, 1)] == TrainingWindow(date(1997, 6, 1), date(1997, 7, 1), cold_start=True)
    for month in months[1:]:
        window = plan[month]
        assert not window.cold_start and window.end <= month
    assert plan[date(1997, 7, 1)].end == date(1997, 7, 1)
    assert plan[date(1997, 8, 1)] == TrainingWindow(date(1996, 8, 1), date(1997, 8, 1))
    assert plan[date(1997, 9, 1)] == TrainingWindow(date(1996, 9, 1), date(1997, 9, 1))
    assert plan[date(1997, 10, 1)] == plan[date(1997, 11, 1)] == TrainingWindow(date(1996, 10, 1), date(1997, 10, 1))
    small = training_windows(months, date(1997, 6, 5), dict.fromkeys(months, 700), every=3)
    assert (
        small[date(1997, 6, 1)] == small[date(1997, 8, 1)] == TrainingWindow(date(1997, 6, 1), date(1997, 9, 1), True)
    )
    assert small[date(1997, 9, 1)] == TrainingWindow(date(1996, 9, 1), date(1997, 9, 1))
    rich = training_windows(months[1:], date(1990, 1, 1), dict.fromkeys(months, 60_000), every=3)
    assert rich[date(1997, 8, 1)] == rich[date(1997, 9, 1)] == TrainingWindow(date(1996, 7, 1), date(1997, 7, 1))


def test_lof_reference_is_bounded_and_stratified(ledger: Ledger) -> None:
    lof = LocalOutlierFactorDetector(reference_rows=2_000, min_per_kind=50).fit(ledger.train)
    assert lof.reference_size_ <= 2_000 + 50 * ledger.train["transaction_kind"].nunique()
    scores = lof.score(ledger.test)
    assert scores.shape == (len(ledger.test),) and np.all((scores >= 0) & (scores <= 1))
    assert model_features(with_frame_context(ledger.test), lof.features).shape[1] == len(lof.features)


def _rows(**columns: list) -> pd.DataFrame:
    """Hand-built mart rows; unspecified columns take ordinary values."""
    count = len(next(iter(columns.values())))
    base = {
        "trans_id": list(range(1, count + 1)),
        "account_id": [1] * count,
        "trans_date": [pd.Timestamp("1997-05-10")] * count,
        "trans_month": [pd.Timestamp("1997-05-01")] * count,
        "transaction_type": ["debit"] * count,
        "operation": ["remittance_to_other_bank"] * count,
        "category": ["household_payment"] * count,
        "transaction_kind": ["household_payment"] * count,
        "direction": [-1] * count,
        "amount": [2_822.8] * count,
        "signed_amount": [-2_822.8] * count,
        "counterparty_bank": ["AB"] * count,
        "counterparty_account": ["12345678"] * count,
        "balance_after": [20_000.0] * count,
        "kind_txn_count_90d": [3] * count,
        "kind_amount_median_90d": [2_822.8] * count,
        "kind_amount_max_90d": [2_822.8] * count,
        "kind_amount_mean_90d": [2_822.8] * count,
        "kind_amount_std_90d": [0.0] * count,
        "is_new_counterparty": [False] * count,
        "is_duplicate_posting": [False] * count,
        "max_previous_payment": [2_822.8] * count,
        "district_average_salary": [9_000] * count,
        "day_spend": [2_822.8] * count,
        "day_spend_ratio": [1.0] * count,
        "usual_daily_spend_90d": [2_822.8] * count,
        "ledger_gap": [0.0] * count,
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_ledger_break_rule_names_the_gap() -> None:
    frame = _rows(amount=[500.0, 500.0], ledger_gap=[0.0, -3_337.0], balance_after=[5_130.5, 5_130.5])
    result = LedgerBreak().evaluate(with_frame_context(frame))
    assert result.severity[0] == 0 and result.severity[1] >= 0.95
    assert "off by -3,337" in result.reason(1) and "8,467.50" in result.reason(1)


def test_duplicate_posting_hits_the_second_posting_only() -> None:
    frame = _rows(trans_id=[7, 8], is_duplicate_posting=[True, True])
    result = DuplicatePosting().evaluate(with_frame_context(frame))
    assert result.severity[0] == 0 and result.severity[1] >= 0.95
    assert "second identical household payment of 2,822.80 to account 12345678" in result.reason(1)
    cash = _rows(
        trans_id=[7, 8],
        is_duplicate_posting=[True, True],
        counterparty_bank=[None, None],
        counterparty_account=[None, None],
        transaction_kind=["cash_withdrawal"] * 2,
    )
    assert 0 < DuplicatePosting().evaluate(with_frame_context(cash)).severity[1] < 0.5


def test_amount_beyond_history_weighs_how_much_the_history_varies() -> None:
    frame = _rows(
        amount=[28_228.0, 15_000.0, 15_000.0, 2_822.8],
        kind_amount_median_90d=[2_822.8, 1_500.0, 1_500.0, 2_822.8],
        kind_amount_max_90d=[2_822.8, 1_500.0, 9_000.0, 2_822.8],
        transaction_kind=["household_payment", "cash_withdrawal", "cash_withdrawal", "household_payment"],
    )
    result = AmountBeyondHistory().evaluate(with_frame_context(frame))
    assert result.severity[0] >= 0.95 and "exactly 10 times" in result.reason(0)
    assert 0.3 < result.severity[1] < 0.95
    assert result.severity[2] < result.severity[1]
    assert result.severity[3] == 0
    assert "10 times this account's 90-day median (1,500)" in result.reason(1)


def test_a_power_of_ten_is_certain_only_where_amounts_repeat() -> None:
    frame = _rows(
        amount=[28_228.0, 10_600.0, 10_600.0, 108.0],
        kind_amount_median_90d=[2_822.8, 1_060.0, 1_060.0, 10.8],
        kind_amount_max_90d=[2_822.8, 2_400.0, 1_060.0, 10.8],
        kind_txn_count_90d=[3, 3, 3, 1],
        transaction_kind=["household_payment", "cash_withdrawal", "cash_withdrawal", "interest_credited"],
    )
    result = AmountBeyondHistory().evaluate(with_frame_context(frame))
    assert result.severity[0] >= 0.95 and result.severity[2] >= 0.95
    assert result.severity[1] < 0.95 and "exactly" not in result.reason(1)
    assert result.severity[3] < 0.95


def test_burst_severity_keeps_rising_with_the_evidence() -> None:
    def day(count: int, history: int) -> pd.DataFrame:
        return _rows(
            trans_id=list(range(1, count + 1)),
            transaction_kind=["cash_withdrawal"] * count,
            amount=[1_000.0] * count,
            kind_txn_count_90d=[history] * count,
            day_spend_ratio=[2.0] * count,
        )

    severities = [Burst().evaluate(with_frame_context(day(count, 20))).severity[0] for count in (5, 7, 9, 12)]
    assert 0 < severities[0] < severities[1] < severities[2] < severities[3] < 0.9


def test_burst_and_new_payee_rules() -> None:
    burst = _rows(
        trans_id=list(range(1, 8)),
        transaction_kind=["cash_withdrawal"] * 7,
        amount=[1_000.0] * 7,
        kind_txn_count_90d=[4] * 7,
        day_spend=[7_000.0] * 7,
        day_spend_ratio=[7.0] * 7,
        usual_daily_spend_90d=[1_000.0] * 7,
    )
    result = Burst().evaluate(with_frame_context(burst))
    assert np.all(result.severity > 0.5) and "one of 7 cash withdrawals on 1997-05-10" in result.reason(0)
    habitual = burst.assign(kind_txn_count_90d=[60] * 7)
    assert np.all(Burst().evaluate(with_frame_context(habitual)).severity < result.severity)
    payee = _rows(
        amount=[20_000.0, 300.0],
        is_new_counterparty=[True, True],
        category=["unspecified"] * 2,
        transaction_kind=["remittance_to_other_bank"] * 2,
        max_previous_payment=[4_000.0, 50.0],
    )
    result = NewPayeeLarge().evaluate(with_frame_context(payee))
    assert result.severity[0] > 0.8 and "5.0 times the account's largest earlier payment (4,000)" in result.reason(0)
    assert result.severity[1] < 0.35


def test_overdraft_weighs_only_what_the_debit_itself_adds_below_zero() -> None:
    frame = _rows(
        amount=[45_000.0, 1_500.0, 3_000.0, 45_000.0, 45_000.0],
        balance_before=[8_000.0, -37_000.0, 1_000.0, 50_000.0, -37_000.0],
        balance_after=[-37_000.0, -38_500.0, -2_000.0, 5_000.0, -82_000.0],
        transaction_kind=["cash_withdrawal"] * 5,
    )
    result = Overdraft().evaluate(with_frame_context(frame))
    assert result.severity[0] > 0.8 and 0 < result.severity[4] < 0.5 * result.severity[0]
    assert "takes the balance from 8,000 to -37,000: 37,000 overdrawn, 4.1 district monthly salaries" in result.reason(
        0
    )
    assert result.severity[1] == 0 and result.severity[2] == 0 and result.severity[3] == 0
    credit = frame.assign(direction=[1] * 5)
    assert not Overdraft().evaluate(with_frame_context(credit)).hits.any()


def test_an_interest_credit_ten_times_the_last_is_no_typing_error() -> None:
    frame = _rows(
        amount=[108.0, 108.0],
        kind_amount_median_90d=[10.8, 10.8],
        kind_amount_max_90d=[10.8, 10.8],
        kind_txn_count_90d=[1, 1],
        transaction_kind=["interest_credited", "household_payment"],
    )
    result = AmountBeyondHistory().evaluate(with_frame_context(frame))
    assert result.severity[0] < 0.95 and "extra zero" not in (result.reason(0) or "")
    assert result.severity[1] >= 0.95


def test_rule_set_combines_as_noisy_or() -> None:
    frame = _rows(amount=[28_228.0], ledger_gap=[-100.0])
    report = RuleSet().evaluate(frame)
    severities = report.severities().iloc[0]
    assert report.combined()[0] == pytest.approx(1 - np.prod(1 - severities.to_numpy()))
    assert [hit["rule"] for hit in report.fired(0)][:1] == ["ledger_break"]


def test_the_alert_budget_takes_the_most_evident_of_rows_that_tie_at_the_top_score() -> None:
    """Six rows of one month with a budget of two: four tie at the top score, and the two with the most evidence
    are flagged, not the two lowest trans_ids; without evidence the lowest trans_ids are."""
    table = pd.DataFrame(
        {
            "trans_id": [1, 2, 3, 4, 5, 6],
            "trans_month": ["1997-03"] * 6,
            "score": [1.0, 1.0, 1.0, 1.0, 0.97, 0.2],
        }
    )
    evidence = np.array([3.0, 9.0, 4.0, 12.0, 50.0, 0.1])
    flags = budget_flags(table, threshold=0.9, alert_budget=2 / 6, evidence=evidence)
    assert table.loc[flags, "trans_id"].tolist() == [2, 4]
    assert table.loc[budget_flags(table, threshold=0.9, alert_budget=2 / 6), "trans_id"].tolist() == [1, 2]
