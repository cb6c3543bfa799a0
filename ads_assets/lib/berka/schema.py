"""The canonical raw schema of the eight Berka relations and the two published file conventions.

Canonical rows carry the PKDD'99 original units, dates and Czech codes; both file formats (and the
`fin_*` database source) convert to them, so one record loads identically from either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ColumnType(StrEnum):
    INT = "bigint"
    TEXT = "text"
    DATE = "date"
    MONEY = "numeric(14,2)"
    DECIMAL = "numeric(10,2)"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False
    codes: frozenset[str] | None = None


@dataclass(frozen=True)
class Relation:
    name: str
    table: str
    columns: tuple[Column, ...]
    key: str
    parents: tuple[tuple[str, str], ...] = ()
    partition_column: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


TRANS_TYPES = frozenset({"PRIJEM", "VYDAJ", "VYBER"})
TRANS_OPERATIONS = frozenset({"VYBER KARTOU", "VKLAD", "PREVOD Z UCTU", "VYBER", "PREVOD NA UCET"})
TRANS_K_SYMBOLS = frozenset({"POJISTNE", "SLUZBY", "UROK", "SANKC. UROK", "SIPO", "DUCHOD", "UVER"})
ORDER_K_SYMBOLS = frozenset({"POJISTNE", "SIPO", "LEASING", "UVER"})
ACCOUNT_FREQUENCIES = frozenset({"POPLATEK MESICNE", "POPLATEK TYDNE", "POPLATEK PO OBRATU"})
DISP_TYPES = frozenset({"OWNER", "DISPONENT"})
CARD_TYPES = frozenset({"classic", "gold", "junior"})
LOAN_STATUSES = frozenset({"A", "B", "C", "D"})
REGIONS = (
    "Prague",
    "central Bohemia",
    "south Bohemia",
    "west Bohemia",
    "north Bohemia",
    "east Bohemia",
    "south Moravia",
    "north Moravia",
)

_INT, _TEXT, _DATE, _MONEY = ColumnType.INT, ColumnType.TEXT, ColumnType.DATE, ColumnType.MONEY

RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation(
            "district",
            "fin_district",
            (
                Column("district_id", _INT),
                Column("a2", _TEXT),
                Column("a3", _TEXT, codes=frozenset(REGIONS)),
                Column("a4", _INT),
                Column("a5", _INT),
                Column("a6", _INT),
                Column("a7", _INT),
                Column("a8", _INT),
                Column("a9", _INT),
                Column("a10", ColumnType.DECIMAL),
                Column("a11", _INT),
                Column("a12", ColumnType.DECIMAL, nullable=True),
                Column("a13", ColumnType.DECIMAL),
                Column("a14", _INT),
                Column("a15", _INT, nullable=True),
                Column("a16", _INT),
            ),
            key="district_id",
        ),
        Relation(
            "account",
            "fin_account",
            (
                Column("account_id", _INT),
                Column("district_id", _INT),
                Column("frequency", _TEXT, codes=ACCOUNT_FREQUENCIES),
                Column("date", _DATE),
            ),
            key="account_id",
            parents=(("district_id", "district"),),
        ),
        Relation(
            "client",
            "fin_client",
            (Column("client_id", _INT), Column("birth_number", _TEXT), Column("district_id", _INT)),
            key="client_id",
            parents=(("district_id", "district"),),
        ),
        Relation(
            "disp",
            "fin_disp",
            (
                Column("disp_id", _INT),
                Column("client_id", _INT),
                Column("account_id", _INT),
                Column("type", _TEXT, codes=DISP_TYPES),
            ),
            key="disp_id",
            parents=(("client_id", "client"), ("account_id", "account")),
        ),
        Relation(
            "order",
            "fin_order",
            (
                Column("order_id", _INT),
                Column("account_id", _INT),
                Column("bank_to", _TEXT),
                Column("account_to", _TEXT),
                Column("amount", _MONEY),
                Column("k_symbol", _TEXT, nullable=True, codes=ORDER_K_SYMBOLS),
            ),
            key="order_id",
            parents=(("account_id", "account"),),
        ),
        Relation(
            "loan",
            "fin_loan",
            (
                Column("loan_id", _INT),
                Column("account_id", _INT),
                Column("date", _DATE),
                Column("amount", _MONEY),
                Column("duration", _INT),
                Column("payments", _MONEY),
                Column("status", _TEXT, codes=LOAN_STATUSES),
            ),
            key="loan_id",
            parents=(("account_id", "account"),),
        ),
        Relation(
            "card",
            "fin_card",
            (
                Column("card_id", _INT),
                Column("disp_id", _INT),
                Column("type", _TEXT, codes=CARD_TYPES),
                Column("issued", _DATE),
            ),
            key="card_id",
            parents=(("disp_id", "disp"),),
        ),
        Relation(
            "trans",
            "fin_trans",
            (
                Column("trans_id", _INT),
                Column("account_id", _INT),
                Column("date", _DATE),
                Column("type", _TEXT, codes=TRANS_TYPES),
                Column("operation", _TEXT, nullable=True, codes=TRANS_OPERATIONS),
                Column("amount", _MONEY),
                Column("balance", _MONEY),
                Column("k_symbol", _TEXT, nullable=True, codes=TRANS_K_SYMBOLS),
                Column("bank", _TEXT, nullable=True),
                Column("account", _TEXT, nullable=True),
            ),
            key="trans_id",
            parents=(("account_id", "account"),),
            partition_column="date",
        ),
    )
}

LOAD_ORDER: tuple[str, ...] = ("district", "account", "client", "disp", "order", "loan", "card", "trans")

FIN_DATE_SHIFT_YEARS = 20
FIN_AMOUNT_SCALE = 10

FIN_CODES: dict[tuple[str, str], dict[str, str]] = {
    ("trans", "type"): {"C": "PRIJEM", "D": "VYDAJ", "P": "VYBER"},
    ("trans", "operation"): {
        "CCW": "VYBER KARTOU",
        "CIC": "VKLAD",
        "COB": "PREVOD Z UCTU",
        "WIC": "VYBER",
        "ROB": "PREVOD NA UCET",
    },
    ("trans", "k_symbol"): {
        "IN": "POJISTNE",
        "ST": "SLUZBY",
        "IC": "UROK",
        "IO": "SANKC. UROK",
        "HH": "SIPO",
        "PE": "DUCHOD",
        "LO": "UVER",
    },
    ("order", "k_symbol"): {"IN": "POJISTNE", "HH": "SIPO", "LE": "LEASING", "LO": "UVER"},
    ("account", "frequency"): {"M": "POPLATEK MESICNE", "W": "POPLATEK TYDNE", "T": "POPLATEK PO OBRATU"},
    ("disp", "type"): {"O": "OWNER", "D": "DISPONENT"},
    ("card", "type"): {"C": "classic", "G": "gold", "J": "junior"},
}
"""fin_* code → canonical (PKDD'99) code, per (relation, column); columns not listed keep their codes."""

FIN_COLUMN_ORDER: dict[str, tuple[str, ...]] = {
    "district": RELATIONS["district"].column_names,
    "account": ("account_id", "district_id", "date", "frequency"),
    "client": ("client_id", "birth_date", "gender", "district_id"),
    "disp": ("disp_id", "client_id", "account_id", "type"),
    "order": ("order_id", "account_id", "bank_to", "account_to", "amount", "k_symbol"),
    "loan": ("loan_id", "account_id", "date", "amount", "duration", "payments", "status"),
    "card": ("card_id", "disp_id", "type", "issued"),
    "trans": (
        "trans_id",
        "account_id",
        "date",
        "amount",
        "balance",
        "type",
        "operation",
        "k_symbol",
        "bank",
        "account",
    ),
}
"""Column order of each fin_*.tsv file, named by the canonical column each one becomes.

fin_client carries birth_date (shifted) and gender (M/F) in place of birth_number; fin_district's
region names are capitalised ("Central Bohemia") where the original is not ("central Bohemia").
"""

FIN_MONEY_COLUMNS: frozenset[tuple[str, str]] = frozenset(
    {
        ("order", "amount"),
        ("loan", "amount"),
        ("loan", "payments"),
        ("trans", "amount"),
        ("trans", "balance"),
    }
)
"""Columns the fin_* variant divides by FIN_AMOUNT_SCALE."""
