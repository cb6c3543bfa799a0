"""The independent injector of `benchmarks/real_injection.py` on the real PKDD'99 transactions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL = REPO_ROOT.parent / "shared" / "data" / "berka" / "pkdd99"

pytestmark = pytest.mark.skipif(
    not (REAL / "trans_partial.asc").is_file(),
    reason=f"real Berka files not found at {REAL} (expected trans_partial.asc and order.asc there)",
)

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import real_injection as injection  # noqa: E402

PER_KIND = 40
SEED = 7


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    trans = injection.read_transactions(REAL / "trans_partial.asc")
    return trans.loc[trans["day"] < trans["day"].max()].reset_index(drop=True)


@pytest.fixture(scope="module")
def planted(real: pd.DataFrame) -> tuple[pd.DataFrame, injection.Injector]:
    orders = pd.read_csv(REAL / "order.asc", sep=";", dtype={"account_to": str, "bank_to": str})
    return injection.plant_all(real.copy(), orders, PER_KIND, SEED)


def cash_withdrawals(real: pd.DataFrame, account: int, before: pd.Timestamp) -> pd.Series:
    rows = real.loc[(real["account_id"] == account) & (real["day"] < before)]
    blank = rows["k_symbol"].fillna("").str.strip() == ""
    return rows.loc[rows["operation"].isin(["VYBER", "VYBER KARTOU"]) & blank, "amount"]


def test_real_ledger_is_consistent(real: pd.DataFrame) -> None:
    assert not injection.ledger_breaks(real).any()


def test_every_kind_is_planted(planted: tuple[pd.DataFrame, injection.Injector]) -> None:
    frame, injector = planted
    counts = frame["label"].value_counts()
    for kind in ("wrong_amount", "data_entry", "duplicate", "unusual_payee", "beyond_habits", "ledger_break"):
        assert counts[kind] == PER_KIND
    assert counts["wrong_price"] == PER_KIND
    assert counts["omitted_posting"] == PER_KIND
    assert len(injector.missing) == PER_KIND
    groups = PER_KIND // 6
    for kind, smallest, largest in (("burst", 5, 8), ("sequence_change", 5, 8), ("month_overspend", 4, 8)):
        sizes = frame.loc[frame["label"] == kind].groupby("account_id").size()
        assert len(sizes) == groups, kind
        assert sizes.between(smallest, largest).all(), kind


def test_balance_chains_break_only_where_the_kind_breaks_them(planted) -> None:
    frame, _ = planted
    broken, unexplained = injection.unexplained_breaks(frame)
    assert not unexplained.any()
    label = frame["label"]
    assert broken[label == "omitted_posting"].all()
    assert broken[label == "ledger_break"].all()
    for kind in ("wrong_price", "sequence_change", "month_overspend", "duplicate", "burst", "wrong_amount"):
        assert not broken[label == kind].any(), kind


def test_wrong_price_is_a_recurring_payment_at_a_plausible_wrong_amount(real, planted) -> None:
    frame, _ = planted
    wrong = frame.loc[frame["label"] == "wrong_price"].merge(
        real[["trans_id", "amount"]], on="trans_id", suffixes=("", "_real")
    )
    assert len(wrong) == PER_KIND
    ratio = wrong["amount"] / wrong["amount_real"]
    assert (ratio.between(1.15, 1.6) | ratio.between(0.4, 0.85)).all()
    recurring = wrong["k_symbol"].fillna("").str.strip().isin(["SIPO", "POJISTNE", "UVER"])
    assert (recurring | (wrong["operation"] == "PREVOD NA UCET")).all()
    for row in wrong.itertuples():
        same = real.loc[
            (real["account_id"] == row.account_id)
            & (real["day"] < row.day)
            & (real["amount"] == row.amount_real)
            & (real["bank"].fillna("") == (row.bank if isinstance(row.bank, str) else ""))
        ]
        assert len(same) >= 2


def test_sequence_change_withdraws_daily_at_ordinary_amounts_from_a_pension_account(real, planted) -> None:
    frame, _ = planted
    for account, rows in frame.loc[frame["label"] == "sequence_change"].groupby("account_id"):
        days = rows["day"].sort_values()
        assert (days.diff().dropna() == pd.Timedelta(days=1)).all()
        assert ((real["account_id"] == account) & (real["k_symbol"] == "DUCHOD")).any()
        median = cash_withdrawals(real, account, days.min()).median()
        assert rows["amount"].between(0.5 * median, 1.5 * median).all()


def test_month_overspend_spreads_large_withdrawals_over_one_month(real, planted) -> None:
    frame, _ = planted
    for account, rows in frame.loc[frame["label"] == "month_overspend"].groupby("account_id"):
        assert rows["day"].dt.to_period("M").nunique() == 1
        assert rows["day"].is_unique
        month = rows["day"].min().to_period("M").start_time
        earlier = cash_withdrawals(real, account, month)
        assert rows["amount"].between(earlier.median(), 2 * earlier.median()).all()
        real_month = cash_withdrawals(real, account, month + pd.offsets.MonthBegin(1))
        assert rows["amount"].sum() + real_month.sum() - earlier.sum() >= 3 * earlier.median()


def test_omitted_posting_labels_the_posting_after_the_removed_one(real, planted) -> None:
    frame, injector = planted
    removed = real.loc[injector.omitted]
    labelled = frame.loc[frame["label"] == "omitted_posting"]
    assert len(removed) == len(labelled) == PER_KIND
    assert not frame["trans_id"].isin(removed["trans_id"]).any()
    for row in removed.itertuples():
        following = real.loc[(real["account_id"] == row.account_id) & (real.index > row.Index)].iloc[0]
        assert following["trans_id"] in set(labelled["trans_id"])


def test_new_kinds_keep_off_the_other_kinds_account_days(planted) -> None:
    frame, _ = planted
    labelled = frame.loc[frame["label"] != "normal"]
    new = labelled["label"].isin(["wrong_price", "omitted_posting", "sequence_change", "month_overspend"])
    near = labelled.loc[new].merge(labelled.loc[~new], on="account_id", suffixes=("", "_other"))
    assert (np.abs((near["day"] - near["day_other"]).dt.days) > 3).all()
