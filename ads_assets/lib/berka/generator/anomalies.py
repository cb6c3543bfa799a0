"""Labelled anomalies injected into generated transactions.

Six kinds, about equally many labelled rows of each: `wrong_amount` (a payment or income posted at
10x or 100x), `duplicate_posting` (a payment posted twice), `new_payee` (a large payment to an
unseen account), `burst` (4-8 same-day cash withdrawals), `missing_bill` (a standing-order payment
that never came; labelled by account and month) and `ledger_break` (one balance off its chain,
applied after the balances are computed).

The bank puts the money of the others right, so that none of them carries into the years of balances
after it: a few days later comes an unlabelled correcting posting on the same account, bank-internal
(empty operation and k_symbol, no counterparty, like the interest postings): a credit (PRIJEM) of the
excess of a payment posted at 10x or 100x, a debit (VYDAJ) of the excess of an income posted so, 1-5
days later; a credit of a duplicated payment, 1-5 days later; a credit returning a payment to a new
payee (recalled) and one reimbursing a burst's total (card fraud), 3-10 days later. A correction
that would fall after the window's last day is posted on that day, after the day's other postings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import calibration as cal
from .events import (
    BERKA_LABEL_KINDS,
    BURST,
    CORRECTION,
    CREDIT,
    DEBIT,
    DUPLICATE_POSTING,
    INCOMING,
    LEDGER_BREAK,
    NEW_PAYEE,
    NO_LABEL,
    NO_OPERATION,
    NO_SYMBOL,
    OUTGOING,
    PAYMENT,
    SPENDING,
    WITHDRAWAL,
    WRONG_AMOUNT,
    Events,
    make_events,
)
from .months import Window
from .population import Orders, unseen_numbers

BURST_SIZES = (4, 8)
BURST_AMOUNTS = (300, 3000)
NEW_PAYEE_FACTORS = (3.0, 6.0)
WRONG_FACTORS = (10, 100)
WRONG_HUNDRED_SHARE = 0.3
LEDGER_SHIFTS = (100, 10_000)
MIN_GROUP_ROWS = 3
ERROR_CORRECTION_DAYS = (1, 5)
"""Days from a wrong amount or a duplicate to the bank's correcting posting."""
FRAUD_REFUND_DAYS = (3, 10)
"""Days from a payment to a new payee or a burst to the credit returning its money."""
_KEY = 1 << 20


@dataclass(frozen=True)
class Injected:
    """Transactions after injection and the (account, day) of every removed payment."""

    events: Events
    missing_account: np.ndarray
    missing_day: np.ndarray


def rows_per_kind(rate: float, transactions: int, kinds: int = len(BERKA_LABEL_KINDS)) -> int:
    """Labelled rows wanted for each of `kinds` anomaly kinds."""
    if rate <= 0:
        return 0
    return max(1, round(rate * transactions / kinds))


def _group_stats(events: Events, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest amount and size of each row's group (same account, type, operation and k_symbol)."""
    key = ((events.account[rows].astype(np.int64) * 8 + events.type[rows]) * 8 + events.operation[rows]) * 8
    groups, inverse, counts = np.unique(key + events.k_symbol[rows], return_inverse=True, return_counts=True)
    largest = np.zeros(len(groups), dtype=np.int64)
    np.maximum.at(largest, inverse, events.amount[rows])
    return largest[inverse], counts[inverse]


def _wrong_amounts(rng: np.random.Generator, events: Events, pool: np.ndarray, count: int) -> np.ndarray:
    """Rows to inflate: recurring payments or incomes at their group's largest amount."""
    largest, size = _group_stats(events, pool)
    candidates = pool[(events.amount[pool] == largest) & (size >= MIN_GROUP_ROWS)]
    return rng.choice(candidates, size=min(count, len(candidates)), replace=False)


def _first_of_key(rows: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The rows whose key has not occurred earlier in `rows`."""
    return rows[np.sort(np.unique(key, return_index=True)[1])]


def _missing_bills(
    events: Events, payments: np.ndarray, window: Window, first_month: np.ndarray, count: int
) -> np.ndarray:
    """Payments to drop: not an order's first, at most one per account and month."""
    month = window.month_of(events.day[payments])
    later = payments[month > first_month[events.order[payments]]]
    key = events.account[later].astype(np.int64) * _KEY + window.month_of(events.day[later])
    return _first_of_key(later, key)[:count]


def _largest_payment_until(events: Events, account: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Each account's largest outgoing payment on or before `day`."""
    rows = np.flatnonzero((events.operation == OUTGOING) & (events.type == DEBIT))
    keys = events.account[rows].astype(np.int64) * _KEY + events.day[rows]
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    scale = np.int64(1) << 40
    running = np.maximum.accumulate(events.account[rows].astype(np.int64) * scale + events.amount[rows])
    running = running - events.account[rows].astype(np.int64) * scale
    found = np.searchsorted(keys, account.astype(np.int64) * _KEY + day, side="right") - 1
    return running[found]


def _new_payees(rng: np.random.Generator, events: Events, rows: np.ndarray, seen_numbers: np.ndarray) -> Events:
    """Payments to unseen accounts, 3-6 times the account's largest payment up to that day."""
    account, day = events.account[rows], events.day[rows]
    low, high = NEW_PAYEE_FACTORS
    largest = _largest_payment_until(events, account, day)
    amount = np.rint(largest * rng.uniform(low, high, size=len(rows)) / 10) * 10
    return make_events(
        account,
        day,
        PAYMENT,
        DEBIT,
        OUTGOING,
        NO_SYMBOL,
        amount,
        rng.integers(0, len(cal.BANKS), size=len(rows)),
        unseen_numbers(rng, seen_numbers, len(rows)),
        sub=2,
        label=NEW_PAYEE,
    )


def _bursts(rng: np.random.Generator, events: Events, count: int) -> Events:
    """`count` bursts of 4-8 cash withdrawals on a day an account already withdrew cash."""
    withdrawals = np.flatnonzero((events.operation == WITHDRAWAL) & (events.k_symbol == NO_SYMBOL))
    if not len(withdrawals) or not count:
        return events.take(np.zeros(0, dtype=np.int64))
    picked = rng.choice(withdrawals, size=min(len(withdrawals), count * 2), replace=False)
    _, unique = np.unique(events.account[picked].astype(np.int64) * _KEY + events.day[picked], return_index=True)
    picked = picked[np.sort(unique)][:count]
    low, high = BURST_SIZES
    sizes = rng.integers(low, high + 1, size=len(picked))
    source = np.repeat(picked, sizes)
    amount = np.rint(rng.uniform(*BURST_AMOUNTS, size=len(source)) / 100) * 1000
    return make_events(
        events.account[source], events.day[source], SPENDING, DEBIT, WITHDRAWAL, NO_SYMBOL, amount, sub=3, label=BURST
    )


def _inflate(rng: np.random.Generator, events: Events, rows: np.ndarray) -> Events:
    """The events with the amounts of `rows` multiplied by 10 (or 100) and labelled."""
    small, large = WRONG_FACTORS
    factors = np.where(rng.random(len(rows)) < WRONG_HUNDRED_SHARE, large, small)
    amount, label = events.amount.copy(), events.label.copy()
    amount[rows] *= factors
    label[rows] = WRONG_AMOUNT
    return events.with_values(amount=amount, label=label)


def _duplicates(events: Events, rows: np.ndarray) -> Events:
    """Labelled copies of `rows`, posted right after their originals."""
    return events.take(rows).with_values(
        sub=np.ones(len(rows), np.int8), label=np.full(len(rows), DUPLICATE_POSTING, np.int8)
    )


def inject(rng: np.random.Generator, events: Events, rate: float, window: Window, orders: Orders) -> Injected:
    """Events with about `rate` of their count turned into labelled anomalies (all but ledger breaks)."""
    per_kind = rows_per_kind(rate, len(events))
    nothing = np.zeros(0, dtype=np.int64)
    if not per_kind:
        return Injected(events, nothing, nothing)
    payments = rng.permutation(np.flatnonzero(events.order >= 0))
    missing = _missing_bills(events, payments, window, orders.first, per_kind)
    used = np.zeros(len(events), dtype=bool)
    used[missing] = True
    duplicated = payments[~used[payments]][:per_kind]
    used[duplicated] = True
    wrong = _wrong_amounts(
        rng, events, np.flatnonzero(~used & ((events.order >= 0) | (events.operation == INCOMING))), per_kind
    )
    used[wrong] = True
    changed = _inflate(rng, events, wrong)
    payee_pool = payments[~used[payments] & ~np.isin(events.account[payments], events.account[wrong])]
    seen = np.concatenate([events.number[events.number >= 0], orders.number])
    kept = np.ones(len(events), dtype=bool)
    kept[missing] = False
    parts = [
        changed.take(kept),
        _duplicates(changed, duplicated),
        _new_payees(rng, changed, payee_pool[:per_kind], seen),
        _bursts(rng, changed, max(1, round(per_kind / np.mean(BURST_SIZES)))),
    ]
    excess = changed.take(wrong).signed() - events.take(wrong).signed()
    corrections = [
        _corrections(rng, events.account[wrong], events.day[wrong], excess, ERROR_CORRECTION_DAYS, window),
        _corrections(rng, *_totals(parts[1]), ERROR_CORRECTION_DAYS, window),
        _corrections(rng, *_totals(parts[2]), FRAUD_REFUND_DAYS, window),
        _corrections(rng, *_totals(parts[3]), FRAUD_REFUND_DAYS, window),
    ]
    return Injected(Events.concat(parts + corrections), events.account[missing], events.day[missing])


def _totals(events: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Account, day and signed total of each (account, day) among `events`."""
    key = events.account.astype(np.int64) * _KEY + events.day
    keys, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    totals = np.bincount(inverse, weights=events.signed(), minlength=len(keys)).astype(np.int64)
    return events.account[first], events.day[first], totals


def _corrections(
    rng: np.random.Generator,
    account: np.ndarray,
    day: np.ndarray,
    excess: np.ndarray,
    delays: tuple[int, int],
    window: Window,
) -> Events:
    """Bank-internal postings taking back each signed `excess` (a credit where too much was debited)
    `delays` days later, at the latest on the window's last day."""
    low, high = delays
    when = np.minimum(day + rng.integers(low, high + 1, size=len(day)), window.last_day)
    type_ = np.where(excess < 0, CREDIT, DEBIT)
    return make_events(account, when, CORRECTION, type_, NO_OPERATION, NO_SYMBOL, np.abs(excess), sub=4)


def break_ledger(
    rng: np.random.Generator, balance: np.ndarray, label: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shifts the balance of `count` unlabelled rows, labelling them; returns new balance and labels."""
    free = np.flatnonzero(label == NO_LABEL)
    rows = rng.choice(free, size=min(count, len(free)), replace=False)
    shift = rng.integers(*LEDGER_SHIFTS, size=len(rows)) * 10 * rng.choice((-1, 1), size=len(rows))
    balance, label = balance.copy(), label.copy()
    balance[rows] += shift
    label[rows] = LEDGER_BREAK
    return balance, label
