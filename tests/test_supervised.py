"""The supervised detector: label risk features with their delay, learning from confirmed frauds, dormancy, reasons.

Hand-built frames, no Postgres. The shop frame has 30 accounts paying 100 to one of ten merchants every
day from 1997-01-01 (day 0) to 1997-04-27 (day 116): account a pays merchant (a + day) % 10, so every
merchant is paid by exactly 3 accounts a day and every row looks alike. Merchant 0's payments of days
60..99 are confirmed as fraud; only the labels tell them apart. The detector learns from days 0..109
and scores days 110..116 with the earlier days as history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.detection.ensemble import EnsembleDetector
from ads_assets.lib.detection.supervised import SupervisedDetector, risk_features
from tests.synthetic import ledger_frame, with_history

START = pd.Timestamp("1997-01-01")
COMPROMISED_DAYS = range(60, 100)
SCORED_FROM = 110


def payment(account: int, day: int, merchant: int, label: str | None = None, trans_id: int = 0) -> dict[str, object]:
    return {
        "trans_id": trans_id,
        "account_id": account,
        "trans_date": START + pd.Timedelta(days=day),
        "transaction_kind": "remittance_to_other_bank",
        "transaction_type": "VYDAJ",
        "operation": "PREVOD NA UCET",
        "category": "",
        "direction": -1,
        "amount": 100.0,
        "counterparty_bank": "QR",
        "counterparty_account": f"{merchant:08d}",
        "account_district_id": 1,
        "district_average_salary": 9000.0,
        "analyst_label": label,
    }


@pytest.fixture(scope="module")
def shop() -> pd.DataFrame:
    rows = [payment(account, day, (account + day) % 10) for day in range(SCORED_FROM + 7) for account in range(1, 31)]
    frame = with_history(pd.DataFrame(rows).drop(columns=["trans_id", "analyst_label"]))
    day = (frame["trans_date"] - START).dt.days
    fraud = (frame["counterparty_account"] == f"{0:08d}") & day.isin(COMPROMISED_DAYS)
    frame["analyst_label"] = np.where(fraud, "confirmed", None)
    return frame


@pytest.fixture(scope="module")
def fitted(shop: pd.DataFrame) -> SupervisedDetector:
    train = shop.loc[shop["trans_date"] < START + pd.Timedelta(days=SCORED_FROM)]
    return SupervisedDetector(max_iter=50).fit(train)


def scored_and_history(shop: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    scored = shop["trans_date"] >= START + pd.Timedelta(days=SCORED_FROM)
    return shop.loc[scored].reset_index(drop=True), shop.loc[~scored].reset_index(drop=True)


def test_a_label_counts_only_on_a_transaction_dated_before_the_delay_within_the_window() -> None:
    day = 50
    rows = pd.DataFrame(
        [
            payment(1, day - 3, 7, "confirmed", 1),
            payment(2, day - 7, 7, "confirmed", 2),
            payment(3, day - 8, 7, "confirmed", 3),
            payment(4, day - 9, 7, "false_positive", 4),
            payment(5, day - 10, 7, None, 5),
            payment(6, day - 35, 7, "confirmed", 6),
            payment(7, day - 36, 7, "confirmed", 7),
            payment(9, day - 20, 8, "confirmed", 8),
            payment(9, day, 7, "confirmed", 9),
        ]
    )
    risk = risk_features(rows).iloc[-1]
    assert risk["payee_fraud_payments"] == 2
    assert risk["payee_fraud_share"] == pytest.approx(2 / 4)
    assert risk["account_frauds"] == 1

    from_history = risk_features(rows.iloc[[-1]], history=rows.iloc[:-1]).iloc[0]
    pd.testing.assert_series_equal(from_history, risk, check_names=False)


def test_a_row_without_a_payee_or_incoming_has_no_payee_risk() -> None:
    rows = pd.DataFrame([payment(1, 10, 7, "confirmed", 1), payment(2, 20, 7, None, 2), payment(3, 20, 7, None, 3)])
    rows.loc[1, "direction"] = 1
    rows.loc[2, "counterparty_account"] = None
    risk = risk_features(rows)
    assert risk["payee_fraud_payments"].tolist() == [0, 0, 0]
    assert risk["payee_fraud_share"].tolist() == [0, 0, 0]


def test_payments_to_a_payee_with_recent_confirmed_frauds_score_above_identical_ordinary_ones(
    shop: pd.DataFrame, fitted: SupervisedDetector
) -> None:
    scored, history = scored_and_history(shop)
    compromised = (scored["counterparty_account"] == f"{0:08d}").to_numpy()
    raw = fitted.raw_score(scored, history)
    assert not fitted.dormant and fitted.confirmed_count_ == 3 * len(COMPROMISED_DAYS)
    assert raw[compromised].min() > raw[~compromised].max()
    evidence = fitted.evidence(scored, history)
    assert evidence[compromised].min() > evidence[~compromised].max()


def test_without_history_the_same_payments_lose_their_payee_risk(
    shop: pd.DataFrame, fitted: SupervisedDetector
) -> None:
    scored, history = scored_and_history(shop)
    compromised = (scored["counterparty_account"] == f"{0:08d}").to_numpy()
    with_labels = fitted.raw_score(scored, history)[compromised]
    without = fitted.raw_score(scored)[compromised]
    assert np.all(without < with_labels)


def test_a_label_given_after_the_fit_counts_when_scoring(shop: pd.DataFrame, fitted: SupervisedDetector) -> None:
    scored, history = scored_and_history(shop)
    merchant = (scored["counterparty_account"] == f"{3:08d}").to_numpy()
    later = history.assign(
        analyst_label=np.where(history["counterparty_account"] == f"{3:08d}", "confirmed", history["analyst_label"])
    )
    assert np.all(fitted.raw_score(scored, later)[merchant] > fitted.raw_score(scored, history)[merchant])


def test_the_reason_names_the_exact_counts(shop: pd.DataFrame, fitted: SupervisedDetector) -> None:
    scored, history = scored_and_history(shop)
    day = START + pd.Timedelta(days=112)
    row = scored.loc[(scored["trans_date"] == day) & (scored["account_id"] == 8)]
    assert row["counterparty_account"].item() == f"{0:08d}"
    [explained] = fitted.explain(row, top=3, history=history)
    payee, account = explained["features"][:2]
    assert explained["detector"] == "supervised" and 0.5 < explained["score"] <= 1
    assert payee["feature"] == "payee_fraud_payments" and payee["value"] == 69
    assert payee["text"] == (
        "payee received 69 payments confirmed as fraud in the 4 weeks before 1997-04-16 (82% of its payments then)"
    )
    assert account["feature"] == "account_frauds" and account["value"] == 2
    assert account["text"] == "the account had 2 transactions confirmed as fraud in the 4 weeks before 1997-04-16"


def test_without_enough_confirmed_labels_it_is_dormant() -> None:
    frame = ledger_frame(accounts=20, months=3, seed=2)
    early = frame["trans_date"] < frame["trans_date"].max() - pd.Timedelta(days=10)
    frame["analyst_label"] = None
    frame.loc[frame.index[early][: SupervisedDetector.MIN_CONFIRMED - 1], "analyst_label"] = "confirmed"
    detector = SupervisedDetector().fit(frame)
    assert detector.dormant and detector.confirmed_count_ == SupervisedDetector.MIN_CONFIRMED - 1
    np.testing.assert_array_equal(detector.raw_score(frame), np.zeros(len(frame)))
    np.testing.assert_array_equal(detector.evidence(frame), np.zeros(len(frame)))
    [explained] = detector.explain(frame.iloc[:1])
    assert explained["features"] == [] and explained["score"] == 0
    assert explained["text"] == "no analyst labels to learn from yet: 19 confirmed frauds, 20 needed"


def test_in_the_ensemble_it_learns_from_the_labelled_rows_the_other_detectors_never_see(shop: pd.DataFrame) -> None:
    """The ensemble fits the supervised detector on every training row with its label, the forest without the
    confirmed frauds; the compromised merchant's later payments then lead the ML ranking on labels alone."""
    train = shop.loc[shop["trans_date"] < START + pd.Timedelta(days=SCORED_FROM)]
    confirmed = set(train.loc[train["analyst_label"] == "confirmed", "trans_id"].astype(int))
    ensemble = EnsembleDetector(detectors={"iforest": 0.5, "supervised": 1.0}).fit(train, confirmed=confirmed)
    supervised = next(detector for detector in ensemble.detectors if detector.name == "supervised")
    assert not supervised.dormant
    assert supervised.confirmed_count_ == len(confirmed)
    assert ensemble.excluded_confirmed_rows_ == len(confirmed)
    frame, history = scored_and_history(shop)
    scored = ensemble.score_frame(frame, history)
    merchant_zero = (frame["counterparty_account"] == f"{0:08d}").to_numpy()
    ranked = scored.table["ml_score"].to_numpy()
    assert ranked[merchant_zero].min() > ranked[~merchant_zero].max()
