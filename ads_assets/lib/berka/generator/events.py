"""Transactions as parallel numpy arrays with small integer codes, before they become a frame."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

TYPES: tuple[str, ...] = ("PRIJEM", "VYDAJ", "VYBER")
OPERATIONS: tuple[str | None, ...] = (None, "VYBER KARTOU", "VKLAD", "PREVOD Z UCTU", "VYBER", "PREVOD NA UCET")
K_SYMBOLS: tuple[str | None, ...] = (None, "POJISTNE", "SLUZBY", "UROK", "SANKC. UROK", "SIPO", "DUCHOD", "UVER")

CREDIT, DEBIT, CASH = 0, 1, 2
NO_OPERATION, CARD, DEPOSIT, INCOMING, WITHDRAWAL, OUTGOING = range(6)
NO_SYMBOL, INSURANCE, FEE, INTEREST, SANCTION, HOUSEHOLD, PENSION, LOAN = range(8)

OPENING, INCOME, PAYMENT, SPENDING, STATEMENT, CREDITED, PENALTY = range(7)
CORRECTION = 7
"""Order of an account's postings within one day (`seq`); corrections and refunds come last."""

NO_LABEL = -1
BERKA_LABEL_KINDS: tuple[str, ...] = (
    "wrong_amount",
    "ledger_break",
    "duplicate_posting",
    "burst",
    "new_payee",
    "missing_bill",
)
"""What the default (berka) shape labels."""
RETAIL_LABEL_KINDS: tuple[str, ...] = ("compromised_merchant", "compromised_customer", "large_amount")
"""What the retail shape labels."""
LABEL_KINDS: tuple[str, ...] = BERKA_LABEL_KINDS + RETAIL_LABEL_KINDS
"""Every kind `labels.csv` can carry; `Events.label` indexes this."""
WRONG_AMOUNT, LEDGER_BREAK, DUPLICATE_POSTING, BURST, NEW_PAYEE, MISSING_BILL = range(6)
COMPROMISED_MERCHANT, COMPROMISED_CUSTOMER, LARGE_AMOUNT = range(6, 9)


@dataclass(frozen=True)
class Events:
    """One entry per transaction; amounts are positive tenths of a crown (the sign comes from `type`).

    `account` indexes the generated accounts (account_id - 1), `day` counts days since 1970-01-01,
    `bank` indexes calibration.BANKS (-1: none), `number` is the counterparty account (-1: none),
    `order` indexes the standing orders (-1: not a standing-order payment), `sub` orders injected
    copies after their originals, and `label` is an index into LABEL_KINDS (-1: normal).
    """

    account: np.ndarray
    day: np.ndarray
    seq: np.ndarray
    type: np.ndarray
    operation: np.ndarray
    k_symbol: np.ndarray
    amount: np.ndarray
    bank: np.ndarray
    number: np.ndarray
    order: np.ndarray
    sub: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.account)

    def take(self, index: np.ndarray) -> Events:
        """The entries at `index` (positions or a boolean mask), in that order."""
        return Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_values(self, **arrays: np.ndarray) -> Events:
        """A copy with some arrays replaced."""
        return replace(self, **arrays)

    def signed(self) -> np.ndarray:
        """Amounts with credits positive and debits negative."""
        return np.where(self.type == CREDIT, self.amount, -self.amount)

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        """All entries of `parts`, one after the other."""
        return Events(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Events)})


def make_events(
    account: np.ndarray,
    day: np.ndarray,
    seq: int,
    type_: int,
    operation: int,
    k_symbol: np.ndarray | int,
    amount: np.ndarray,
    bank: np.ndarray | int = -1,
    number: np.ndarray | int = -1,
    order: np.ndarray | int = -1,
    sub: int = 0,
    label: int = NO_LABEL,
) -> Events:
    """Events for parallel arrays, broadcasting the scalar codes."""
    size = len(account)

    def column(value: np.ndarray | int, dtype: type) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype=dtype), (size,)).copy()

    return Events(
        account=column(account, np.int32),
        day=column(day, np.int32),
        seq=column(seq, np.int8),
        type=column(type_, np.int8),
        operation=column(operation, np.int8),
        k_symbol=column(k_symbol, np.int8),
        amount=column(amount, np.int64),
        bank=column(bank, np.int8),
        number=column(number, np.int64),
        order=column(order, np.int32),
        sub=column(sub, np.int8),
        label=column(label, np.int8),
    )


def chronological(events: Events) -> np.ndarray:
    """Positions ordering the entries by day, account, posting order, then original position."""
    return np.lexsort((events.sub, events.seq, events.account, events.day))


def running_balances(account: np.ndarray, signed: np.ndarray) -> np.ndarray:
    """Balance after each entry of chronologically ordered entries, per account, from zero."""
    by_account = np.argsort(account, kind="stable")
    grouped, amounts = account[by_account], signed[by_account]
    totals = np.cumsum(amounts)
    if not len(totals):
        return totals
    starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
    offsets = np.repeat(totals[starts] - amounts[starts], np.diff(np.append(starts, len(grouped))))
    out = np.empty_like(totals)
    out[by_account] = totals - offsets
    return out
