"""The Berka generator: calibration against the real files, self-consistency, anomalies, determinism and
the two published file conventions."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.berka.generator import (
    BERKA_LABEL_KINDS,
    LABEL_KINDS,
    GeneratedData,
    GeneratorConfig,
    generate,
    write_dataset,
)
from ads_assets.lib.berka.generator.anomalies import ERROR_CORRECTION_DAYS, FRAUD_REFUND_DAYS
from ads_assets.lib.berka.schema import ORDER_K_SYMBOLS, RELATIONS, TRANS_K_SYMBOLS

REAL_BERKA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "berka"
PARTIAL_END = pd.Timestamp("1994-03-01")
"""The real partial transactions lack some rows of 1994-03-31, so trans statistics stop before March."""
AGE_REFERENCE = pd.Timestamp("1999-01-01")


def _real_files() -> Path:
    if not (REAL_BERKA / "pkdd99").is_dir():
        pytest.skip(f"real Berka files not found at {REAL_BERKA} (expected pkdd99/ there)")
    return REAL_BERKA / "pkdd99"


def _read_asc(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)


def _asc_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.str[:6], format="%y%m%d")


@dataclass(frozen=True)
class Real:
    """The real relations in canonical shape (the columns the statistics need)."""

    relations: dict[str, pd.DataFrame]


def load_real(folder: Path) -> Real:
    """The real PKDD'99 relations in `folder`, parsed enough for the statistics."""
    frames = {
        name: _read_asc(folder / f"{name}.asc") for name in ("account", "client", "disp", "order", "loan", "card")
    }
    frames["trans"] = _read_asc(folder / "trans_partial.asc")
    frames["account"]["date"] = _asc_dates(frames["account"]["date"])
    frames["card"]["issued"] = _asc_dates(frames["card"]["issued"])
    trans = frames["trans"]
    trans["date"] = _asc_dates(trans["date"])
    for column in ("amount", "balance"):
        trans[column] = trans[column].astype(float)
    for column in ("operation", "k_symbol", "bank", "account"):
        trans[column] = trans[column].str.strip().replace("", np.nan)
    trans["account_id"] = trans["account_id"].astype(int)
    frames["order"]["k_symbol"] = frames["order"]["k_symbol"].str.strip().replace("", np.nan)
    return Real(frames)


@pytest.fixture(scope="module")
def real() -> Real:
    return load_real(_real_files())


@pytest.fixture(scope="module")
def partial() -> GeneratedData:
    """Lines up with the real partial transactions: accounts opened 1993-01..1994-03."""
    return generate(GeneratorConfig(accounts=1500, start="1993-01", end="1994-03", seed=11))


@pytest.fixture(scope="module")
def whole() -> GeneratedData:
    """The full period, for the relations that only settle over it (loans, cards)."""
    return generate(GeneratorConfig(accounts=2000, seed=7))


@pytest.fixture(scope="module")
def anomalous() -> GeneratedData:
    return generate(GeneratorConfig(accounts=400, seed=5, anomaly_rate=0.01))


def _before_march_1994(trans: pd.DataFrame) -> pd.DataFrame:
    return trans[trans["date"] < PARTIAL_END]


def _shares(values: pd.Series) -> dict[str, float]:
    return values.fillna("").value_counts(normalize=True).to_dict()


def _per_account_month(trans: pd.DataFrame) -> float:
    return float(trans.groupby(["account_id", trans["date"].dt.to_period("M")]).size().mean())


def _female_share(client: pd.DataFrame) -> float:
    return float((client["birth_number"].str[2:4].astype(int) > 50).mean())


def _mean_age(client: pd.DataFrame) -> float:
    years = 1900 + client["birth_number"].str[:2].astype(int)
    return float((AGE_REFERENCE.year - years).mean())


def _disponent_share(disp: pd.DataFrame) -> float:
    return float((disp["type"] == "DISPONENT").sum() / (disp["type"] == "OWNER").sum())


def _relation_stats(relations: dict[str, pd.DataFrame]) -> dict[str, float | dict[str, float]]:
    accounts = len(relations["account"])
    return {
        "frequency mix": _shares(relations["account"]["frequency"]),
        "female share": _female_share(relations["client"]),
        "mean client age (1999)": _mean_age(relations["client"]),
        "loans per account": len(relations["loan"]) / accounts,
        "cards per account": len(relations["card"]) / accounts,
        "disponents per account": _disponent_share(relations["disp"]),
        "orders per account": len(relations["order"]) / accounts,
        "order k_symbol mix": _shares(relations["order"]["k_symbol"]),
        "loan status mix": _shares(relations["loan"]["status"]),
        "card type mix": _shares(relations["card"]["type"]),
    }


def _trans_stats(trans: pd.DataFrame) -> dict[str, float | dict[str, float]]:
    trans = _before_march_1994(trans)
    return {
        "type mix": _shares(trans["type"]),
        "operation mix": _shares(trans["operation"]),
        "k_symbol mix": _shares(trans["k_symbol"]),
        "transactions per account-month": _per_account_month(trans),
        "median balance": float(trans["balance"].median()),
        "median interest (UROK)": float(trans.loc[trans["k_symbol"] == "UROK", "amount"].median()),
    }


TOLERANCES: dict[str, tuple[str, float]] = {
    "type mix": ("abs", 0.04),
    "operation mix": ("abs", 0.045),
    "k_symbol mix": ("abs", 0.045),
    "transactions per account-month": ("rel", 0.10),
    "median balance": ("rel", 0.30),
    "median interest (UROK)": ("rel", 0.35),
    "frequency mix": ("abs", 0.03),
    "female share": ("abs", 0.04),
    "mean client age (1999)": ("abs", 2.5),
    "loans per account": ("rel", 0.15),
    "cards per account": ("rel", 0.15),
    "disponents per account": ("rel", 0.15),
    "orders per account": ("rel", 0.08),
    "order k_symbol mix": ("abs", 0.04),
    "loan status mix": ("abs", 0.08),
    "card type mix": ("abs", 0.08),
}
"""Per statistic: absolute tolerance on shares and ages, relative tolerance on counts and amounts."""


def _drift(name: str, generated: float | dict, real: float | dict) -> list[str]:
    kind, tolerance = TOLERANCES[name]
    if isinstance(real, dict):
        keys = sorted(set(real) | set(generated))
        return [
            problem
            for key in keys
            for problem in _drift_one(f"{name}[{key}]", kind, tolerance, generated.get(key, 0.0), real.get(key, 0.0))
        ]
    return _drift_one(name, kind, tolerance, generated, real)


def _drift_one(label: str, kind: str, tolerance: float, generated: float, real: float) -> list[str]:
    off = abs(generated - real) if kind == "abs" else abs(generated - real) / max(abs(real), 1e-9)
    if off <= tolerance:
        return []
    return [f"{label}: generated {generated:.4g}, real {real:.4g} ({kind} off {off:.3g} > {tolerance})"]


@pytest.mark.parametrize(
    "name",
    [
        "type mix",
        "operation mix",
        "k_symbol mix",
        "transactions per account-month",
        "median balance",
        "median interest (UROK)",
    ],
)
def test_transactions_are_calibrated_to_the_real_partial(name: str, real: Real, partial: GeneratedData) -> None:
    generated = _trans_stats(partial.relations["trans"])[name]
    expected = _trans_stats(real.relations["trans"])[name]
    assert not _drift(name, generated, expected)


MEDIAN_RANK_TOLERANCE = 0.06
"""Generated medians are compared by rank: the share of generated amounts at or below the real
median must match the real share within this (robust where the real distribution has gaps)."""


@pytest.mark.parametrize("group", ["type", "operation"])
def test_median_amounts_are_calibrated(group: str, real: Real, partial: GeneratedData) -> None:
    theirs = _before_march_1994(real.relations["trans"])
    ours = _before_march_1994(partial.relations["trans"])
    theirs = theirs.assign(group=theirs[group].fillna(""))
    ours = ours.assign(group=ours[group].fillna(""))
    drifted = []
    for name, amounts in theirs.groupby("group")["amount"]:
        generated = ours.loc[ours["group"] == name, "amount"]
        if len(amounts) < 100:
            continue
        median = amounts.median()
        off = abs((generated <= median).mean() - (amounts <= median).mean())
        if off > MEDIAN_RANK_TOLERANCE:
            drifted.append(f"{group} {name or '(none)'}: median {generated.median():.1f}, real {median:.1f}")
    assert not drifted


@pytest.mark.parametrize(
    "name",
    [
        "frequency mix",
        "female share",
        "mean client age (1999)",
        "loans per account",
        "cards per account",
        "disponents per account",
        "orders per account",
        "order k_symbol mix",
        "loan status mix",
        "card type mix",
    ],
)
def test_relations_are_calibrated_to_the_real_files(name: str, real: Real, whole: GeneratedData) -> None:
    generated = _relation_stats(whole.relations)[name]
    expected = _relation_stats(real.relations)[name]
    assert not _drift(name, generated, expected)


def test_default_size_matches_the_real_transaction_count() -> None:
    data = generate(GeneratorConfig(accounts=900, seed=3))
    scaled = len(data.relations["trans"]) * 4500 / 900
    assert abs(scaled - 1_056_320) / 1_056_320 < 0.08


def _cents(values: pd.Series) -> np.ndarray:
    return np.rint(values.to_numpy(dtype=float) * 100).astype(np.int64)


def _labelled(data: GeneratedData, kind: str) -> pd.DataFrame:
    return data.labels[data.labels["kind"] == kind]


def _labelled_ids(data: GeneratedData, *kinds: str) -> set[int]:
    rows = data.labels[data.labels["kind"].isin(kinds)]
    return set(rows["trans_id"].dropna().astype(int))


def _months(dates: pd.Series) -> pd.Series:
    return dates.dt.year * 12 + dates.dt.month - 1


def _recomputed_balances(trans: pd.DataFrame) -> np.ndarray:
    ordered = trans.sort_values("trans_id")
    signed = np.where(ordered["type"] == "PRIJEM", 1, -1) * _cents(ordered["amount"])
    running = pd.Series(signed, index=ordered.index).groupby(ordered["account_id"].to_numpy()).cumsum()
    return running.reindex(trans.index).to_numpy()


@pytest.mark.parametrize("fixture", ["whole", "anomalous"])
def test_balances_chain_per_account(fixture: str, request: pytest.FixtureRequest) -> None:
    data: GeneratedData = request.getfixturevalue(fixture)
    trans = data.relations["trans"]
    broken = trans["trans_id"].isin(_labelled_ids(data, "ledger_break")).to_numpy()
    chained = _recomputed_balances(trans) == _cents(trans["balance"])
    assert chained[~broken].all()
    assert not chained[broken].any()


@pytest.mark.parametrize("fixture", ["whole", "anomalous"])
def test_trans_ids_are_unique_and_follow_dates(fixture: str, request: pytest.FixtureRequest) -> None:
    trans = request.getfixturevalue(fixture).relations["trans"]
    assert trans["trans_id"].is_unique
    assert trans.sort_values("trans_id")["date"].is_monotonic_increasing


def test_relations_hold_together(whole: GeneratedData) -> None:
    relations = whole.relations
    account, client, disp = relations["account"], relations["client"], relations["disp"]
    order, loan, card = relations["order"], relations["loan"], relations["card"]
    for name, frame in relations.items():
        assert tuple(frame.columns) == RELATIONS[name].column_names
        assert frame[RELATIONS[name].key].is_unique
    assert len(relations["district"]) == 77
    assert account["district_id"].between(1, 77).all() and client["district_id"].between(1, 77).all()
    assert (disp[disp["type"] == "OWNER"].groupby("account_id").size() == 1).all()
    assert set(disp["account_id"]) == set(account["account_id"])
    assert set(disp["client_id"]) == set(client["client_id"])
    months = client["birth_number"].str[2:4].astype(int)
    assert months.between(1, 12).sum() + months.between(51, 62).sum() == len(client)
    opened = account.set_index("account_id")["date"]
    holders = card.merge(disp, on="disp_id", suffixes=("", "_disp"))
    assert (holders["type_disp"] == "OWNER").all()
    assert (holders["issued"] > holders["account_id"].map(opened)).all()
    assert (loan["date"] > loan["account_id"].map(opened)).all()
    assert not loan["account_id"].duplicated().any()
    assert (loan["payments"] * loan["duration"] == loan["amount"]).all()
    assert order["bank_to"].str.fullmatch(r"[A-Z]{2}").all()
    assert order["account_to"].str.fullmatch(r"[1-9]\d{0,7}").all()
    assert set(order["k_symbol"].dropna()) <= ORDER_K_SYMBOLS
    assert set(relations["trans"]["k_symbol"].dropna()) <= TRANS_K_SYMBOLS
    uver = order[order["k_symbol"] == "UVER"].merge(loan, on="account_id", suffixes=("", "_loan"))
    assert len(uver) == len(loan)
    assert (abs(uver["amount"] - uver["payments"]) <= 0.5).all()


def _payments_by_order(data: GeneratedData) -> pd.DataFrame:
    """Every standing-order payment joined to its order, without labelled extra rows."""
    trans = data.relations["trans"]
    extra = _labelled_ids(data, "duplicate_posting", "new_payee")
    payments = trans[(trans["operation"] == "PREVOD NA UCET") & ~trans["trans_id"].isin(extra)]
    joined = payments.merge(
        data.relations["order"],
        left_on=["account_id", "bank", "account"],
        right_on=["account_id", "bank_to", "account_to"],
        suffixes=("", "_order"),
    )
    assert len(joined) == len(payments)
    return joined.assign(month=_months(joined["date"]))


def _missing_months(data: GeneratedData) -> set[tuple[int, int]]:
    missing = _labelled(data, "missing_bill")
    months = pd.to_datetime(missing["month"], format="%Y-%m")
    return set(zip(missing["account_id"], _months(months), strict=True))


@dataclass(frozen=True)
class Schedule:
    """One standing order: the months it should pay in (as year*12+month-1) and those it paid in."""

    order_id: int
    account_id: int
    expected: set[int]
    paid: set[int]


def _schedules(data: GeneratedData) -> list[Schedule]:
    """Loans pay from the month after the loan for `duration` months; other orders from their first
    payment to the last month (their start, a few months after opening, is not in the relations)."""
    payments = _payments_by_order(data)
    last_month = int(_months(data.relations["trans"]["date"]).max())
    loans = data.relations["loan"].set_index("account_id")
    schedules = []
    for order_id, rows in payments.groupby("order_id"):
        account_id = int(rows["account_id"].iloc[0])
        if rows["k_symbol_order"].iloc[0] == "UVER":
            first = int(loans.at[account_id, "date"].year * 12 + loans.at[account_id, "date"].month)
            last = min(first + int(loans.at[account_id, "duration"]) - 1, last_month)
        else:
            first, last = int(rows["month"].min()), last_month
        assert rows["month"].is_unique, f"order {order_id} paid twice in a month"
        schedules.append(Schedule(int(order_id), account_id, set(range(first, last + 1)), set(rows["month"])))
    return schedules


@pytest.mark.parametrize("fixture", ["whole", "anomalous"])
def test_standing_orders_pay_once_a_month_while_active(fixture: str, request: pytest.FixtureRequest) -> None:
    data: GeneratedData = request.getfixturevalue(fixture)
    missing = _missing_months(data)
    for schedule in _schedules(data):
        assert schedule.paid <= schedule.expected
        skipped = {(schedule.account_id, month) for month in schedule.expected - schedule.paid}
        assert skipped <= missing, f"order {schedule.order_id} skipped a month"
    payments = _payments_by_order(data)
    opened = _months(data.relations["account"].set_index("account_id")["date"])
    started = payments[payments["k_symbol_order"] != "UVER"].groupby("account_id")["month"].min()
    assert (started - opened.reindex(started.index)).between(1, 7 + 24).all()
    normal = payments[~payments["trans_id"].isin(_labelled_ids(data, "wrong_amount"))]
    assert (_cents(normal["amount"]) == _cents(normal["amount_order"])).all()
    symbol = payments["k_symbol_order"].where(~payments["k_symbol_order"].isin(["LEASING"]))
    assert (payments["k_symbol"].fillna("") == symbol.fillna("")).all()


def test_loans_are_repaid_monthly_from_the_month_after(whole: GeneratedData) -> None:
    payments = _payments_by_order(whole)
    repaid = payments[payments["k_symbol"] == "UVER"].groupby("account_id")["month"].agg(["min", "count"])
    loan = whole.relations["loan"].set_index("account_id")
    last_month = int(_months(whole.relations["trans"]["date"]).max())
    loan_month = _months(loan["date"])
    expected = np.minimum(loan["duration"], last_month - loan_month)
    assert (repaid["count"] == expected.reindex(repaid.index)).all()
    assert (repaid["min"] == (loan_month + 1).reindex(repaid.index)).all()
    assert set(expected[expected > 0].index) == set(repaid.index)


def test_card_withdrawals_only_on_card_accounts_after_issue(whole: GeneratedData) -> None:
    trans, card, disp = whole.relations["trans"], whole.relations["card"], whole.relations["disp"]
    issued = card.merge(disp, on="disp_id").set_index("account_id")["issued"]
    withdrawals = trans[trans["operation"] == "VYBER KARTOU"]
    assert len(withdrawals)
    assert withdrawals["account_id"].isin(issued.index).all()
    assert (withdrawals["date"] >= withdrawals["account_id"].map(issued)).all()


def test_month_end_postings(whole: GeneratedData) -> None:
    trans = whole.relations["trans"]
    month_end = trans["date"].dt.is_month_end
    for symbol in ("UROK", "SLUZBY", "SANKC. UROK"):
        assert month_end[trans["k_symbol"] == symbol].all()
    interest = trans[trans["k_symbol"] == "UROK"]
    assert (interest["type"] == "PRIJEM").all() and interest["operation"].isna().all()
    assert ((trans["operation"] == "PREVOD Z UCTU") == trans["bank"].notna() & (trans["type"] == "PRIJEM")).all()
    assert (trans["balance"] < 0).mean() < 0.01


def test_no_labels_without_anomalies(whole: GeneratedData) -> None:
    assert whole.labels.empty
    assert list(whole.labels.columns) == ["trans_id", "account_id", "month", "kind"]


def test_anomaly_labels(anomalous: GeneratedData) -> None:
    labels, trans = anomalous.labels, anomalous.relations["trans"]
    assert set(labels["kind"]) == set(BERKA_LABEL_KINDS)
    assert str(labels["trans_id"].dtype) == "Int64"
    counts = labels["kind"].value_counts()
    assert counts.min() >= 0.6 * counts.max()
    assert 0.6 * 0.01 * len(trans) <= len(labels) <= 1.4 * 0.01 * len(trans)
    with_rows = labels[labels["kind"] != "missing_bill"]
    assert with_rows["trans_id"].notna().all() and labels.loc[labels["kind"] == "missing_bill", "trans_id"].isna().all()
    assert with_rows["trans_id"].is_unique
    rows = trans.set_index("trans_id").loc[with_rows["trans_id"].astype(int)]
    assert (rows["account_id"].to_numpy() == with_rows["account_id"].to_numpy()).all()
    assert (rows["date"].dt.strftime("%Y-%m").to_numpy() == with_rows["month"].to_numpy()).all()


def test_wrong_amounts_are_at_least_ten_times_typical(anomalous: GeneratedData) -> None:
    trans = anomalous.relations["trans"]
    labelled = _labelled_ids(anomalous, *LABEL_KINDS)
    key = ["account_id", "type", "operation", "k_symbol"]
    typical = trans[~trans["trans_id"].isin(labelled)].fillna({"operation": "", "k_symbol": ""})
    typical = typical.groupby(key)["amount"].median().rename("typical").reset_index()
    wrong = trans[trans["trans_id"].isin(_labelled_ids(anomalous, "wrong_amount"))].fillna(
        {"operation": "", "k_symbol": ""}
    )
    checked = wrong.merge(typical, on=key, how="left")
    assert checked["typical"].notna().all()
    assert (checked["amount"] >= 10 * checked["typical"] - 0.01).all()


def test_duplicates_repeat_an_earlier_payment(anomalous: GeneratedData) -> None:
    trans = anomalous.relations["trans"].fillna({"k_symbol": ""})
    key = ["account_id", "date", "type", "operation", "amount", "bank", "account", "k_symbol"]
    duplicates = trans[trans["trans_id"].isin(_labelled_ids(anomalous, "duplicate_posting"))]
    originals = trans[~trans["trans_id"].isin(duplicates["trans_id"])]
    matched = duplicates.merge(originals, on=key, suffixes=("", "_original"))
    assert set(matched["trans_id"]) == set(duplicates["trans_id"])
    assert (
        matched.groupby("trans_id")["trans_id_original"].min() < matched.groupby("trans_id")["trans_id"].first()
    ).all()
    assert (duplicates["operation"] == "PREVOD NA UCET").all()


def test_bursts_are_four_or_more_same_day_withdrawals(anomalous: GeneratedData) -> None:
    trans = anomalous.relations["trans"]
    bursts = trans[trans["trans_id"].isin(_labelled_ids(anomalous, "burst"))]
    assert (bursts["operation"] == "VYBER").all() and bursts["k_symbol"].isna().all()
    assert (bursts.groupby(["account_id", "date"]).size() >= 4).all()
    assert (bursts.groupby(["account_id", "date"]).size() <= 8).all()


def test_new_payees_are_unseen_and_large(anomalous: GeneratedData) -> None:
    trans, order = anomalous.relations["trans"], anomalous.relations["order"]
    new = trans[trans["trans_id"].isin(_labelled_ids(anomalous, "new_payee"))]
    labelled = _labelled_ids(anomalous, *LABEL_KINDS)
    others = trans[~trans["trans_id"].isin(new["trans_id"])]
    seen = set(zip(others["bank"].dropna(), others["account"].dropna(), strict=True))
    seen |= set(zip(order["bank_to"], order["account_to"], strict=True))
    payments = others[(others["operation"] == "PREVOD NA UCET") & ~others["trans_id"].isin(labelled)]
    for row in new.itertuples():
        assert (row.bank, row.account) not in seen
        earlier = payments[(payments["account_id"] == row.account_id) & (payments["trans_id"] < row.trans_id)]
        assert len(earlier) and row.amount >= 3 * earlier["amount"].max() - 0.01


def test_missing_bills_lack_the_payment(anomalous: GeneratedData) -> None:
    missing = _missing_months(anomalous)
    assert len(missing) == len(_labelled(anomalous, "missing_bill"))
    skipped = {
        (schedule.account_id, month)
        for schedule in _schedules(anomalous)
        for month in schedule.expected - schedule.paid
    }
    assert missing == skipped


def test_few_debits_overdrawn_at_the_default_anomaly_rate() -> None:
    """Injected anomalies are corrected, so their money does not overdraw accounts for years after."""
    trans = generate(GeneratorConfig(accounts=300, seed=2, anomaly_rate=0.005)).relations["trans"]
    debits = trans[trans["type"] != "PRIJEM"]
    assert (debits["balance"] < 0).mean() <= 0.01


def _corrections(data: GeneratedData) -> pd.DataFrame:
    """The bank-internal postings: no operation, k_symbol or counterparty, not labelled (a ledger break
    may fall on one: it shifts the balance, not the posting)."""
    trans = data.relations["trans"]
    internal = trans["operation"].isna() & trans["k_symbol"].isna() & trans["bank"].isna()
    other_kinds = [kind for kind in LABEL_KINDS if kind != "ledger_break"]
    return trans[internal & ~trans["trans_id"].isin(_labelled_ids(data, *other_kinds))]


def _corrected(
    data: GeneratedData,
    kind: str,
    days: tuple[int, int],
    amounts: Callable[[pd.DataFrame], set[int]],
    per_row: bool = False,
) -> bool:
    """Whether every labelled (account, day) group of `kind` (every row when `per_row`) is followed on
    the same account, `days` days later (or on the last day), by a correction taking back one of
    `amounts(group)` cents: a credit for debits, a debit for credits."""
    trans = data.relations["trans"]
    rows = trans[trans["trans_id"].isin(_labelled_ids(data, kind))]
    assert len(rows)
    corrections = _corrections(data)
    last_day = trans["date"].max()
    for (account_id, date, *_), group in rows.groupby(["account_id", "date"] + (["trans_id"] if per_row else [])):
        low = min(date + pd.Timedelta(days=days[0]), last_day)
        high = min(date + pd.Timedelta(days=days[1]), last_day)
        candidates = corrections[
            (corrections["account_id"] == account_id)
            & corrections["date"].between(low, high)
            & (corrections["trans_id"] > group["trans_id"].max())
            & ((corrections["type"] == "PRIJEM") == (group["type"].iloc[0] != "PRIJEM"))
        ]
        if not set(_cents(candidates["amount"])) & amounts(group):
            return False
    return True


def test_wrong_amounts_are_corrected_within_days(anomalous: GeneratedData) -> None:
    """The excess of an amount posted at 10x or 100x is taken back."""

    def excess(group: pd.DataFrame) -> set[int]:
        (cents,) = _cents(group["amount"])
        return {cents - cents // 10, cents - cents // 100}

    assert _corrected(anomalous, "wrong_amount", ERROR_CORRECTION_DAYS, excess, per_row=True)


@pytest.mark.parametrize(
    ("kind", "days"),
    [("duplicate_posting", ERROR_CORRECTION_DAYS), ("new_payee", FRAUD_REFUND_DAYS), ("burst", FRAUD_REFUND_DAYS)],
)
def test_extra_debits_are_credited_back(anomalous: GeneratedData, kind: str, days: tuple[int, int]) -> None:
    """A duplicate, a payment to a new payee and a burst's total come back as one credit."""
    rows = anomalous.relations["trans"]
    assert (rows.loc[rows["trans_id"].isin(_labelled_ids(anomalous, kind)), "type"] != "PRIJEM").all()
    assert _corrected(anomalous, kind, days, lambda group: {int(_cents(group["amount"]).sum())})


def test_same_seed_same_data_other_seed_other_data() -> None:
    config = GeneratorConfig(accounts=120, start="1995-01", end="1996-06", seed=42, anomaly_rate=0.02)
    first, second = generate(config), generate(config)
    for name in RELATIONS:
        pd.testing.assert_frame_equal(first.relations[name], second.relations[name])
    pd.testing.assert_frame_equal(first.labels, second.labels)
    other = generate(GeneratorConfig(accounts=120, start="1995-01", end="1996-06", seed=43, anomaly_rate=0.02))
    assert not first.relations["trans"]["amount"].equals(other.relations["trans"]["amount"])


def test_rejects_bad_configs() -> None:
    with pytest.raises(ValueError):
        generate(GeneratorConfig(start="1994-05", end="1994-04"))
    with pytest.raises(ValueError):
        generate(GeneratorConfig(start="1994-5"))
    with pytest.raises(ValueError):
        generate(GeneratorConfig(accounts=0))
    with pytest.raises(ValueError):
        generate(GeneratorConfig(anomaly_rate=1.5))


ASC_TRANS_LINE = re.compile(
    r'\d+;\d+;\d{6};"(PRIJEM|VYDAJ|VYBER)";"[A-Z ]*";\d+\.\d\d;-?\d+\.\d\d;"[A-Z. ]*";("[A-Z]{2}";"\d{1,8}"|;)'
)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, anomalous: GeneratedData) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("written")
    return {fmt: write_dataset(anomalous, root / fmt, fmt) for fmt in ("asc", "fin")}


def test_writes_all_files(written: dict[str, dict[str, Path]]) -> None:
    assert {path.name for path in written["asc"].values()} == {f"{name}.asc" for name in RELATIONS} | {"labels.csv"}
    assert {path.name for path in written["fin"].values()} == {f"fin_{name}.tsv" for name in RELATIONS} | {"labels.csv"}


def test_district_files_equal_the_published_ones(written: dict[str, dict[str, Path]]) -> None:
    folder = _real_files().parent
    assert written["asc"]["district"].read_bytes() == (folder / "pkdd99" / "district.asc").read_bytes()
    assert written["fin"]["district"].read_bytes() == (folder / "teradata" / "fin_district.tsv").read_bytes()


def test_asc_files_follow_the_published_style(written: dict[str, dict[str, Path]]) -> None:
    folder = _real_files()
    for name in RELATIONS:
        ours = written["asc"][name].read_bytes()
        real_name = "trans_partial.asc" if name == "trans" else f"{name}.asc"
        theirs = (folder / real_name).read_bytes()
        assert ours.split(b"\r\n", 1)[0] == theirs.split(b"\r\n", 1)[0]
        assert ours.endswith(b"\r\n") and ours.count(b"\n") == ours.count(b"\r\n")
    lines = written["asc"]["trans"].read_text().splitlines()[1:]
    assert all(ASC_TRANS_LINE.fullmatch(line) for line in lines)
    real_lines = (folder / "trans_partial.asc").read_text().splitlines()[1:]
    assert np.mean([bool(ASC_TRANS_LINE.fullmatch(line)) for line in real_lines]) > 0.97
    assert any(line.endswith(';"";;') for line in lines) and any(';"";"' in line for line in lines)
    card = written["asc"]["card"].read_text().splitlines()[1]
    assert re.fullmatch(r'\d+;\d+;"(classic|gold|junior)";\d{6} 00:00:00', card)
    loan = written["asc"]["loan"].read_text().splitlines()[1]
    assert re.fullmatch(r'\d+;\d+;\d{6};\d+;\d+;\d+\.00;"[ABCD]"', loan)
    orders = written["asc"]["order"].read_text().splitlines()[1:]
    assert all(
        re.fullmatch(r'\d+;\d+;"[A-Z]{2}";"\d{1,8}";\d+\.\d\d;"(SIPO|POJISTNE|LEASING|UVER| )"', x) for x in orders
    )


def test_fin_files_follow_the_published_style(written: dict[str, dict[str, Path]], anomalous: GeneratedData) -> None:
    trans = written["fin"]["trans"].read_text().splitlines()
    assert len(trans) == len(anomalous.relations["trans"])
    pattern = r"\d+\t\d+\t20\d\d-\d\d-\d\d\t\d+\.\d\d\t-?\d+\.\d\d\t[CDP]\t(CCW|CIC|COB|WIC|ROB|)\t(IN|ST|IC|IO|HH|PE|LO|)\t([A-Z]{2}|)\t(\d+|)"
    assert all(re.fullmatch(pattern, line) for line in trans)
    assert b"\r" not in written["fin"]["trans"].read_bytes()
    clients = written["fin"]["client"].read_text().splitlines()
    assert all(re.fullmatch(r"\d+\t\d{4}-\d\d-\d\d\t[MF]\t\d+", line) for line in clients)
    orders = written["fin"]["order"].read_text().splitlines()
    assert all(re.fullmatch(r"\d+\t\d+\t[A-Z]{2}\t\d{1,8}\t\d+\.\d\d\t(HH|IN|LE|LO|  )", line) for line in orders)
    first = anomalous.relations["trans"].iloc[0]
    fields = trans[0].split("\t")
    assert fields[2] == f"{first['date'].year + 20}{first['date'].strftime('-%m-%d')}"
    assert float(fields[3]) == pytest.approx(first["amount"] / 10)


def test_labels_csv(written: dict[str, dict[str, Path]], anomalous: GeneratedData) -> None:
    lines = written["asc"]["labels"].read_text().splitlines()
    assert lines[0] == "trans_id,account_id,month,kind"
    assert len(lines) == len(anomalous.labels) + 1
    assert any(line.startswith(",") and line.endswith(",missing_bill") for line in lines)
    assert all(re.fullmatch(r"\d*,\d+,\d{4}-\d\d,[a-z_]+", line) for line in lines[1:])
