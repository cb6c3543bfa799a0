"""The dbt feature marts on hand-built ledgers with known answers.

One database for the module: the raw schema from `ensure_raw_schema`, a few small accounts, each
built for one case (rolling statistics, counterparties and duplicates, ledger gaps, a same-day
reordering, a missing standing order), and one `dbt build` (models, schema tests and singular
tests). The tests read the marts and compare exact values; the last ones re-run windows and
append the future to show nothing earlier moves.
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster_dbt import DbtProject

from ads_assets.defs.dbt.project import ensure_partial_parse
from ads_assets.lib.db import PostgresTarget, connect, copy_rows, temporary_database
from ads_assets.lib.raw_schema import ensure_raw_schema
from tests.marts import DBT_PROJECT, run_dbt

FEATURES = "marts.fct_transaction_features"
MISSING = "marts.fct_missing_payments"

ROLLING, COUNTERPARTY, GAP_SINGLE, GAP_MIDDLE, ORDERS, REORDERED, GAP_LAST, UNPAID = 1, 2, 3, 4, 5, 6, 7, 8
TYPED, SHIFTED = 9, 10

OPERATIONS = {
    # kind: (type, operation, k_symbol)
    "deposit": ("PRIJEM", "VKLAD", None),
    "collection": ("PRIJEM", "PREVOD Z UCTU", None),
    "interest": ("PRIJEM", None, "UROK"),
    "cash": ("VYDAJ", "VYBER", None),
    "card": ("VYDAJ", "VYBER KARTOU", None),
    "payment": ("VYDAJ", "PREVOD NA UCET", None),
}


@dataclass
class Tx:
    day: str
    kind: str
    amount: str
    bank: str | None = None
    partner: str | None = None
    k_symbol: str | None = None
    stated_balance: str | None = None
    """The balance the row states instead of the true one (a corruption or a rounding)."""
    trans_id: int | None = None
    typed_amount: str | None = None
    """The amount the row states instead of the true one, under the true balance (a typing error)."""


class Ledger:
    """Raw transactions built in their true order, each row's balance the running sum."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.balances: dict[int, Decimal] = {}
        self.next_id = 1000

    def add(self, account_id: int, *transactions: Tx) -> list[int]:
        ids = []
        balance = self.balances.get(account_id, Decimal(0))
        for tx in transactions:
            trans_type, operation, k_symbol = OPERATIONS[tx.kind]
            amount = Decimal(tx.amount)
            balance += amount if trans_type == "PRIJEM" else -amount
            trans_id = tx.trans_id if tx.trans_id is not None else self._new_id()
            stated = Decimal(tx.stated_balance) if tx.stated_balance is not None else balance
            self.rows.append(
                (
                    trans_id,
                    account_id,
                    date.fromisoformat(tx.day),
                    trans_type,
                    operation,
                    Decimal(tx.typed_amount) if tx.typed_amount is not None else amount,
                    stated,
                    tx.k_symbol or k_symbol,
                    tx.bank,
                    tx.partner,
                )
            )
            ids.append(trans_id)
        self.balances[account_id] = balance
        return ids

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id


TRANS_COLUMNS = ("trans_id", "account_id", "date", "type", "operation", "amount", "balance", "k_symbol")
TRANS_COLUMNS += ("bank", "account")


def build_ledgers() -> tuple[Ledger, dict[str, int]]:
    ledger = Ledger()
    ids: dict[str, int] = {}

    # Rolling statistics: card withdrawals, one cash withdrawal, two card withdrawals on one day.
    ledger.add(ROLLING, Tx("1997-10-01", "deposit", "10000"))
    ledger.add(ROLLING, Tx("1997-11-01", "card", "100"), Tx("1997-11-10", "card", "200"))
    ledger.add(ROLLING, Tx("1997-12-01", "card", "600"))
    ids["card_0130"], ids["cash_0130"] = ledger.add(
        ROLLING, Tx("1998-01-30", "card", "300"), Tx("1998-01-30", "cash", "5000")
    )
    (ids["card_0131"],) = ledger.add(ROLLING, Tx("1998-01-31", "card", "50"))
    ids["card_0210_a"], ids["card_0210_b"] = ledger.add(
        ROLLING, Tx("1998-02-10", "card", "400"), Tx("1998-02-10", "card", "1000")
    )

    # Counterparties: an old payee seen again after 14 months, a new one, a duplicate posting.
    ledger.add(COUNTERPARTY, Tx("1997-01-05", "deposit", "20000"))
    (ids["x_1997"],) = ledger.add(COUNTERPARTY, Tx("1997-01-10", "payment", "500", "AB", "11111111"))
    (ids["x_0310"],) = ledger.add(COUNTERPARTY, Tx("1998-03-10", "payment", "500", "AB", "11111111"))
    (ids["y_0315"],) = ledger.add(COUNTERPARTY, Tx("1998-03-15", "payment", "2000", "CD", "22222222"))
    (ids["x_0320"],) = ledger.add(COUNTERPARTY, Tx("1998-03-20", "payment", "700", "AB", "11111111"))
    ids["z_0325_a"], ids["z_0325_b"] = ledger.add(
        COUNTERPARTY,
        Tx("1998-03-25", "payment", "300", "EF", "33333333"),
        Tx("1998-03-25", "payment", "300", "EF", "33333333"),
    )
    (ids["x_in_0402"],) = ledger.add(COUNTERPARTY, Tx("1998-04-02", "collection", "50", "AB", "11111111"))

    # A corrupted balance on a day of its own (+55.50), then a 0.10 rounding (interest is posted to the tenth).
    ledger.add(GAP_SINGLE, Tx("1998-01-05", "deposit", "1000"), Tx("1998-01-10", "cash", "200"))
    (ids["gap_single"],) = ledger.add(GAP_SINGLE, Tx("1998-01-15", "card", "100", stated_balance="755.50"))
    ledger.add(GAP_SINGLE, Tx("1998-01-20", "deposit", "300"))
    (ids["rounded"],) = ledger.add(GAP_SINGLE, Tx("1998-01-25", "cash", "50", stated_balance="950.10"))
    ledger.add(GAP_SINGLE, Tx("1998-01-31", "interest", "5"))

    # A corrupted balance in the middle of a three-transaction day (-1.00), ids against the order.
    ledger.add(GAP_MIDDLE, Tx("1998-01-05", "deposit", "2000"))
    _, ids["gap_middle"], _ = ledger.add(
        GAP_MIDDLE,
        Tx("1998-01-12", "cash", "300", trans_id=903),
        Tx("1998-01-12", "deposit", "1000", stated_balance="2699.00", trans_id=902),
        Tx("1998-01-12", "card", "150", trans_id=901),
    )
    ledger.add(GAP_MIDDLE, Tx("1998-01-13", "cash", "100"))

    # A corrupted balance on the last transaction of a two-transaction day (+10).
    ledger.add(GAP_LAST, Tx("1998-01-05", "deposit", "500"))
    _, ids["gap_last"] = ledger.add(
        GAP_LAST, Tx("1998-01-08", "cash", "100"), Tx("1998-01-08", "card", "50", stated_balance="360")
    )
    ledger.add(GAP_LAST, Tx("1998-01-09", "deposit", "20"), Tx("1998-01-10", "cash", "30"))

    # An amount typed ten times too large under the right balance, first of a two-transaction day.
    ledger.add(TYPED, Tx("1998-01-05", "deposit", "5000"))
    ids["typed"], _ = ledger.add(
        TYPED, Tx("1998-01-14", "deposit", "47641", typed_amount="476410"), Tx("1998-01-14", "cash", "36900")
    )
    ledger.add(TYPED, Tx("1998-01-15", "deposit", "700"), Tx("1998-01-20", "cash", "100"))

    # A posting of 400 missing from the file: every later balance is 400 lower than the amounts say.
    ledger.add(SHIFTED, Tx("1998-01-05", "deposit", "3000"), Tx("1998-01-10", "cash", "200"))
    ledger.balances[SHIFTED] -= Decimal("400")
    (ids["shifted"],) = ledger.add(SHIFTED, Tx("1998-01-12", "card", "100"))
    ledger.add(SHIFTED, Tx("1998-01-13", "deposit", "50"), Tx("1998-01-20", "cash", "20"))

    # A consistent day whose transaction ids run against the order of its balances.
    ledger.add(REORDERED, Tx("1998-01-05", "deposit", "1000"))
    ledger.add(
        REORDERED,
        Tx("1998-01-20", "deposit", "500", trans_id=913),
        Tx("1998-01-20", "cash", "200", trans_id=912),
        Tx("1998-01-20", "card", "300", trans_id=911),
    )
    (ids["reordered_last"],) = ledger.add(REORDERED, Tx("1998-01-21", "cash", "100"))

    # A standing order paid in January, February and April, not in March; a salary paid from
    # January to April, not in May; interest every month keeps the account active.
    ledger.add(ORDERS, Tx("1997-12-02", "deposit", "50000"))
    for month in ("01", "02", "03", "04", "05"):
        if month != "05":
            ledger.add(ORDERS, Tx(f"1998-{month}-10", "collection", "15000", "CD", "99999999"))
        if month != "03":
            ledger.add(ORDERS, Tx(f"1998-{month}-15", "payment", "1000", "EF", "55555555", k_symbol="SIPO"))
        ledger.add(ORDERS, Tx(f"1998-{month}-28", "interest", "10"))

    # Two standing orders never paid: a loan's repayment (the loan granted 1997-12-20 for 3 months
    # is due from January to March) and a household payment; interest keeps the account active
    # from December to May.
    ledger.add(UNPAID, Tx("1997-12-01", "deposit", "20000"))
    for month in ("1997-12", "1998-01", "1998-02", "1998-03", "1998-04", "1998-05"):
        ledger.add(UNPAID, Tx(f"{month}-28", "interest", "5"))
    return ledger, ids


def insert_static(cursor) -> None:
    districts = [
        (1, "Hl.m. Praha", "Prague", 1204953, 0, 0, 0, 1, 1, "100.0", 12541, "0.29", "0.43", 167, 85677, 99107),
        (2, "Benesov", "central Bohemia", 88884, 80, 26, 6, 2, 5, "46.7", 8507, "1.67", "1.85", 132, 2159, 2674),
    ]
    copy_rows(cursor, "raw.fin_district", [f"a{i}" if i > 1 else "district_id" for i in range(1, 17)], districts)
    accounts = [
        (ROLLING, 1, "POPLATEK MESICNE", date(1997, 10, 1)),
        (COUNTERPARTY, 2, "POPLATEK TYDNE", date(1996, 12, 1)),
        (GAP_SINGLE, 1, "POPLATEK MESICNE", date(1998, 1, 5)),
        (GAP_MIDDLE, 1, "POPLATEK MESICNE", date(1998, 1, 5)),
        (ORDERS, 2, "POPLATEK PO OBRATU", date(1997, 12, 1)),
        (REORDERED, 1, "POPLATEK MESICNE", date(1998, 1, 5)),
        (GAP_LAST, 1, "POPLATEK MESICNE", date(1998, 1, 5)),
        (UNPAID, 1, "POPLATEK MESICNE", date(1997, 12, 1)),
        (TYPED, 1, "POPLATEK MESICNE", date(1998, 1, 5)),
        (SHIFTED, 1, "POPLATEK MESICNE", date(1998, 1, 5)),
    ]
    copy_rows(cursor, "raw.fin_account", ("account_id", "district_id", "frequency", "date"), accounts)
    clients = [(account_id, "706213" if account_id == ROLLING else "450204", 2) for account_id, *_ in accounts]
    clients.append((100, "755101", 1))
    copy_rows(cursor, "raw.fin_client", ("client_id", "birth_number", "district_id"), clients)
    disps = [(account_id, account_id, account_id, "OWNER") for account_id, *_ in accounts]
    disps.append((100, 100, ROLLING, "DISPONENT"))
    copy_rows(cursor, "raw.fin_disp", ("disp_id", "client_id", "account_id", "type"), disps)
    copy_rows(
        cursor,
        "raw.fin_order",
        ("order_id", "account_id", "bank_to", "account_to", "amount", "k_symbol"),
        [
            (1, ORDERS, "EF", "55555555", Decimal(1000), "SIPO"),
            (2, UNPAID, "GH", "77777777", Decimal(3000), "UVER"),
            (3, UNPAID, "IJ", "88888888", Decimal(800), "SIPO"),
        ],
    )
    copy_rows(
        cursor,
        "raw.fin_loan",
        ("loan_id", "account_id", "date", "amount", "duration", "payments", "status"),
        [
            (1, COUNTERPARTY, date(1998, 3, 12), Decimal(96000), 24, Decimal(4000), "C"),
            (2, UNPAID, date(1997, 12, 20), Decimal(9000), 3, Decimal(3000), "B"),
        ],
    )
    copy_rows(
        cursor, "raw.fin_card", ("card_id", "disp_id", "type", "issued"), [(1, ROLLING, "classic", date(1998, 1, 31))]
    )


@dataclass
class DbtWorld:
    target: PostgresTarget
    work: Path
    ids: dict[str, int]

    def dbt(
        self,
        *args: str,
        dbt_vars: dict[str, str] | None = None,
        environment: dict[str, str] | None = None,
        target_path: Path | None = None,
    ) -> None:
        run_dbt(self.target, target_path or self.work / "target", *args, dbt_vars=dbt_vars, environment=environment)

    def env(self) -> dict[str, str]:
        return self.target.dbt_profile_env()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with connect(self.target) as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with connect(self.target) as conn:
            conn.execute(sql, params)

    def features(self, trans_id: int) -> dict[str, Any]:
        (row,) = self.query(f"SELECT * FROM {FEATURES} WHERE trans_id = %s", (trans_id,))
        return row

    def snapshot(self) -> dict[int, dict[str, Any]]:
        return {row["trans_id"]: row for row in self.query(f"SELECT * FROM {FEATURES}")}


@pytest.fixture(scope="module")
def world(postgres_target, tmp_path_factory) -> Iterator[DbtWorld]:
    ledger, ids = build_ledgers()
    with temporary_database(postgres_target, "dbt") as target:
        with connect(target) as conn, conn.cursor() as cursor:
            ensure_raw_schema(cursor)
            insert_static(cursor)
            copy_rows(cursor, "raw.fin_trans", TRANS_COLUMNS, ledger.rows)
        world = DbtWorld(target=target, work=tmp_path_factory.mktemp("dbt"), ids=ids)
        world.dbt("build")
        yield world


def money(value: Decimal | float | int, places: str = "0.01") -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def test_every_relation_is_decoded(world: DbtWorld) -> None:
    (client,) = world.query("SELECT birth_date, sex FROM staging.stg_clients WHERE client_id = %s", (ROLLING,))
    assert client == {"birth_date": date(1970, 12, 13), "sex": "female"}
    (disponent,) = world.query("SELECT birth_date, sex FROM staging.stg_clients WHERE client_id = 100")
    assert disponent == {"birth_date": date(1975, 1, 1), "sex": "female"}
    (district,) = world.query("SELECT * FROM staging.stg_districts WHERE district_id = 2")
    assert district["region"] == "central Bohemia"
    assert district["average_salary"] == 8507
    assert district["crimes_1996_per_1000"] == money(2674 * 1000 / 88884)
    frequencies = world.query("SELECT account_id, statement_frequency FROM staging.stg_accounts ORDER BY 1")
    assert frequencies[0]["statement_frequency"] == "monthly"
    assert frequencies[1]["statement_frequency"] == "weekly"
    assert frequencies[4]["statement_frequency"] == "after_transaction"
    (loan,) = world.query("SELECT loan_status, is_finished FROM staging.stg_loans WHERE loan_id = 1")
    assert loan == {"loan_status": "running_ok", "is_finished": False}
    kinds = {
        (row["transaction_type"], row["operation"], row["category"], row["transaction_kind"])
        for row in world.query("SELECT * FROM staging.stg_transactions")
    }
    assert ("credit", "unspecified", "interest_credited", "interest_credited") in kinds
    assert ("debit", "card_withdrawal", "unspecified", "card_withdrawal") in kinds
    assert ("debit", "remittance_to_other_bank", "household_payment", "household_payment") in kinds
    (owner,) = world.query("SELECT * FROM intermediate.int_accounts_enriched WHERE account_id = %s", (ROLLING,))
    assert owner["owner_client_id"] == ROLLING
    assert owner["has_disponent"] is True
    assert owner["first_card_type"] == "classic"
    assert owner["owner_district_average_salary"] == 8507


def test_rolling_statistics_use_the_90_days_before_the_day(world: DbtWorld) -> None:
    # 1998-01-30: 90 days back is 1997-11-01, included: card withdrawals 100, 200, 600.
    row = world.features(world.ids["card_0130"])
    std = statistics.stdev([Decimal(100), Decimal(200), Decimal(600)])
    assert row["kind_txn_count_90d"] == 3
    assert row["kind_amount_mean_90d"] == Decimal("300.00")
    assert row["kind_amount_median_90d"] == Decimal("200.00")
    assert row["kind_amount_std_90d"] == money(std)
    assert row["kind_amount_max_90d"] == Decimal(600)
    assert row["kind_amount_zscore"] == Decimal("0.0000")
    assert row["kind_amount_to_median_ratio"] == Decimal("1.5000")

    # The same day's cash withdrawal is another kind, with no history of its own.
    cash = world.features(world.ids["cash_0130"])
    assert cash["kind_txn_count_90d"] == 0
    assert cash["kind_amount_mean_90d"] is None and cash["kind_amount_median_90d"] is None
    assert cash["kind_amount_zscore"] is None

    # 1998-01-31: 1997-11-01 has left the window; 200, 600 and the day before's 300 remain.
    row = world.features(world.ids["card_0131"])
    prior = [Decimal(200), Decimal(600), Decimal(300)]
    mean, std = sum(prior) / 3, statistics.stdev(prior)
    assert row["kind_txn_count_90d"] == 3
    assert row["kind_amount_mean_90d"] == money(mean)
    assert row["kind_amount_median_90d"] == Decimal("300.00")
    assert row["kind_amount_std_90d"] == money(std)
    assert row["kind_amount_zscore"] == money((50 - mean) / std, "0.0001")
    assert row["kind_amount_to_median_ratio"] == money(Decimal(50) / 300, "0.0001")

    # Two card withdrawals on one day see the same history and not each other.
    first, second = (world.features(world.ids[key]) for key in ("card_0210_a", "card_0210_b"))
    statistic_columns = [column for column in first if column.startswith("kind_") and "zscore" not in column]
    statistic_columns.remove("kind_amount_to_median_ratio")
    assert {column: first[column] for column in statistic_columns} == {
        column: second[column] for column in statistic_columns
    }
    assert first["kind_txn_count_90d"] == 3  # 600 (1997-12-01), 300, 50
    assert first["kind_amount_max_90d"] == Decimal(600)


def test_account_day_and_spending_features(world: DbtWorld) -> None:
    row = world.features(world.ids["card_0130"])
    assert row["days_since_previous_txn"] == 60
    assert row["txn_count_day"] == 2
    assert row["day_spend"] == Decimal(5300)
    assert row["usual_daily_spend_90d"] == Decimal("300.00")  # 100, 200, 600 on their days
    assert row["max_daily_spend_90d"] == Decimal(600)
    assert row["day_spend_ratio"] == money(Decimal(5300) / 300, "0.0001")
    assert row["month_spend_to_date"] == Decimal(5300)
    assert row["usual_monthly_spend_3m"] == Decimal("300.00")  # (0 + 300 + 600) / 3
    assert row["card_type"] == "none"  # the card is issued the next day
    assert row["client_id"] == ROLLING and row["client_age_years"] == 27 and row["client_sex"] == "female"
    assert row["statement_frequency"] == "monthly" and row["has_disponent"] is True
    assert row["district_average_salary"] == 8507
    assert row["district_urban_ratio_pct"] == Decimal("46.7")
    assert row["district_unemployment_rate_pct"] == Decimal("1.85")
    assert row["district_crimes_per_1000"] == money(2674 * 1000 / 88884)
    assert (row["day_of_month"], row["day_of_week"], row["month_of_year"]) == (30, 5, 1)
    assert row["balance_before"] == Decimal(9100) and row["balance_after"] == Decimal(8800)

    row = world.features(world.ids["card_0131"])
    assert row["days_since_previous_txn"] == 1
    assert row["txn_count_7d"] == 3
    assert row["month_spend_to_date"] == Decimal(5350)
    assert row["card_type"] == "classic"

    row = world.features(world.ids["card_0210_b"])
    assert row["days_since_previous_txn"] == 10
    assert row["txn_count_day"] == 2 and row["txn_count_7d"] == 2
    assert row["month_spend_to_date"] == Decimal(1400)
    assert row["usual_monthly_spend_3m"] == money(Decimal(300 + 600 + 5350) / 3)
    assert row["month_spend_ratio"] == money(Decimal(1400) / (Decimal(6250) / 3), "0.0001")


def test_counterparties_first_seen_and_largest_payment(world: DbtWorld) -> None:
    old = world.features(world.ids["x_1997"])
    assert old["is_new_counterparty"] is True and old["counterparty_previous_txn_count"] == 0
    assert old["max_previous_payment"] is None and old["amount_to_max_previous_payment_ratio"] is None

    again = world.features(world.ids["x_0310"])
    assert again["is_new_counterparty"] is False and again["counterparty_previous_txn_count"] == 1
    assert again["is_repeat_amount_to_counterparty"] is True
    assert again["days_since_previous_txn"] == (date(1998, 3, 10) - date(1997, 1, 10)).days
    assert again["max_previous_payment"] == Decimal(500)
    assert again["amount_to_max_previous_payment_ratio"] == Decimal("1.0000")
    assert again["loan_status"] == "none"  # granted 1998-03-12

    new = world.features(world.ids["y_0315"])
    assert new["is_new_counterparty"] is True and new["is_repeat_amount_to_counterparty"] is False
    assert new["amount_to_max_previous_payment_ratio"] == Decimal("4.0000")
    assert new["loan_status"] == "running_ok"

    bigger = world.features(world.ids["x_0320"])
    assert bigger["is_new_counterparty"] is False and bigger["counterparty_previous_txn_count"] == 2
    assert bigger["is_repeat_amount_to_counterparty"] is False
    assert bigger["max_previous_payment"] == Decimal(2000)
    assert bigger["amount_to_max_previous_payment_ratio"] == Decimal("0.3500")

    # The payer of a credit is a counterparty of its own direction.
    incoming = world.features(world.ids["x_in_0402"])
    assert incoming["is_new_counterparty"] is True
    assert incoming["amount_to_max_previous_payment_ratio"] is None

    deposit = world.query(f"SELECT * FROM {FEATURES} WHERE account_id = %s AND counterparty_bank IS NULL", (ROLLING,))
    assert all(row["is_new_counterparty"] is None for row in deposit)


def test_duplicate_posting(world: DbtWorld) -> None:
    for key in ("z_0325_a", "z_0325_b"):
        row = world.features(world.ids[key])
        assert row["duplicate_posting_count"] == 1 and row["is_duplicate_posting"] is True
        assert row["is_new_counterparty"] is True  # the copy on the same day is not "earlier"
    others = world.query(f"SELECT count(*) AS n FROM {FEATURES} WHERE is_duplicate_posting")
    assert others == [{"n": 2}]


def test_ledger_gap_is_exactly_the_injected_amount(world: DbtWorld) -> None:
    gaps = {
        row["trans_id"]: row["ledger_gap"]
        for row in world.query(f"SELECT trans_id, ledger_gap FROM {FEATURES} WHERE ledger_gap <> 0")
    }
    assert gaps == {
        world.ids["gap_single"]: Decimal("55.50"),
        world.ids["gap_middle"]: Decimal("-1.00"),
        world.ids["gap_last"]: Decimal("10.00"),
        world.ids["typed"]: Decimal("-428769.00"),
        world.ids["shifted"]: Decimal("-400.00"),
    }
    # The typing error and the missing posting are each one gap: the days after them open at the
    # posted balance. The 0.10 rounding is tolerated, and a day reordered against its ids is consistent.
    assert world.features(world.ids["rounded"])["ledger_gap"] == 0
    reordered = world.query(f"SELECT ledger_gap FROM {FEATURES} WHERE account_id = %s", (REORDERED,))
    assert [row["ledger_gap"] for row in reordered] == [0] * 5


def test_missing_standing_order_and_broken_pattern(world: DbtWorld) -> None:
    expected = [
        {
            "account_id": ORDERS,
            "missing_month": date(1998, 3, 1),
            "expectation_source": "standing_order",
            "order_id": 1,
            "direction": "outgoing",
            "counterparty_bank": "EF",
            "counterparty_account": "55555555",
            "category": "household_payment",
            "expected_amount": Decimal(1000),
            "last_seen_month": date(1998, 2, 1),
            "months_since_last_seen": 1,
            "months_seen_in_streak": 2,
        },
        {
            "account_id": ORDERS,
            "missing_month": date(1998, 5, 1),
            "expectation_source": "recurring_pattern",
            "order_id": None,
            "direction": "incoming",
            "counterparty_bank": "CD",
            "counterparty_account": "99999999",
            "category": "unspecified",
            "expected_amount": Decimal(15000),
            "last_seen_month": date(1998, 4, 1),
            "months_since_last_seen": 1,
            "months_seen_in_streak": 4,
        },
    ]
    rows = world.query(f"SELECT * FROM {MISSING} WHERE account_id = %s ORDER BY missing_month", (ORDERS,))
    assert [{column: row[column] for column in expected[0]} for row in rows] == expected


def test_loan_repayment_never_paid_is_missing_in_every_month_of_the_term(world: DbtWorld) -> None:
    """A loan-payment order never paid is expected in each active month of the loan's term, never seen;
    an undated order of another kind never paid is not reported (nothing tells when it was due)."""
    rows = world.query(f"SELECT * FROM {MISSING} WHERE account_id = %s ORDER BY missing_month", (UNPAID,))
    expected = {
        "expectation_source": "standing_order",
        "order_id": 2,
        "direction": "outgoing",
        "counterparty_bank": "GH",
        "counterparty_account": "77777777",
        "category": "loan_payment",
        "expected_amount": Decimal(3000),
        "last_seen_month": None,
        "months_since_last_seen": None,
        "months_seen_in_streak": 0,
    }
    assert [row["missing_month"] for row in rows] == [date(1998, 1, 1), date(1998, 2, 1), date(1998, 3, 1)]
    assert all({column: row[column] for column in expected} == expected for row in rows)


def test_renumbering_a_day_changes_no_feature(world: DbtWorld) -> None:
    """The three transactions of 1998-01-20 get each other's ids: their features follow their content."""

    def by_content() -> dict[tuple[Any, ...], dict[str, Any]]:
        rows = world.query(f"SELECT * FROM {FEATURES} WHERE account_id = %s", (REORDERED,))
        return {(row["trans_date"], row["signed_amount"]): {**row, "trans_id": None} for row in rows}

    before = by_content()
    window = {"min_date": "1998-01-01", "max_date": "1998-02-01"}
    renumber = "UPDATE raw.fin_trans SET trans_id = CASE trans_id WHEN 911 THEN 913 WHEN 912 THEN 911 ELSE 912 END"
    world.execute(renumber + " WHERE trans_id IN (911, 912, 913)")
    try:
        world.dbt("run", "--select", "fct_transaction_features", dbt_vars=window)
        assert by_content() == before
    finally:
        undo = "UPDATE raw.fin_trans SET trans_id = CASE trans_id WHEN 913 THEN 911 WHEN 911 THEN 912 ELSE 913 END"
        world.execute(undo + " WHERE trans_id IN (911, 912, 913)")
        world.dbt("run", "--select", "fct_transaction_features", dbt_vars=window)


def test_rerunning_windows_changes_nothing(world: DbtWorld) -> None:
    before = world.snapshot()
    world.dbt(
        "run", "--select", "fct_transaction_features", dbt_vars={"min_date": "1998-03-01", "max_date": "1998-04-01"}
    )
    world.dbt(
        "build", "--select", "fct_transaction_features", dbt_vars={"min_date": "1998-01-15", "max_date": "1998-02-20"}
    )
    assert world.snapshot() == before


def test_a_window_from_the_environment_reruns_the_month_without_parsing(world: DbtWorld, tmp_path: Path) -> None:
    """Dagster's path: the saved parse made for this connection, copied into a fresh target folder,
    and the window in ADS_FEATURES_MIN/MAX_DATE. dbt parses nothing, and the rebuilt month (with
    its tests, window-scoped) changes nothing."""
    project = DbtProject(project_dir=DBT_PROJECT, profiles_dir=DBT_PROJECT, target_path=tmp_path / "prepared")
    environment = {**os.environ, **world.env()}
    ensure_partial_parse(environment, project)
    saved = tmp_path / "prepared" / "partial_parse.msgpack"
    prepared_at = saved.stat().st_mtime_ns
    ensure_partial_parse(environment, project)
    assert saved.stat().st_mtime_ns == prepared_at

    before = world.snapshot()
    first_day, next_first_day = "1998-03-01", "1998-04-01"
    run_target = tmp_path / f"run-{first_day}"
    run_target.mkdir()
    shutil.copy(saved, run_target)
    window = {"ADS_FEATURES_MIN_DATE": first_day, "ADS_FEATURES_MAX_DATE": next_first_day}
    world.dbt("build", "--select", "fct_transaction_features", environment=window, target_path=run_target)
    log = (run_target / "logs" / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log
    assert "Partial parsing enabled: 0 files deleted, 0 files added, 0 files changed." in log
    compiled = run_target / "compiled" / "ads"
    model = next(compiled.glob("models/**/fct_transaction_features.sql")).read_text()
    generic_test = next(compiled.glob("models/**/unique_fct_transaction_features_trans_id.sql")).read_text()
    bounds = f"trans_date >= date '{first_day}' and trans_date < date '{next_first_day}'"
    assert f"where trans_date >= date '{first_day}'" in model and bounds in generic_test
    assert world.snapshot() == before


def test_a_window_drops_transactions_that_left_the_raw_data(world: DbtWorld) -> None:
    trans_id = world.ids["reordered_last"]
    (raw,) = world.query("SELECT * FROM raw.fin_trans WHERE trans_id = %s", (trans_id,))
    before = world.snapshot()
    window = {"min_date": "1998-01-01", "max_date": "1998-02-01"}
    world.execute("DELETE FROM raw.fin_trans WHERE trans_id = %s", (trans_id,))
    world.dbt("run", "--select", "fct_transaction_features", dbt_vars=window)
    after = world.snapshot()
    assert set(before) - set(after) == {trans_id}
    assert all(after[key] == before[key] for key in after)

    with connect(world.target) as conn, conn.cursor() as cursor:
        copy_rows(cursor, "raw.fin_trans", list(raw), [list(raw.values())])
    world.dbt("run", "--select", "fct_transaction_features", dbt_vars=window)
    assert world.snapshot() == before


def test_no_look_ahead(world: DbtWorld) -> None:
    """Append the future (later the same month, and months later); a full rebuild keeps every earlier row."""
    before = world.snapshot()
    ledger = Ledger()
    ledger.next_id = 5000
    balance_rolling = world.query(
        "SELECT balance FROM raw.fin_trans WHERE account_id = %s ORDER BY date DESC, balance LIMIT 1", (ROLLING,)
    )[0]["balance"]
    ledger.balances[ROLLING] = balance_rolling
    future = ledger.add(
        ROLLING,
        Tx("1998-02-20", "card", "9999"),
        Tx("1998-06-01", "payment", "123456", "AB", "11111111"),
    )
    with connect(world.target) as conn, conn.cursor() as cursor:
        copy_rows(cursor, "raw.fin_trans", TRANS_COLUMNS, ledger.rows)
    try:
        world.dbt("run", "--select", "fct_transaction_features", "--full-refresh")
        after = world.snapshot()
        assert set(after) - set(before) == set(future)
        assert {key: after[key] for key in before} == before
        assert after[future[0]]["month_spend_to_date"] == Decimal(1400 + 9999)
        assert after[future[0]]["ledger_gap"] == 0
    finally:
        world.execute("DELETE FROM raw.fin_trans WHERE trans_id = ANY(%s)", (future,))
        world.dbt("run", "--select", "fct_transaction_features", "--full-refresh")
    assert world.snapshot() == before
