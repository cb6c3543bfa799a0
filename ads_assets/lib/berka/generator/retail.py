"""The retail shape: customers paying merchants tens of times a month, with labelled retail frauds.

Accounts, owners, standing orders, loans and cards come from `population.py`; the monthly credits
(salary, pension, cash deposits), standing-order payments, statement fees and month-end interest
(and sanction interest) from `ledger.py`. What differs is the spending:

- Merchants: 6 per account, at least 300 and at most 5,000, each with a bank and account number no
  other counterparty has. Popularity is Zipf-like (share ~ 1 / rank^0.8, the most popular one takes
  about 5% of all payments); each has a price level, lognormal around 150 CZK (spread 0.6), a little
  lower for the popular ones (supermarkets) than for the rare ones.
- Payments: 15-60 a month per customer (about 30 for the median income, more for higher incomes),
  posted like Berka transfers: VYDAJ / PREVOD NA UCET, empty k_symbol, the merchant's bank and account
  as counterparty. A customer has 12 favourite merchants (drawn by popularity, paid with Zipf weights,
  the first about a third of the time) that take 55-85% of its payments; the rest go to merchants
  drawn by popularity from the whole population, so it pays merchants new to it every week. A payment
  is the merchant's price level x the customer's spending scale (from its income, 0.3-3) x
  lognormal(0, 0.35), in whole crowns: a median of about 100 CZK, mostly between 20 and 600.
- Cash: about 0.8 withdrawals (VYDAJ / VYBER) a month, in round amounts, larger when the balance is
  above the account's target, so balances hover around it.
- Payments and withdrawals are thinned to the money the month leaves (opening balance, credits, less
  standing orders and fees and a reserve; payments capped exactly at it), and where the opening balance
  cannot carry them, payments wait for the month's last credit and withdrawals for its first, so few
  debits leave an account below zero (about 0.05%; 0.3% in the real Berka extract).

Frauds: `anomaly_rate` of the transactions end up labelled, about a third for each kind.

- `compromised_merchant`: a popular merchant's card terminal is rigged for 2-5 weeks: every payment to
  it in that time is charged at 1.5-4x the price of the purchase, and a quarter of those payments are
  charged a second time (again 1.5-4x the purchase) the next day. Every payment to it in the window is
  labelled (at least 5 customers' worth); nobody refunds these small sums.
- `compromised_customer`: an account is taken over for 2-5 days: from the day of one of its own
  payments on, 3-8 payments a day to merchants it never paid, each 3-8x its median payment, until 80%
  of the balance it had is spent (the bank declines the rest); each one labelled. 3-10 days after the
  last one the bank refunds their total (PRIJEM with empty operation and k_symbol, unlabelled).
- `large_amount`: one of a customer's payments posted at 5-20x its median payment (rounded up to whole
  crowns), labelled; the money is gone for good, so only where the account can afford it: its
  balance stays above zero after it and for the rest of the window, with room to spare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import calibration as cal
from .anomalies import rows_per_kind
from .events import (
    COMPROMISED_CUSTOMER,
    COMPROMISED_MERCHANT,
    CORRECTION,
    CREDIT,
    DEBIT,
    LARGE_AMOUNT,
    NO_LABEL,
    NO_OPERATION,
    NO_SYMBOL,
    OUTGOING,
    RETAIL_LABEL_KINDS,
    SPENDING,
    WITHDRAWAL,
    Events,
    chronological,
    make_events,
    running_balances,
)
from .ledger import (
    Money,
    Month,
    cash_deposits,
    incomes,
    intramonth,
    month_end,
    opening_deposits,
    order_payments,
    rounded,
    statement_fees,
)
from .months import Window
from .population import Accounts, Population, shares, unseen_numbers

MERCHANTS_PER_ACCOUNT = 6
MERCHANT_LIMITS = (300, 5000)
ZIPF_EXPONENT = 0.8
PRICE_MEDIAN = 150.0
"""CZK; merchant price levels are lognormal around it."""
PRICE_SPREAD = 0.6
PRICE_RANK_ELASTICITY = 0.1
"""Price level grows as rank^this: popular merchants are a little cheaper."""

FAVOURITES = 12
FAVOURITE_EXPONENT = 1.0
LOYALTY = (0.55, 0.85)
"""Share of a customer's payments that go to its favourite merchants."""
PAYMENTS_PER_MONTH = (15, 60)
PAYMENTS_MEDIAN = 30.0
PAYMENTS_ELASTICITY = 0.3
"""Customers with a larger budget pay more often: rate ~ (budget / median budget)^this."""
PAYMENT_SPREAD = 0.35
SCALE_LIMITS = (0.3, 3.0)
MIN_PAYMENT = 5.0
"""CZK."""
RETAIL_SHARE = 0.5
CASH_SHARE = 0.3
"""Shares of the disposable income (credits less standing orders and fees) paid to merchants and
taken out in cash; the rest is saved until the balance reaches its target."""
PAYMENT_RESERVE = 0.05
CASH_RESERVE = 0.3
"""Shares of the target balance that payments and cash withdrawals leave in the account."""
CASH_PER_MONTH = 0.8
CASH_SPREAD = 0.6
MIN_CASH = 100.0
"""CZK; no withdrawal when less than this is spare."""

MERCHANT_FRAUD_DAYS = (14, 35)
MERCHANT_FRAUD_FACTORS = (1.5, 4.0)
MERCHANT_FRAUD_EXTRA_SHARE = 0.25
MERCHANT_FRAUD_MIN_CUSTOMERS = 5
MERCHANT_FRAUD_CANDIDATES = 400
TAKEOVER_DAYS = (2, 5)
TAKEOVER_PER_DAY = (3, 8)
TAKEOVER_FACTORS = (3.0, 8.0)
TAKEOVER_BALANCE_SHARE = 0.8
TAKEOVER_MIN_ROWS = 5
TAKEOVER_REFUND_DELAY = (3, 10)
LARGE_FACTORS = (5.0, 20.0)
LARGE_COVER = 2.0
"""A large payment is placed only where the balance after it and all later ones stays at least this
many times its increase over the payment it replaces (before the increase)."""
LARGE_TRIES = 20
"""Candidate payments tried per large payment wanted."""


@dataclass(frozen=True)
class Merchants:
    """Index = merchant; numbers ascending (so a counterparty number finds its merchant)."""

    bank: np.ndarray
    number: np.ndarray
    price: np.ndarray
    """Price level, tenths of a crown."""
    popularity: np.ndarray
    """Share of the payments that do not go to favourites."""

    def __len__(self) -> int:
        return len(self.number)

    def index_of(self, number: np.ndarray) -> np.ndarray:
        """The merchant with each counterparty account number, -1 for other numbers."""
        position = np.minimum(np.searchsorted(self.number, number), len(self.number) - 1)
        return np.where(self.number[position] == number, position, -1)

    def draw(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Merchants drawn by popularity."""
        cumulative = np.cumsum(self.popularity)
        return np.minimum(np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side="right"), len(self) - 1)


@dataclass(frozen=True)
class Shoppers:
    """Per-account spending habits, index = account; money in tenths of a crown."""

    rate: np.ndarray
    scale: np.ndarray
    typical: np.ndarray
    """Expected payment."""
    favourites: np.ndarray
    """(accounts, FAVOURITES) merchants, most often paid first."""
    loyalty: np.ndarray
    cash_rate: np.ndarray
    cash_size: np.ndarray


_FAVOURITE_CUMULATIVE = np.cumsum(shares(1.0 / np.arange(1, FAVOURITES + 1) ** FAVOURITE_EXPONENT))


def draw_merchants(rng: np.random.Generator, accounts: int, taken: np.ndarray) -> Merchants:
    """A few thousand merchants with account numbers none of `taken` has."""
    count = int(np.clip(MERCHANTS_PER_ACCOUNT * accounts, *MERCHANT_LIMITS))
    rank = rng.permutation(count) + 1.0
    level = PRICE_MEDIAN * 10 * (rank / np.median(rank)) ** PRICE_RANK_ELASTICITY
    return Merchants(
        bank=rng.integers(0, len(cal.BANKS), size=count),
        number=np.sort(unseen_numbers(rng, taken, count)),
        price=level * rng.lognormal(0.0, PRICE_SPREAD, size=count),
        popularity=shares(1.0 / rank**ZIPF_EXPONENT),
    )


def _draw_shoppers(rng: np.random.Generator, accounts: Accounts, merchants: Merchants) -> Shoppers:
    """Budgets from the accounts' expected credits, then payment rates, sizes and favourite merchants."""
    size = len(accounts)
    expected = accounts.income_amount + accounts.deposit_rate * accounts.deposit_level
    fee = np.asarray(cal.STATEMENT_FEES)[accounts.frequency] * 10
    disposable = np.maximum(expected - accounts.fixed_payments - fee, cal.MIN_DISPOSABLE_SHARE * expected)
    budget = RETAIL_SHARE * disposable
    spread = rng.lognormal(0.0, 0.3, size=size)
    rate = np.clip(PAYMENTS_MEDIAN * (budget / np.median(budget)) ** PAYMENTS_ELASTICITY * spread, *PAYMENTS_PER_MONTH)
    mean_price = float(np.sum(merchants.popularity * merchants.price)) * np.exp(PAYMENT_SPREAD**2 / 2)
    scale = np.clip(budget / (rate * mean_price), *SCALE_LIMITS)
    cash_rate = np.maximum(rng.gamma(2.0, CASH_PER_MONTH / 2, size=size), 0.2)
    return Shoppers(
        rate=rate,
        scale=scale,
        typical=scale * mean_price,
        favourites=merchants.draw(rng, (size, FAVOURITES)),
        loyalty=rng.uniform(*LOYALTY, size=size),
        cash_rate=cash_rate,
        cash_size=CASH_SHARE * disposable / cash_rate / np.exp(CASH_SPREAD**2 / 2),
    )


def _merchants_paid(
    rng: np.random.Generator, shoppers: Shoppers, merchants: Merchants, account: np.ndarray
) -> np.ndarray:
    """The merchant of each payment: a favourite (by rank weight) or one drawn by popularity."""
    size = len(account)
    loyal = rng.random(size) < shoppers.loyalty[account]
    rank = np.minimum(np.searchsorted(_FAVOURITE_CUMULATIVE, rng.random(size), side="right"), FAVOURITES - 1)
    return np.where(loyal, shoppers.favourites[account, rank], merchants.draw(rng, size))


def _within_groups(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running totals of `values` restarting at each new `group` (groups contiguous)."""
    totals = np.cumsum(values)
    if not len(totals):
        return totals
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    return totals - np.repeat(totals[starts] - values[starts], np.diff(np.append(starts, len(group))))


def _last_credit_dom(month: Month, planned: list[Events], size: int) -> np.ndarray:
    """Day of the month of each open account's last credit this month (1 when none)."""
    last = np.ones(size, dtype=np.int64)
    for part in planned:
        credit = part.type == CREDIT
        np.maximum.at(last, part.account[credit], part.day[credit] - month.start + 1)
    return last[month.open]


def _payments(
    rng: np.random.Generator,
    month: Month,
    accounts: Accounts,
    shoppers: Shoppers,
    merchants: Merchants,
    money: Money,
    paid_in: np.ndarray,
) -> Events:
    """The month's merchant payments, thinned and capped to the money the month leaves; from the day
    the month's credits are all in (`paid_in`) where the opening balance cannot carry them."""
    open_ = month.open
    spare = np.maximum(money.available - money.reserve(accounts, month, PAYMENT_RESERVE), 0.0)
    wanted = rng.poisson(shoppers.rate[open_] * month.share_open())
    keep = np.clip(spare / np.maximum(wanted * shoppers.typical[open_], 1.0), 0.0, 1.0)
    who = np.repeat(np.arange(len(open_)), rng.binomial(wanted, keep))
    account = open_[who]
    merchant = _merchants_paid(rng, shoppers, merchants, account)
    tenths = merchants.price[merchant] * shoppers.scale[account] * rng.lognormal(0.0, PAYMENT_SPREAD, size=len(who))
    amount = np.maximum(np.rint(tenths / 10) * 10, MIN_PAYMENT * 10).astype(np.int64)
    affordable = _within_groups(who, amount) <= spare[who]
    who, merchant, amount = who[affordable], merchant[affordable], amount[affordable]
    total = np.bincount(who, weights=amount, minlength=len(open_))
    carried = total[who] <= money.secure[who]
    first_dom = np.where(carried, month.first_dom[who], np.maximum(month.first_dom[who], paid_in[who]))
    money.spend(total)
    return make_events(
        open_[who],
        month.days(rng, first_dom),
        SPENDING,
        DEBIT,
        OUTGOING,
        NO_SYMBOL,
        amount,
        merchants.bank[merchant],
        merchants.number[merchant],
    )


def _cash(
    rng: np.random.Generator, month: Month, accounts: Accounts, shoppers: Shoppers, balance: np.ndarray, money: Money
) -> Events:
    """Cash withdrawals, larger when the balance is above its target, within what is spare."""
    open_ = month.open
    spare = money.available - money.reserve(accounts, month, CASH_RESERVE)
    count = np.where(spare >= MIN_CASH * 10, rng.poisson(shoppers.cash_rate[open_] * month.share_open()), 0)
    who = np.repeat(np.arange(len(open_)), count)
    target = np.maximum(accounts.target_balance[open_], 1000.0)
    pull = np.clip(np.exp(cal.BALANCE_PULL * (balance[open_] - target) / target), *cal.BALANCE_PULL_LIMITS)
    wanted = (shoppers.cash_size[open_] * pull)[who] * rng.lognormal(0.0, CASH_SPREAD, size=len(who))
    total = np.bincount(who, weights=wanted, minlength=len(open_))
    scale = np.minimum(1.0, np.maximum(spare, 0.0) / np.maximum(total, 1.0))
    amount = rounded(rng, wanted * scale[who], cal.ROUND_HUNDRED_SHARE)
    day = month.days(rng, money.first_safe_dom(month, who, (total * scale)[who]))
    return make_events(open_[who], day, SPENDING, DEBIT, WITHDRAWAL, NO_SYMBOL, amount)


def _simulate_month(
    rng: np.random.Generator,
    window: Window,
    index: int,
    population: Population,
    shoppers: Shoppers,
    merchants: Merchants,
    balance: np.ndarray,
) -> tuple[Events, np.ndarray]:
    """The month's transactions and each account's closing balance."""
    accounts = population.accounts
    month = Month(window, index, accounts)
    planned = [
        opening_deposits(rng, month, accounts),
        incomes(month, accounts),
        cash_deposits(rng, month, accounts),
        order_payments(month, population.orders),
        statement_fees(rng, month, accounts),
    ]
    money = Money(month, balance, planned)
    paid_in = _last_credit_dom(month, planned, len(balance))
    payments = _payments(rng, month, accounts, shoppers, merchants, money, paid_in)
    events = Events.concat([*planned, payments, _cash(rng, month, accounts, shoppers, balance, money)])
    lowest, closing = intramonth(events, balance)
    closing_events = month_end(rng, month, accounts, balance, lowest, closing)
    closing = closing + np.bincount(closing_events.account, weights=closing_events.signed(), minlength=len(balance))
    return Events.concat([events, closing_events]), closing.astype(np.int64)


def simulate_retail(rng: np.random.Generator, window: Window, population: Population, rate: float) -> Events:
    """All transactions of the population over the window in chronological order, with `rate` of
    them turned into labelled retail frauds."""
    accounts = population.accounts
    taken = np.concatenate([accounts.income_number, population.orders.number])
    merchants = draw_merchants(rng, len(accounts), taken)
    shoppers = _draw_shoppers(rng, accounts, merchants)
    balance = np.zeros(len(accounts), dtype=np.int64)
    months = []
    for index in range(window.months):
        events, balance = _simulate_month(rng, window, index, population, shoppers, merchants, balance)
        months.append(events)
    events = Events.concat(months)
    events = events.take(chronological(events))
    per_kind = rows_per_kind(rate, len(events), len(RETAIL_LABEL_KINDS))
    if per_kind:
        events = _inject(rng, events, window, merchants, per_kind)
        events = events.take(chronological(events))
    return events


@dataclass(frozen=True)
class _Ledger:
    """Chronological events before injection with what the frauds are planned from."""

    events: Events
    before: np.ndarray
    """Each row's account balance just before it."""
    merchant: np.ndarray
    """Merchant of each row, -1 for rows that are not merchant payments."""
    usual: np.ndarray
    """Median merchant payment of each account (tenths)."""

    @classmethod
    def of(cls, events: Events, merchants: Merchants) -> _Ledger:
        merchant = np.where(events.type == DEBIT, merchants.index_of(events.number), -1)
        paid = merchant >= 0
        size = int(events.account.max()) + 1 if len(events) else 0
        medians = pd.Series(events.amount[paid]).groupby(events.account[paid]).median()
        fallback = float(np.median(events.amount[paid])) if paid.any() else MIN_PAYMENT * 10
        usual = medians.reindex(np.arange(size), fill_value=fallback).to_numpy(dtype=float)
        signed = events.signed()
        return cls(events, running_balances(events.account, signed) - signed, merchant, usual)


def _crowns(tenths: np.ndarray) -> np.ndarray:
    """Tenths of a crown rounded up to whole crowns."""
    return (np.ceil(np.asarray(tenths) / 10) * 10).astype(np.int64)


def _merchant_windows(rng: np.random.Generator, ledger: _Ledger, used: np.ndarray, need: int) -> list[np.ndarray]:
    """Rows paying a compromised merchant inside its window, one array per merchant, about `need`
    rows in all counting the extra charges."""
    events = ledger.events
    rows = np.flatnonzero((ledger.merchant >= 0) & ~used)
    rows = rows[np.lexsort((events.day[rows], ledger.merchant[rows]))]
    sorted_merchants = ledger.merchant[rows]
    merchants, starts, counts = np.unique(sorted_merchants, return_index=True, return_counts=True)
    tries = min(len(merchants), MERCHANT_FRAUD_CANDIDATES)
    order = rng.choice(len(merchants), size=tries, replace=False, p=counts / counts.sum())
    chosen: list[np.ndarray] = []
    smallest: np.ndarray | None = None
    remaining, slack = float(need), max(need / 4, MERCHANT_FRAUD_MIN_CUSTOMERS)
    for pick in order:
        if remaining <= 0:
            break
        paying = rows[starts[pick] : starts[pick] + counts[pick]]
        days = events.day[paying]
        length = int(rng.integers(MERCHANT_FRAUD_DAYS[0], MERCHANT_FRAUD_DAYS[1] + 1))
        first = int(rng.integers(days[0], max(int(days[-1]) - length + 1, int(days[0])) + 1))
        hit = paying[(days >= first) & (days < first + length)]
        if len(np.unique(events.account[hit])) < MERCHANT_FRAUD_MIN_CUSTOMERS:
            continue
        size = len(hit) * (1 + MERCHANT_FRAUD_EXTRA_SHARE)
        if size > remaining + slack:
            if smallest is None or len(hit) < len(smallest):
                smallest = hit
            continue
        chosen.append(hit)
        remaining -= size
    if not chosen and smallest is not None:
        chosen.append(smallest)
    return chosen


def _compromise_merchants(
    rng: np.random.Generator, ledger: _Ledger, amount: np.ndarray, label: np.ndarray, need: int, last_day: int
) -> Events:
    """Inflates the payments to compromised merchants (in `amount`, labelling them in `label`) and
    returns the extra charges."""
    windows = _merchant_windows(rng, ledger, label != NO_LABEL, need)
    hit = np.concatenate(windows) if windows else np.zeros(0, dtype=np.int64)
    original = amount[hit].copy()
    low, high = MERCHANT_FRAUD_FACTORS
    amount[hit] = _crowns(original * rng.uniform(low, high, size=len(hit)))
    label[hit] = COMPROMISED_MERCHANT
    extra = rng.random(len(hit)) < MERCHANT_FRAUD_EXTRA_SHARE
    charged = hit[extra]
    events = ledger.events
    return make_events(
        events.account[charged],
        np.minimum(events.day[charged] + 1, last_day),
        SPENDING,
        DEBIT,
        OUTGOING,
        NO_SYMBOL,
        _crowns(original[extra] * rng.uniform(low, high, size=len(charged))),
        events.bank[charged],
        events.number[charged],
        sub=1,
        label=COMPROMISED_MERCHANT,
    )


def _takeovers(
    rng: np.random.Generator, ledger: _Ledger, used: np.ndarray, need: int, merchants: Merchants, last_day: int
) -> tuple[Events, Events]:
    """Runs of payments to merchants the account never paid, and the refunds of their totals."""
    events = ledger.events
    paid = ledger.merchant >= 0
    by_account = pd.Series(ledger.merchant[paid]).groupby(events.account[paid]).unique()
    smallest_run = TAKEOVER_MIN_ROWS * TAKEOVER_FACTORS[0] * ledger.usual[events.account] / TAKEOVER_BALANCE_SHARE
    anchors = rng.permutation(np.flatnonzero(paid & ~used & (ledger.before >= smallest_run)))
    runs: list[Events] = []
    refunds: list[Events] = []
    taken: set[int] = set()
    remaining = need
    for anchor in anchors[: max(50, need * 20)]:
        if remaining <= 0:
            break
        account = int(events.account[anchor])
        start = int(events.day[anchor])
        days = int(rng.integers(TAKEOVER_DAYS[0], TAKEOVER_DAYS[1] + 1))
        if account in taken or start + days - 1 > last_day:
            continue
        day = start + np.repeat(np.arange(days), rng.integers(TAKEOVER_PER_DAY[0], TAKEOVER_PER_DAY[1] + 1, size=days))
        amount = _crowns(ledger.usual[account] * rng.uniform(*TAKEOVER_FACTORS, size=len(day)))
        affordable = np.cumsum(amount) <= TAKEOVER_BALANCE_SHARE * ledger.before[anchor]
        count = int(affordable.sum())
        if count < TAKEOVER_MIN_ROWS or day[count - 1] - start + 1 < TAKEOVER_DAYS[0]:
            continue
        day, amount = day[:count], amount[:count]
        unseen = np.setdiff1d(np.arange(len(merchants)), by_account.get(account, np.zeros(0, dtype=np.int64)))
        merchant = rng.choice(unseen, size=count)
        runs.append(
            make_events(
                np.full(count, account),
                day,
                SPENDING,
                DEBIT,
                OUTGOING,
                NO_SYMBOL,
                amount,
                merchants.bank[merchant],
                merchants.number[merchant],
                sub=2,
                label=COMPROMISED_CUSTOMER,
            )
        )
        refund_day = min(
            int(day[-1]) + int(rng.integers(TAKEOVER_REFUND_DELAY[0], TAKEOVER_REFUND_DELAY[1] + 1)), last_day
        )
        refunds.append(
            make_events(
                np.array([account]), refund_day, CORRECTION, CREDIT, NO_OPERATION, NO_SYMBOL, amount.sum(keepdims=True)
            )
        )
        taken.add(account)
        remaining -= count
    empty = events.take(np.zeros(0, dtype=np.int64))
    return Events.concat(runs) if runs else empty, Events.concat(refunds) if refunds else empty


def _large_amounts(rng: np.random.Generator, ledger: _Ledger, amount: np.ndarray, label: np.ndarray, need: int) -> None:
    """Posts `need` payments at 5-20x their account's median payment (in `amount`, labelled in `label`),
    each where the account's balance, less the large payments placed before, stays at least twice its
    increase above zero after it and for the rest of the window."""
    events = ledger.events
    after = ledger.before + events.signed()
    by_account = np.argsort(events.account, kind="stable")
    starts = np.searchsorted(events.account[by_account], np.arange(len(ledger.usual) + 1))
    taken: dict[int, np.ndarray] = {}
    candidates = np.flatnonzero((ledger.merchant >= 0) & (label == NO_LABEL))
    candidates = rng.permutation(candidates)[: need * LARGE_TRIES]
    large = _crowns(ledger.usual[events.account[candidates]] * rng.uniform(*LARGE_FACTORS, size=len(candidates)))
    placed = 0
    for row, new_amount in zip(candidates.tolist(), large.tolist(), strict=True):
        if placed == need:
            break
        account = int(events.account[row])
        rows = by_account[starts[account] : starts[account + 1]]
        later = int(np.searchsorted(rows, row))
        drop = new_amount - int(amount[row])
        spent = taken.setdefault(account, np.zeros(len(rows), dtype=np.int64))
        if (after[rows[later:]] - spent[later:]).min() < LARGE_COVER * drop:
            continue
        spent[later:] += drop
        amount[row] = new_amount
        label[row] = LARGE_AMOUNT
        placed += 1


def _inject(rng: np.random.Generator, events: Events, window: Window, merchants: Merchants, per_kind: int) -> Events:
    """Chronological `events` with about `per_kind` rows of each retail fraud labelled (some of them
    added), plus the refunds of taken-over accounts."""
    ledger = _Ledger.of(events, merchants)
    amount, label = events.amount.copy(), events.label.copy()
    extras = _compromise_merchants(rng, ledger, amount, label, per_kind, window.last_day)
    runs, refunds = _takeovers(rng, ledger, label != NO_LABEL, per_kind, merchants, window.last_day)
    _large_amounts(rng, ledger, amount, label, per_kind)
    return Events.concat([events.with_values(amount=amount, label=label), extras, runs, refunds])
