"""A calibrated, fast generator of all eight Berka relations, with labelled anomalies.

`generate(GeneratorConfig(...))` returns canonical frames (schema.RELATIONS names, columns and
codes; dates as datetime64, money as float CZK, missing text as NaN) and the anomaly labels;
`write_dataset` writes them in either published file convention plus `labels.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..schema import RELATIONS
from ..writers import write_dataset
from . import calibration as cal
from .anomalies import break_ledger, inject, rows_per_kind
from .events import (
    BERKA_LABEL_KINDS,
    K_SYMBOLS,
    LABEL_KINDS,
    MISSING_BILL,
    NO_LABEL,
    OPERATIONS,
    RETAIL_LABEL_KINDS,
    TYPES,
    Events,
    chronological,
    running_balances,
)
from .ledger import simulate
from .months import Window
from .population import Population, as_dates, draw_population
from .retail import simulate_retail

__all__ = [
    "BERKA_LABEL_KINDS",
    "LABEL_KINDS",
    "RETAIL_LABEL_KINDS",
    "SHAPES",
    "GeneratedData",
    "GeneratorConfig",
    "generate",
    "write_dataset",
]

SHAPES: tuple[str, ...] = ("berka", "retail")
"""`berka`: calibrated to the real PKDD'99 bank (a few transactions an account a month), labelled with
BERKA_LABEL_KINDS. `retail`: the same kind of population paying merchants tens of times a month
(see retail.py), labelled with RETAIL_LABEL_KINDS."""


@dataclass(frozen=True)
class GeneratorConfig:
    accounts: int = 4500
    start: str = "1993-01"
    """First month, inclusive, YYYY-MM."""
    end: str = "1998-12"
    """Last month, inclusive, YYYY-MM."""
    seed: int = 0
    anomaly_rate: float = 0.0
    """Share of transactions turned into labelled anomalies."""
    shape: str = "berka"
    """The kind of bank, one of SHAPES."""


@dataclass(frozen=True)
class GeneratedData:
    relations: dict[str, pd.DataFrame]
    """Keyed by schema.RELATIONS names; canonical column names, codes, units and dates."""
    labels: pd.DataFrame
    """trans_id (Int64, empty for missing_bill), account_id, month ('YYYY-MM'), kind (LABEL_KINDS)."""


def _validate(config: GeneratorConfig) -> Window:
    """The config's window; ValueError for a config that cannot be generated."""
    if config.accounts < 1:
        raise ValueError(f"accounts must be at least 1, got {config.accounts}")
    if not 0.0 <= config.anomaly_rate < 1.0:
        raise ValueError(f"anomaly_rate must be in [0, 1), got {config.anomaly_rate}")
    if config.shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {config.shape!r}")
    return Window.between(config.start, config.end)


def _strings(dictionary: list[str | None] | np.ndarray, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Text column from a small dictionary and one code per row (-1 or a None entry: missing)."""
    values = pa.array(list(dictionary) + [None], type=pa.string())
    return pd.array(values.take(pa.array(np.where(codes < 0, len(dictionary), codes))), dtype="str")


def _counterparties(number: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Counterparty account numbers as text (-1: missing)."""
    uniques, inverse = np.unique(number, return_inverse=True)
    return _strings([str(value) if value >= 0 else None for value in uniques.tolist()], inverse)


def _trans_frame(events: Events, balance: np.ndarray) -> pd.DataFrame:
    """The trans relation in canonical dtypes from chronologically ordered events."""
    return pd.DataFrame(
        {
            "trans_id": np.arange(1, len(events) + 1, dtype=np.int64),
            "account_id": events.account.astype(np.int64) + 1,
            "date": as_dates(events.day),
            "type": _strings(list(TYPES), events.type),
            "operation": _strings(list(OPERATIONS), events.operation),
            "amount": events.amount / 10,
            "balance": balance / 10,
            "k_symbol": _strings(list(K_SYMBOLS), events.k_symbol),
            "bank": _strings(list(cal.BANKS), events.bank),
            "account": _counterparties(events.number),
        }
    )


def _labels(
    window: Window, events: Events, label: np.ndarray, missing_account: np.ndarray, missing_day: np.ndarray
) -> pd.DataFrame:
    """Labelled rows by trans_id, then the missing bills (no trans_id) by account and month."""
    rows = np.flatnonzero(label != NO_LABEL)
    missing = len(missing_day)
    trans_id = np.concatenate([rows + 1, np.zeros(missing, dtype=np.int64)])
    no_row = np.concatenate([np.zeros(len(rows), dtype=bool), np.ones(missing, dtype=bool)])
    month = window.month_of(np.concatenate([events.day[rows], missing_day]))
    return pd.DataFrame(
        {
            "trans_id": pd.arrays.IntegerArray(trans_id, no_row),
            "account_id": np.concatenate([events.account[rows], missing_account]).astype(np.int64) + 1,
            "month": pd.array(window.labels()[month], dtype="str"),
            "kind": _strings(list(LABEL_KINDS), np.concatenate([label[rows], np.full(missing, MISSING_BILL)])),
        }
    )


def _berka(
    rng: np.random.Generator, window: Window, population: Population, rate: float
) -> tuple[Events, np.ndarray, pd.DataFrame]:
    """The berka shape's chronological transactions, their balances and the labels."""
    events = simulate(rng, window, population)
    per_kind = rows_per_kind(rate, len(events))
    injected = inject(rng, events, rate, window, population.orders)
    events = injected.events.take(chronological(injected.events))
    balance = running_balances(events.account, events.signed())
    label = events.label
    if per_kind:
        balance, label = break_ledger(rng, balance, label, per_kind)
    return events, balance, _labels(window, events, label, injected.missing_account, injected.missing_day)


def _retail(
    rng: np.random.Generator, window: Window, population: Population, rate: float
) -> tuple[Events, np.ndarray, pd.DataFrame]:
    """The retail shape's chronological transactions, their balances and the labels."""
    events = simulate_retail(rng, window, population, rate)
    nothing = np.zeros(0, dtype=np.int64)
    balance = running_balances(events.account, events.signed())
    return events, balance, _labels(window, events, events.label, nothing, nothing)


def generate(config: GeneratorConfig) -> GeneratedData:
    """The eight relations for `config.accounts` accounts over the window, and the anomaly labels."""
    window = _validate(config)
    rng = np.random.default_rng(config.seed)
    population = draw_population(rng, window, config.accounts)
    shape = _retail if config.shape == "retail" else _berka
    events, balance, labels = shape(rng, window, population, config.anomaly_rate)
    relations = dict(population.relations, trans=_trans_frame(events, balance))
    return GeneratedData(relations={name: relations[name] for name in RELATIONS}, labels=labels)
