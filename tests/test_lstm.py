"""The LSTM next-transaction detector on hand-built account histories (no Postgres).

Pension accounts receive one pension a month, pay one household bill to the same payee and withdraw
cash once or twice; worker accounts receive a salary from their employer, pay rent to the same
payee, withdraw cash and pay by card; both earn interest and pay a statement fee at the month's end.
One more pension account behaves for two years and then makes a card withdrawal to a new payee every
day for ten days.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.detection.base import NotFittedError
from ads_assets.lib.detection.lstm import PARTS, LstmDetector
from ads_assets.lib.detection.registry import DETECTORS

MONTHS = pd.period_range("1996-01", "1997-12", freq="M")
ODD_ACCOUNT = 999
ODD_DAYS = pd.date_range("1997-12-12", periods=10, freq="D")
SETTINGS: dict[str, Any] = {"hidden": 32, "epochs": 30, "window": 32, "batch_size": 32, "learning_rate": 1e-2}


def _day(month: pd.Period, day: int) -> pd.Timestamp:
    return month.to_timestamp() + pd.Timedelta(days=min(day, month.days_in_month) - 1)


def _account_rows(account: int, profile: str, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Two years of one account's transactions (date, kind, direction, amount, counterparty)."""
    rows: list[dict[str, Any]] = []

    def add(day: pd.Timestamp, kind: str, direction: int, amount: float, payee: str | None = None) -> None:
        rows.append(
            {
                "account_id": account,
                "trans_date": day,
                "transaction_kind": kind,
                "direction": direction,
                "amount": round(amount, 2),
                "counterparty_account": payee,
            }
        )

    income = float(rng.integers(60, 130) * 100)
    bill = float(rng.integers(10, 40) * 100)
    income_day, bill_day = int(rng.integers(3, 12)), int(rng.integers(14, 22))
    for month in MONTHS:
        if profile == "pension":
            add(_day(month, income_day), "old_age_pension", 1, income)
            add(_day(month, bill_day), "household_payment", -1, bill, f"H{account}")
            for _ in range(int(rng.integers(1, 3))):
                add(_day(month, int(rng.integers(1, 29))), "cash_withdrawal", -1, float(rng.integers(5, 30) * 100))
        else:
            add(_day(month, income_day), "collection_from_other_bank", 1, income, f"E{account}")
            add(_day(month, bill_day), "remittance_to_other_bank", -1, bill, f"R{account}")
            add(_day(month, int(rng.integers(1, 29))), "cash_withdrawal", -1, float(rng.integers(5, 40) * 100))
            for _ in range(int(rng.integers(2, 5))):
                add(_day(month, int(rng.integers(1, 29))), "card_withdrawal", -1, float(rng.integers(100, 2_000)))
        add(_day(month, 31), "interest_credited", 1, float(rng.uniform(10, 80)))
        add(_day(month, 31), "statement_fee", -1, 15.0)
    return rows


def _mart(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows shaped like marts.fct_transaction_features (balances, day gaps, payee novelty)."""
    frame = pd.DataFrame(rows).sort_values(["trans_date", "account_id"], kind="stable").reset_index(drop=True)
    frame["trans_id"] = np.arange(1, len(frame) + 1)
    frame = frame.sort_values(["account_id", "trans_date", "trans_id"]).reset_index(drop=True)
    signed = frame["direction"] * frame["amount"]
    frame["balance_after"] = 1_000.0 + signed.groupby(frame["account_id"]).cumsum()
    frame["balance_before"] = frame["balance_after"] - signed
    days = frame[["account_id", "trans_date"]].drop_duplicates()
    days["days_since_previous_txn"] = days.groupby("account_id")["trans_date"].diff().dt.days
    frame = frame.merge(days, on=["account_id", "trans_date"], how="left")
    has_payee = frame["counterparty_account"].notna()
    seen = frame.loc[has_payee].duplicated(["account_id", "counterparty_account"])
    frame["is_new_counterparty"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    frame.loc[has_payee, "is_new_counterparty"] = ~seen
    frame["counterparty_account"] = frame["counterparty_account"].astype("str")
    frame["transaction_kind"] = frame["transaction_kind"].astype("str")
    return frame.sort_values(["trans_date", "trans_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = [
        row for account in range(1, 41) for row in _account_rows(account, "pension" if account % 2 else "worker", rng)
    ]
    return _mart(rows)


@pytest.fixture(scope="module")
def odd_account() -> pd.DataFrame:
    """A pension account that ends with ten daily card withdrawals to new payees."""
    rng = np.random.default_rng(5)
    rows = _account_rows(ODD_ACCOUNT, "pension", rng)
    for number, day in enumerate(ODD_DAYS):
        rows.append(
            {
                "account_id": ODD_ACCOUNT,
                "trans_date": day,
                "transaction_kind": "card_withdrawal",
                "direction": -1,
                "amount": float(rng.integers(30, 60) * 100),
                "counterparty_account": f"X{number}",
            }
        )
    return _mart(rows)


@pytest.fixture(scope="module")
def fitted(population: pd.DataFrame) -> LstmDetector:
    return LstmDetector(random_state=3, **SETTINGS).fit(population)


def test_registered() -> None:
    assert DETECTORS["lstm"] is LstmDetector
    assert LstmDetector.lookback_days == 60


def test_not_fitted_before_fit(population: pd.DataFrame) -> None:
    detector = LstmDetector()
    with pytest.raises(NotFittedError):
        detector.raw_score(population.head(5))
    with pytest.raises(NotFittedError):
        detector.score(population.head(5))
    with pytest.raises(NotFittedError):
        detector.explain(population.head(5))


def test_out_of_pattern_rows_rank_above_the_accounts_own_history(fitted: LstmDetector, odd_account) -> None:
    scores, raw = fitted.score(odd_account), fitted.raw_score(odd_account)
    odd = odd_account["transaction_kind"].eq("card_withdrawal").to_numpy()
    normal = ~odd & (odd_account["trans_date"] >= "1996-03-01").to_numpy()

    assert odd.sum() == len(ODD_DAYS)
    assert scores[odd].mean() > np.quantile(scores[normal], 0.95)
    assert raw[odd][0] > np.quantile(raw[normal], 0.99)
    assert np.median(raw[odd]) > np.quantile(raw[normal], 0.95)

    reasons = fitted.explain(odd_account.loc[odd], history=odd_account.loc[~odd])
    assert len(reasons) == odd.sum()
    first = reasons[0]
    assert first["detector"] == "lstm" and first["part"] in {"kind", "timing", "payee"}
    assert 0 < len(first["features"]) <= 3
    assert [feature["feature"] for feature in first["features"]][0] == f"lstm_{first['part']}"
    assert all(feature["feature"].removeprefix("lstm_") in PARTS for feature in first["features"])
    assert all(feature["text"] for feature in first["features"])


def test_explain_gives_real_numbers(fitted: LstmDetector, odd_account: pd.DataFrame) -> None:
    row = odd_account.loc[odd_account["transaction_kind"].eq("card_withdrawal")].head(1)
    earlier = odd_account.loc[odd_account["trans_date"] < ODD_DAYS[0]]
    [reason] = fitted.explain(row, top=4, history=earlier)
    by_part = {feature["feature"]: feature for feature in reason["features"]}

    assert set(by_part) == {"lstm_amount", "lstm_kind", "lstm_timing", "lstm_payee"}
    assert by_part["lstm_amount"]["value"] == float(row["amount"].iloc[0])
    assert by_part["lstm_amount"]["typical"] > 0
    assert by_part["lstm_kind"]["value"] == "card withdrawal"
    assert by_part["lstm_kind"]["typical"] != "card withdrawal"
    assert by_part["lstm_payee"]["value"] == "yes"
    assert by_part["lstm_timing"]["value"] >= 0
    assert f"{float(row['amount'].iloc[0]):,.0f}" in by_part["lstm_amount"]["text"]
    assert reason["score"] == round(float(fitted.score(row, history=earlier)[0]), 4)
    assert reason["part"] == reason["features"][0]["feature"].removeprefix("lstm_")


def test_scores_follow_the_frames_rows_with_history(fitted: LstmDetector, population: pd.DataFrame) -> None:
    frame = population.loc[population["trans_date"] >= "1997-10-01"]
    history = population.loc[(population["trans_date"] < "1997-10-01") & (population["trans_date"] >= "1997-08-02")]
    expected = fitted.raw_score(frame, history=history)
    shuffled = frame.sample(frac=1.0, random_state=4)
    scores = fitted.raw_score(shuffled, history=history.sample(frac=1.0, random_state=5))

    assert len(expected) == len(frame)
    np.testing.assert_allclose(scores, pd.Series(expected, index=frame.index).loc[shuffled.index].to_numpy(), rtol=1e-5)
    without = fitted.raw_score(frame)
    assert not np.allclose(without, expected)
    others = population.loc[population["account_id"].isin([1, 2]) & (population["trans_date"] >= "1997-10-01")]
    np.testing.assert_allclose(
        fitted.raw_score(others, history=history),
        pd.Series(expected, index=frame.index).loc[others.index].to_numpy(),
        rtol=1e-5,
    )
    assert fitted.raw_score(frame.iloc[:0]).shape == (0,)
    assert fitted.explain(frame.iloc[:0]) == []


def test_pickle_round_trip_scores_equal(fitted: LstmDetector, odd_account: pd.DataFrame) -> None:
    restored = pickle.loads(pickle.dumps(fitted))

    np.testing.assert_array_equal(restored.raw_score(odd_account), fitted.raw_score(odd_account))
    assert restored.explain(odd_account.tail(2)) == fitted.explain(odd_account.tail(2))


def test_same_random_state_same_scores(population: pd.DataFrame, odd_account: pd.DataFrame) -> None:
    small = {**SETTINGS, "epochs": 2}
    first = LstmDetector(random_state=1, **small).fit(population)
    second = LstmDetector(random_state=1, **small).fit(population)
    other = LstmDetector(random_state=2, **small).fit(population)

    np.testing.assert_array_equal(first.raw_score(odd_account), second.raw_score(odd_account))
    assert not np.array_equal(first.raw_score(odd_account), other.raw_score(odd_account))
    assert first.parameters()["epochs"] == 2 and first.parameters()["random_state"] == 1
