"""The retail shape of the generator: customers paying many merchants, retail frauds, both file formats."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ads_assets.lib.berka.formats import detect_source, read_rows
from ads_assets.lib.berka.generator import (
    RETAIL_LABEL_KINDS,
    GeneratedData,
    GeneratorConfig,
    generate,
    write_dataset,
)
from ads_assets.lib.berka.generator.retail import (
    LARGE_FACTORS,
    MERCHANT_FRAUD_DAYS,
    MERCHANT_FRAUD_FACTORS,
    MERCHANT_FRAUD_MIN_CUSTOMERS,
    PAYMENTS_PER_MONTH,
    TAKEOVER_DAYS,
    TAKEOVER_FACTORS,
    TAKEOVER_MIN_ROWS,
    TAKEOVER_PER_DAY,
    TAKEOVER_REFUND_DELAY,
)
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.ingest import _RowScreen, plausible_window

RATE = 0.005
WINDOW = {"start": "1996-01", "end": "1996-12"}


@pytest.fixture(scope="module")
def retail() -> GeneratedData:
    return generate(GeneratorConfig(accounts=400, seed=3, anomaly_rate=RATE, shape="retail", **WINDOW))


@pytest.fixture(scope="module")
def berka() -> GeneratedData:
    return generate(GeneratorConfig(accounts=400, seed=3, **WINDOW))


def _cents(values: pd.Series) -> np.ndarray:
    return np.rint(values.to_numpy(dtype=float) * 100).astype(np.int64)


def _trans(data: GeneratedData) -> pd.DataFrame:
    """trans with the label kind of each row (NaN: unlabelled) and its month."""
    kinds = data.labels.dropna(subset=["trans_id"]).astype({"trans_id": "int64"})[["trans_id", "kind"]]
    trans = data.relations["trans"].merge(kinds, on="trans_id", how="left")
    return trans.assign(month=trans["date"].dt.to_period("M"))


def _merchant_payments(data: GeneratedData) -> pd.DataFrame:
    """Outgoing transfers without k_symbol that are not standing-order payments."""
    trans = _trans(data)
    order = data.relations["order"]
    ordered = set(zip(order["account_id"], order["bank_to"], order["account_to"], strict=True))
    payee = pd.Series(list(zip(trans["account_id"], trans["bank"], trans["account"], strict=True)), index=trans.index)
    outgoing = (trans["type"] == "VYDAJ") & (trans["operation"] == "PREVOD NA UCET") & trans["k_symbol"].isna()
    return trans[outgoing & ~payee.isin(ordered)]


def _usual(data: GeneratedData) -> pd.Series:
    """Median unlabelled merchant payment of each account."""
    payments = _merchant_payments(data)
    return payments[payments["kind"].isna()].groupby("account_id")["amount"].median()


def _opened_month(data: GeneratedData) -> pd.Series:
    return data.relations["account"].set_index("account_id")["date"].dt.to_period("M")


def _after_opening(data: GeneratedData, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of account-months after the month each account opened (the opening month is partial)."""
    return frame[frame["month"] > frame["account_id"].map(_opened_month(data))]


def test_balances_chain_on_every_row(retail: GeneratedData) -> None:
    trans = retail.relations["trans"]
    assert trans["trans_id"].is_unique and trans["date"].is_monotonic_increasing
    signed = np.where(trans["type"] == "PRIJEM", 1, -1) * _cents(trans["amount"])
    running = pd.Series(signed).groupby(trans["account_id"].to_numpy()).cumsum().to_numpy()
    assert (running == _cents(trans["balance"])).all()
    debits = trans[trans["type"] != "PRIJEM"]
    assert (debits["balance"] < 0).mean() < 0.005


def test_every_fraud_kind_is_labelled(retail: GeneratedData) -> None:
    labels, trans = retail.labels, retail.relations["trans"]
    assert list(labels.columns) == ["trans_id", "account_id", "month", "kind"]
    assert set(labels["kind"]) == set(RETAIL_LABEL_KINDS)
    assert labels["trans_id"].notna().all() and labels["trans_id"].is_unique
    wanted = RATE * len(trans) / len(RETAIL_LABEL_KINDS)
    assert labels["kind"].value_counts().between(0.6 * wanted, 1.6 * wanted).all()
    rows = trans.set_index("trans_id").loc[labels["trans_id"].astype(int)]
    assert (rows["account_id"].to_numpy() == labels["account_id"].to_numpy()).all()
    assert (rows["date"].dt.strftime("%Y-%m").to_numpy() == labels["month"].to_numpy()).all()


def test_no_labels_without_frauds() -> None:
    data = generate(GeneratorConfig(accounts=50, seed=1, shape="retail", **WINDOW))
    assert data.labels.empty and len(data.relations["trans"])


def test_customers_pay_tens_of_times_a_month_to_many_merchants(retail: GeneratedData, berka: GeneratedData) -> None:
    payments = _after_opening(retail, _merchant_payments(retail))
    per_month = payments.groupby(["account_id", "month"]).size()
    low, high = PAYMENTS_PER_MONTH
    assert low <= per_month.median() <= high
    assert per_month.quantile(0.9) <= high * 1.5
    distinct = payments.groupby(["account_id", "month"])["account"].nunique().median()
    theirs = _after_opening(berka, _trans(berka))
    theirs = theirs[(theirs["type"] != "PRIJEM") & theirs["account"].notna()]
    berka_distinct = theirs.groupby(["account_id", "month"])["account"].nunique().median()
    assert distinct >= 10 and distinct >= 5 * berka_distinct


def test_payments_are_small(retail: GeneratedData) -> None:
    payments = _merchant_payments(retail)
    amounts = payments.loc[payments["kind"].isna(), "amount"]
    assert 50 <= amounts.median() <= 250
    assert amounts.quantile(0.05) >= 5 and amounts.quantile(0.95) <= 1500


def test_merchants_are_many_with_zipf_like_popularity(retail: GeneratedData) -> None:
    payments = _merchant_payments(retail)
    shares = payments["account"].value_counts(normalize=True)
    assert 1000 <= len(shares) <= 5000
    assert shares.iloc[0] <= 0.1 and shares.iloc[: len(shares) // 100].sum() >= 0.15
    ordered = payments.sort_values("trans_id")
    first = ordered.drop_duplicates(["account_id", "account"])
    first = _after_opening(retail, first.assign(month=first["date"].dt.to_period("M")))
    new_per_week = first.groupby(["account_id", first["date"].dt.to_period("W")]).size()
    assert new_per_week.median() >= 1


def test_monthly_credits_cash_fees_and_interest(retail: GeneratedData) -> None:
    trans = _after_opening(retail, _trans(retail))
    incomes = trans[trans["operation"] == "PREVOD Z UCTU"]
    assert len(incomes) and (incomes.groupby(["account_id", "month"]).size() == 1).all()
    fees, interest = trans[trans["k_symbol"] == "SLUZBY"], trans[trans["k_symbol"] == "UROK"]
    assert len(fees) and fees["date"].dt.is_month_end.all()
    assert len(interest) and interest["date"].dt.is_month_end.all()
    cash = trans[(trans["operation"] == "VYBER") & trans["k_symbol"].isna()]
    assert 0.2 <= len(cash) / trans.groupby(["account_id", "month"]).ngroups <= 2


def test_large_amounts_are_five_to_twenty_times_the_usual_payment(retail: GeneratedData) -> None:
    payments = _merchant_payments(retail)
    large = payments[payments["kind"] == "large_amount"]
    assert len(large) == (retail.labels["kind"] == "large_amount").sum()
    ratio = large["amount"] / large["account_id"].map(_usual(retail))
    low, high = LARGE_FACTORS
    assert ratio.between(0.95 * low, 1.05 * high).all()


def test_compromised_customers_pay_unknown_merchants_for_a_few_days(retail: GeneratedData) -> None:
    trans = _trans(retail)
    usual = _usual(retail)
    refunds = trans[(trans["type"] == "PRIJEM") & trans["operation"].isna() & trans["k_symbol"].isna()]
    runs = trans[trans["kind"] == "compromised_customer"]
    assert runs["operation"].eq("PREVOD NA UCET").all() and runs["type"].eq("VYDAJ").all()
    for account_id, run in runs.groupby("account_id"):
        days = (run["date"].max() - run["date"].min()).days + 1
        assert TAKEOVER_DAYS[0] <= days <= TAKEOVER_DAYS[1] and len(run) >= TAKEOVER_MIN_ROWS
        assert run.groupby("date").size().max() >= TAKEOVER_PER_DAY[0]
        others = trans[(trans["account_id"] == account_id) & (trans["kind"] != "compromised_customer")]
        assert not set(run["account"]) & set(others["account"].dropna())
        assert (run["amount"] >= 0.95 * TAKEOVER_FACTORS[0] * usual[account_id]).all()
        refund = refunds[refunds["account_id"] == account_id]
        delay = (refund["date"] - run["date"].max()).dt.days
        last = refund["date"] == trans["date"].max()
        matching = refund[(delay.between(*TAKEOVER_REFUND_DELAY) | last) & (delay >= 0)]
        assert int(_cents(run["amount"]).sum()) in set(_cents(matching["amount"]))


def test_compromised_merchants_overcharge_many_customers_for_weeks(retail: GeneratedData) -> None:
    """Each compromised merchant's labelled payments come from several customers within its window and
    cost 1.5-4x the usual: pooled, their median is 1.5-4x their merchant's usual payment (a merchant
    with few labelled rows can fall below that by chance, never below its usual payment)."""
    payments = _merchant_payments(retail)
    hit = payments[payments["kind"] == "compromised_merchant"]
    usual = payments[payments["kind"].isna()].groupby(["bank", "account"])["amount"].median()
    ratio = hit["amount"] / usual.reindex(pd.MultiIndex.from_frame(hit[["bank", "account"]])).to_numpy()
    low, high = MERCHANT_FRAUD_FACTORS
    assert low <= ratio.median() <= high
    for _, rows in hit.assign(ratio=ratio).groupby(["bank", "account"]):
        assert rows["account_id"].nunique() >= MERCHANT_FRAUD_MIN_CUSTOMERS
        assert (rows["date"].max() - rows["date"].min()).days <= MERCHANT_FRAUD_DAYS[1]
        assert rows["ratio"].median() > 1


def test_same_seed_same_data() -> None:
    config = GeneratorConfig(accounts=60, seed=9, anomaly_rate=0.01, shape="retail", start="1995-01", end="1995-06")
    first, second = generate(config), generate(config)
    for name in RELATIONS:
        pd.testing.assert_frame_equal(first.relations[name], second.relations[name])
    pd.testing.assert_frame_equal(first.labels, second.labels)


def test_rejects_unknown_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        generate(GeneratorConfig(shape="supermarket"))


@pytest.fixture(scope="module")
def small() -> GeneratedData:
    return generate(
        GeneratorConfig(accounts=80, seed=4, anomaly_rate=0.01, shape="retail", start="1995-01", end="1995-06")
    )


@pytest.mark.parametrize("fmt", ["asc", "fin"])
def test_both_formats_read_back_without_quarantine(small: GeneratedData, fmt: str, tmp_path: Path) -> None:
    """Every row of every relation parses, has a unique key and its parents (what ingest checks)."""
    write_dataset(small, tmp_path, fmt)
    sources = detect_source(tmp_path)
    assert set(sources) == set(LOAD_ORDER)
    keys: dict[str, set] = {}
    for name in LOAD_ORDER:
        relation = RELATIONS[name]
        screen = _RowScreen(relation, keys, plausible_window())
        rows = list(read_rows(sources[name]))
        reasons = [row.reason if row.values is None else screen.reason(row) for row in rows]
        assert [reason for reason in reasons if reason] == []
        assert len(rows) == len(small.relations[name])
        key = relation.column_names.index(relation.key)
        keys[name] = {row.values[key] for row in rows}
    trans = small.relations["trans"]
    columns = RELATIONS["trans"].column_names
    values = list(zip(*(row.values for row in read_rows(sources["trans"])), strict=True))
    for column in ("amount", "balance"):
        assert (_cents(pd.Series(values[columns.index(column)], dtype=float)) == _cents(trans[column])).all()
    with (tmp_path / "labels.csv").open() as fh:
        labels = list(csv.DictReader(fh))
    assert len(labels) == len(small.labels) and {row["kind"] for row in labels} == set(RETAIL_LABEL_KINDS)
