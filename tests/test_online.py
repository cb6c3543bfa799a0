"""Drift (PSI) and guarded online learning between retrains, on a small hand-built ledger.

The ledger is built in memory (no dbt): 120 accounts over 13 months, each with a monthly household
payment to a fixed payee, a monthly credit and three cash withdrawals a month around the account's own
level, with the mart's 90-day history columns computed from the same rows. A model is fitted on the first
six months; the next six, with a group of accounts' cash withdrawals inflated a little more each month,
are fed to the updater batch by batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.db import connect
from ads_assets.lib.detection.drift import (
    DRIFT_BANDS,
    DRIFT_TABLE,
    band,
    drift_retrain_months,
    monthly_drift,
    needs_retrain,
    psi,
    write_drift,
)
from ads_assets.lib.detection.ensemble import EnsembleDetector
from ads_assets.lib.detection.iforest import IsolationForestDetector
from ads_assets.lib.detection.lstm import LstmDetector
from ads_assets.lib.detection.online import (
    Batch,
    OnlinePolicy,
    OnlineState,
    OnlineUpdater,
    ThresholdCheck,
    admitted_rows,
)
from ads_assets.lib.detection.tails import FeatureTailsDetector
from ads_assets.lib.detection.training import TrainingWindow
from ads_assets.lib.tables import read_query

ACCOUNTS = 120
WARM_UP = pd.date_range("1995-10-01", periods=3, freq="MS")
"""Months generated only so that every later row has a 90-day history."""
MONTHS = pd.date_range("1996-01-01", periods=13, freq="MS")
TRAINING_MONTHS = 6
MAX_LAGS = 12
"""Earlier rows of the same account and kind looked at for the 90-day history (a kind has at most 9 in 90 days)."""
GROUP = np.arange(12)
"""The accounts whose cash withdrawals the poisoning stream inflates."""
STREAM = 1.3 ** np.arange(1, 7)
"""The stream's inflation of the group's cash withdrawals, month by month: 1.3 to 4.8 times their usual."""


def build_ledger(seed: int = 0) -> pd.DataFrame:
    """Mart-like rows of every account and month, with the 90-day history columns of each account and kind."""
    rng = np.random.default_rng(seed)
    household = np.exp(rng.normal(np.log(1_500), 0.6, ACCOUNTS))
    cash = np.exp(rng.normal(np.log(1_200), 0.6, ACCOUNTS))
    rows = []
    for month in WARM_UP.append(MONTHS):
        days = month.days_in_month
        for account in range(ACCOUNTS):
            amounts = np.round(cash[account] * np.exp(rng.normal(0.0, 0.25, 3)), 2)
            income = round(float(household[account] + amounts.sum()), 2)
            rows.append((account, month + pd.Timedelta(days=account % 28), "household_payment", -1, household[account]))
            rows.append((account, month + pd.Timedelta(days=4), "credit", 1, income))
            for day, amount in zip(np.sort(rng.choice(days, size=3, replace=False)), amounts, strict=True):
                rows.append((account, month + pd.Timedelta(days=int(day)), "cash_withdrawal", -1, amount))
    frame = pd.DataFrame(rows, columns=["account_id", "trans_date", "transaction_kind", "direction", "amount"])
    frame = frame.sort_values(["trans_date", "account_id", "transaction_kind"], kind="stable").reset_index(drop=True)
    frame["trans_id"] = np.arange(1, len(frame) + 1)
    return _with_history(frame)


def _with_history(frame: pd.DataFrame) -> pd.DataFrame:
    """The mart columns the detectors read, from `trans_date`, `amount` and the account's earlier rows."""
    frame = frame.sort_values(["account_id", "trans_date", "trans_id"], kind="stable").reset_index(drop=True)
    frame["trans_month"] = frame["trans_date"].dt.to_period("M").dt.to_timestamp()
    payee = frame["transaction_kind"] == "household_payment"
    frame["counterparty_bank"] = np.where(payee, "AB", None)
    frame["counterparty_account"] = np.where(payee, "P" + frame["account_id"].astype(str), None)
    frame["transaction_type"] = np.where(frame["direction"] > 0, "credit", "debit")
    frame["operation"] = frame["category"] = frame["transaction_kind"]
    signed = frame["direction"] * frame["amount"]
    frame["balance_after"] = 20_000.0 + signed.groupby(frame["account_id"]).cumsum()
    frame["balance_before"] = frame["balance_after"] - signed
    frame["balance_change_pct"] = 100.0 * signed / frame["balance_before"].abs().clip(lower=100.0)
    frame["ledger_gap"] = 0.0
    frame["is_duplicate_posting"] = False
    frame["district_average_salary"] = 9_000.0
    frame["account_district_id"] = frame["account_id"] % 4
    previous = frame.groupby("account_id")["trans_date"].shift()
    frame["days_since_previous_txn"] = (frame["trans_date"] - previous).dt.days
    frame["txn_count_day"] = frame.groupby(["account_id", "trans_date"])["trans_id"].transform("size")
    frame["txn_count_7d"] = 1.0
    first_payment = payee & ~frame.duplicated(["account_id", "counterparty_account"])
    frame["is_new_counterparty"] = pd.array(np.where(payee, first_payment, pd.NA), dtype="boolean")
    frame["counterparty_previous_txn_count"] = np.where(
        payee, frame.groupby(["account_id", "transaction_kind"]).cumcount(), np.nan
    )
    groups = frame.groupby(["account_id", "transaction_kind"])
    lags = range(1, MAX_LAGS + 1)
    earlier = np.column_stack([groups["amount"].shift(lag).to_numpy() for lag in lags])
    dates = np.column_stack([groups["trans_date"].shift(lag).to_numpy() for lag in lags])
    within = (frame["trans_date"].to_numpy()[:, None] - dates) <= np.timedelta64(90, "D")
    earlier = np.where(within, earlier, np.nan)
    count = np.isfinite(earlier).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = {
            "count": count,
            "median": np.nanmedian(earlier, axis=1),
            "mean": np.nanmean(earlier, axis=1),
            "std": np.nanstd(earlier, axis=1),
            "max": np.nanmax(earlier, axis=1),
        }
    frame["kind_txn_count_90d"] = stats["count"]
    for name in ("median", "mean", "std", "max"):
        frame[f"kind_amount_{name}_90d"] = stats[name]
    frame = frame.loc[frame["trans_month"] >= MONTHS[0]]
    return frame.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True)


def month_rows(ledger: pd.DataFrame, month: pd.Timestamp) -> pd.DataFrame:
    return ledger.loc[ledger["trans_month"] == month].reset_index(drop=True)


def inflate(rows: pd.DataFrame, factor: float, accounts: np.ndarray = GROUP) -> pd.DataFrame:
    """`rows` with the cash withdrawals of `accounts` `factor` times their amount (their history unchanged)."""
    chosen = rows["account_id"].isin(accounts) & (rows["transaction_kind"] == "cash_withdrawal")
    return rows.assign(amount=np.where(chosen, rows["amount"] * factor, rows["amount"]))


def top_share_rank(scores: np.ndarray, row: int) -> float:
    """The share of rows scoring at least as high as `row` (0.01: in the top 1 %)."""
    return float(np.mean(scores >= scores[row]))


@dataclass(frozen=True)
class Stream:
    ledger: pd.DataFrame
    history: pd.DataFrame
    state: OnlineState
    updater: OnlineUpdater
    states: list[OnlineState]
    reports: list
    stored_scores: np.ndarray
    """The stored model's scores of the first streamed month, taken before any refresh."""


def fitted_model(training: pd.DataFrame) -> EnsembleDetector:
    detectors = [
        IsolationForestDetector(n_estimators=50, max_samples=256),
        FeatureTailsDetector(),
        LstmDetector(hidden=16, embedding=4, epochs=2, window=32, max_windows=256),
    ]
    weights = {"iforest": 0.4, "tails": 0.4, "lstm": 0.2}
    return EnsembleDetector(detectors=detectors, weights=weights, ml_alert_rate=0.01).fit(training)


@pytest.fixture(scope="module")
def stream() -> Iterator[Stream]:
    """The ledger, its model fitted on the first six months, and the refreshes by the poisoned stream."""
    ledger = build_ledger()
    training = ledger.loc[ledger["trans_month"] < MONTHS[TRAINING_MONTHS]].reset_index(drop=True)
    model = fitted_model(training)
    updater = OnlineUpdater(OnlinePolicy(reference_rows=2_000, lstm_windows=32))
    state = updater.start(model, updater.reference_rows(model, training), "v1")
    stored_scores = model.score(month_rows(ledger, MONTHS[TRAINING_MONTHS]))
    states, reports = [state], []
    for factor, month in zip(STREAM, MONTHS[TRAINING_MONTHS:], strict=False):
        rows = inflate(month_rows(ledger, month), factor)
        history = ledger.loc[(ledger["trans_date"] < month) & (ledger["trans_date"] >= month - pd.Timedelta(days=60))]
        scored = states[-1].model.score_frame(rows, history)
        refreshed, report = updater.refresh(states[-1], Batch.from_scored(rows, scored, history=history))
        states.append(refreshed)
        reports.append(report)
    yield Stream(ledger, training, state, updater, states, reports, stored_scores)


def test_psi_of_identical_samples_is_zero_and_a_known_split_gives_its_exact_value() -> None:
    reference = np.arange(1_000.0)
    assert psi(reference, reference) == 0.0
    current = np.concatenate([np.repeat(np.arange(100.0), 6)[:550], 100.0 + 2.0 * np.arange(450)])
    expected = 0.45 * np.log(5.5) + 9 * (0.05 - 0.1) * np.log(0.5)
    assert psi(reference, current) == pytest.approx(expected, abs=1e-12)
    assert psi(np.log1p(reference), np.log1p(current)) == pytest.approx(expected, abs=1e-12)
    one_bin = np.full(100, 5.0)
    floored = 0.9 * np.log(1.0 / 0.1) + 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert psi(reference, one_bin) == pytest.approx(floored, abs=1e-12)


def test_psi_bands_of_shifted_normal_samples() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=50_000)
    same = psi(reference, rng.normal(size=20_000))
    small = psi(reference, rng.normal(0.2, 1.0, size=20_000))
    middle = psi(reference, rng.normal(0.45, 1.0, size=20_000))
    large = psi(reference, rng.normal(1.0, 1.0, size=20_000))
    assert same < 0.01
    assert [band(value) for value in (same, small, middle, large)] == ["stable", "stable", "moderate", "major"]
    assert band(DRIFT_BANDS[0] - 1e-9) == "stable" and band(DRIFT_BANDS[1]) == "moderate"
    assert band(DRIFT_BANDS[1] + 1e-9) == "major"
    with_missing = np.where(rng.random(20_000) < 0.3, np.nan, rng.normal(size=20_000))
    assert band(psi(reference, with_missing)) == "major"


def test_monthly_drift_names_the_drifted_feature_and_is_written_per_month(stream: Stream, fresh_database) -> None:
    later = stream.ledger.loc[stream.ledger["trans_month"].isin(MONTHS[TRAINING_MONTHS : TRAINING_MONTHS + 2])]
    doubled = later.assign(
        amount=np.where(later["trans_month"] == MONTHS[TRAINING_MONTHS + 1], later["amount"] * 3, later["amount"])
    )
    second_month = (doubled["trans_month"] == MONTHS[TRAINING_MONTHS + 1]).to_numpy()
    reference_scores = np.linspace(0.0, 1.0, len(stream.history))
    scores = np.empty(len(doubled))
    scores[~second_month] = np.linspace(0.0, 1.0, int((~second_month).sum()))
    scores[second_month] = np.linspace(0.5, 1.0, int(second_month.sum()))
    report = monthly_drift(stream.history, doubled, "1996-01-01..1996-07-01", scores=(reference_scores, scores))
    first, second = (f"{month:%Y-%m}" for month in MONTHS[TRAINING_MONTHS : TRAINING_MONTHS + 2])
    by_month = report.set_index(["month", "subject"])
    assert (report.loc[report["month"] == first, "band"] == "stable").all()
    assert by_month.loc[(second, "amount"), "band"] == "major"
    assert by_month.loc[(second, "amount_vs_history"), "band"] == "major"
    assert by_month.loc[(second, "txn_count_day"), "band"] == "stable"
    assert by_month.loc[(first, "score"), "psi"] < 0.01 and by_month.loc[(second, "score"), "band"] == "major"
    assert not needs_retrain(report.loc[report["month"] == first]) and needs_retrain(report)
    with connect(fresh_database) as connection:
        assert write_drift(connection, report) == len(report)
        assert write_drift(connection, report.loc[report["month"] == second]) == len(report) // 2
        stored = read_query(
            connection, f"SELECT month, subject, psi, band, reference FROM {DRIFT_TABLE} ORDER BY month, subject"
        )  # noqa: S608 - DRIFT_TABLE is a module constant
    expected = report.sort_values(["month", "subject"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        stored.astype({"month": object, "subject": object, "band": object, "reference": object}),
        expected,
        check_dtype=False,
    )


def test_a_major_drift_forces_a_retrain_of_the_next_month_only(stream: Stream) -> None:
    months = [month.date() for month in MONTHS[TRAINING_MONTHS : TRAINING_MONTHS + 4]]
    window = TrainingWindow(date(1996, 1, 1), months[0])
    plan = dict.fromkeys(months, window)
    ledger = stream.ledger
    spike = ledger["trans_month"] == MONTHS[TRAINING_MONTHS + 2]
    shifted = ledger.assign(amount=np.where(spike, ledger["amount"] * 3, ledger["amount"]))
    assert drift_retrain_months(ledger, plan, training_months=8) == {}
    forced = drift_retrain_months(shifted, plan, training_months=8)
    assert forced == {months[3]: TrainingWindow(date(1996, 2, 1), date(1996, 10, 1))}


def test_flagged_rule_hit_above_threshold_and_labelled_rows_never_enter() -> None:
    rows = pd.DataFrame({"trans_id": [1, 2, 3, 4, 5, 6, 7]})
    scores = pd.DataFrame(
        {
            "trans_id": [7, 6, 5, 4, 3, 2],
            "score": [0.1, 0.2, 0.6, 0.1, 0.1, 0.3],
            "is_anomaly": [False, False, False, True, False, False],
            "rule_hits": [[], [], [], [], ["burst"], []],
        }
    )
    admitted = admitted_rows(Batch(rows, scores, labelled={6}), threshold=0.5)
    np.testing.assert_array_equal(admitted, [False, True, False, False, False, False, True])


def test_a_refresh_copies_the_model_and_replaces_at_most_the_capped_share_of_trees(stream: Stream) -> None:
    forests = [state.model.detectors[0].pipeline_[-1] for state in stream.states]
    size = len(forests[0].estimators_)
    cap = int(0.1 * size)
    for before, after, report in zip(forests, forests[1:], stream.reports, strict=False):
        changed = [
            index
            for index, (old, new) in enumerate(zip(before.estimators_, after.estimators_, strict=True))
            if not np.array_equal(old.tree_.threshold, new.tree_.threshold)
        ]
        assert len(changed) == cap and tuple(changed) == tuple(sorted(report.replaced_trees["iforest"]))
    first = stream.reports[0].replaced_trees["iforest"]
    second = stream.reports[1].replaced_trees["iforest"]
    assert first == tuple(range(cap)) and second == tuple(range(cap, 2 * cap))
    stored = stream.state.model
    assert stream.states[0].model is stored and stream.states[1].model is not stored
    assert stored.detectors[0].pipeline_[-1] is forests[0]
    np.testing.assert_array_equal(
        stored.score(month_rows(stream.ledger, MONTHS[TRAINING_MONTHS])), stream.stored_scores
    )
    assert [state.model_version for state in stream.states[:3]] == ["v1", "v1+online.1", "v1+online.2"]
    assert all(report.lstm_windows == 32 for report in stream.reports)


def test_a_batch_of_labelled_rows_teaches_nothing(stream: Stream) -> None:
    month = MONTHS[TRAINING_MONTHS]
    rows = month_rows(stream.ledger, month)
    scored = stream.state.model.score_frame(rows)
    batch = Batch.from_scored(rows, scored, labelled=set(rows["trans_id"]))
    refreshed, report = stream.updater.refresh(stream.state, batch)
    assert report.admitted_rows == 0 and report.recent_rows == 0 and report.lstm_windows == 0
    assert report.replaced_trees == {}
    before = stream.state.model.detectors[0].pipeline_[-1].estimators_
    after = refreshed.model.detectors[0].pipeline_[-1].estimators_
    assert all(np.array_equal(a.tree_.threshold, b.tree_.threshold) for a, b in zip(before, after, strict=True))


def test_the_fixed_reference_keeps_the_threshold_in_its_band(stream: Stream) -> None:
    shares = [report.threshold.refreshed_share for report in stream.reports]
    assert all(not report.threshold.moved for report in stream.reports), shares
    assert all(0.01 <= share <= 0.01 / (1 - 0.2) + 1 / 2_000 for share in shares), shares
    month = MONTHS[TRAINING_MONTHS]
    drifted = inflate(month_rows(stream.ledger, month), 4.0, np.arange(ACCOUNTS))
    poisoned = pd.DataFrame(
        {"trans_id": drifted["trans_id"], "score": 0.0, "is_anomaly": False, "rule_hits": [[]] * len(drifted)}
    )
    unanchored = OnlineUpdater(OnlinePolicy(reference_rows=2_000, recent_share=0.9))
    _, report = unanchored.refresh(stream.state, Batch(drifted, poisoned))
    assert report.threshold.moved and report.threshold.refreshed_share < 0.01 / 1.5
    assert ThresholdCheck(0.01, 0.02, 0.014, 1.5).moved is False and ThresholdCheck(0.01, 0.01, 0.016, 1.5).moved
    assert ThresholdCheck(0.01, 0.01, 0.006, 1.5).moved


def test_a_slowly_inflated_stream_does_not_push_a_later_inflated_amount_out_of_the_top_percent(stream: Stream) -> None:
    month = MONTHS[TRAINING_MONTHS + len(STREAM)]
    rows = month_rows(stream.ledger, month)
    history = stream.ledger.loc[
        (stream.ledger["trans_date"] < month) & (stream.ledger["trans_date"] >= month - pd.Timedelta(days=60))
    ]
    for account in (GROUP[0], ACCOUNTS - 1):
        cash = (rows["account_id"] == account) & (rows["transaction_kind"] == "cash_withdrawal")
        target = int(np.flatnonzero(cash)[0])
        planted = rows.assign(
            amount=np.where(np.arange(len(rows)) == target, rows["amount"] * STREAM[-1], rows["amount"])
        )
        stored = top_share_rank(stream.state.model.score(planted, history), target)
        refreshed = top_share_rank(stream.states[-1].model.score(planted, history), target)
        assert stored <= 0.01 and refreshed <= 0.01, (account, stored, refreshed)
        assert refreshed <= stored + 1 / len(rows), (account, stored, refreshed)
    admitted = [report.admitted_rows for report in stream.reports]
    assert min(admitted) > 0.9 * len(rows)
    assert admitted[-1] < admitted[0]
