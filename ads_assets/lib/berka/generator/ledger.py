"""Monthly transactions of every account, month by month, with balance-dependent month-end postings.

Each month is built for all accounts at once: credits (opening deposit, salary or pension, cash
deposits), standing-order payments, card and cash withdrawals sized from the money available,
then the month-end statement fee, interest on the average balance and sanction interest when the
balance went below zero.
"""

from __future__ import annotations

import numpy as np

from . import calibration as cal
from .events import (
    CARD,
    CASH,
    CREDIT,
    CREDITED,
    DEBIT,
    DEPOSIT,
    FEE,
    INCOME,
    INCOMING,
    INTEREST,
    NO_OPERATION,
    NO_SYMBOL,
    OPENING,
    OUTGOING,
    PAYMENT,
    PENALTY,
    PENSION,
    SANCTION,
    SPENDING,
    STATEMENT,
    WITHDRAWAL,
    Events,
    make_events,
)
from .months import Window
from .population import CASH_EARNER, PENSIONER, Accounts, Orders, Population, quantile_draw

_FEES = np.rint(np.asarray(cal.STATEMENT_FEES) * 10).astype(np.int64)


class Month:
    """One month of the window: its first day number, length, calendar month and open accounts."""

    def __init__(self, window: Window, index: int, accounts: Accounts) -> None:
        self.index = index
        self.start = int(window.starts[index])
        self.length = int(window.lengths[index])
        self.month_of_year = int(window.months_of_year[index])
        self.open = np.flatnonzero(accounts.open_month <= index)
        opened_now = accounts.open_month[self.open] == index
        self.first_dom = np.where(opened_now, accounts.open_dom[self.open], 1)
        self.age = index - accounts.open_month[self.open]

    def days(self, rng: np.random.Generator, first_dom: np.ndarray) -> np.ndarray:
        """A random day number of this month on or after each `first_dom`."""
        span = self.length - first_dom + 1
        return self.start + first_dom - 1 + (rng.random(len(first_dom)) * span).astype(np.int64)

    def share_open(self) -> np.ndarray:
        """Share of the month each open account is open for."""
        return (self.length - self.first_dom + 1) / self.length


def rounded(rng: np.random.Generator, tenths: np.ndarray, hundred_share: float) -> np.ndarray:
    """Amounts rounded to whole hundreds of crowns in `hundred_share` of cases, else to tens."""
    unit = np.where(rng.random(len(tenths)) < hundred_share, 1000, 100)
    return np.maximum(unit, np.rint(tenths / unit) * unit).astype(np.int64)


def opening_deposits(rng: np.random.Generator, month: Month, accounts: Accounts) -> Events:
    """The first deposit of every account opened this month, on its opening day."""
    new = month.open[month.age == 0]
    amount = rng.choice(cal.INITIAL_DEPOSITS, size=len(new)) * 10
    return make_events(new, accounts.open_day[new], OPENING, CREDIT, DEPOSIT, NO_SYMBOL, amount)


def incomes(month: Month, accounts: Accounts) -> Events:
    """Pensions (DUCHOD) and salaries credited from the payer's bank account on their fixed day."""
    paid = month.open[
        (accounts.income_kind[month.open] != CASH_EARNER) & (accounts.income_start[month.open] <= month.index)
    ]
    day = month.start + np.minimum(accounts.income_dom[paid], month.length) - 1
    symbol = np.where(accounts.income_kind[paid] == PENSIONER, PENSION, NO_SYMBOL)
    return make_events(
        paid,
        day,
        INCOME,
        CREDIT,
        INCOMING,
        symbol,
        accounts.income_amount[paid],
        accounts.income_bank[paid],
        accounts.income_number[paid],
    )


def _deposit_amounts(rng: np.random.Generator, level: np.ndarray, spread: float) -> np.ndarray:
    """Cash deposits around `level` (tenths), rounded as people round them."""
    amount = level * rng.lognormal(0.0, spread, size=len(level))
    (hundreds, hundred_share), (tens, ten_share) = cal.DEPOSIT_ROUNDING
    unit = np.select(
        [rng.random(len(level)) < hundred_share, rng.random(len(level)) < ten_share], [hundreds * 10, tens * 10], 10
    )
    return np.maximum(100, np.rint(amount / unit) * unit).astype(np.int64)


def cash_deposits(rng: np.random.Generator, month: Month, accounts: Accounts) -> Events:
    """A regular monthly deposit on the account's day, when it comes, and occasional other ones."""
    rate = accounts.deposit_rate[month.open]
    regular_share = np.minimum(rate, cal.REGULAR_DEPOSIT_SHARE)
    dom = accounts.deposit_dom[month.open]
    regular = np.flatnonzero((rng.random(len(month.open)) < regular_share) & (dom >= month.first_dom))
    funding = np.where(month.age == 1, cal.SECOND_MONTH_DEPOSITS, 0.0)
    extra_rate = (rate - regular_share) * month.share_open() + funding
    extra = np.repeat(np.arange(len(month.open)), rng.poisson(extra_rate))
    level = accounts.deposit_level[month.open]
    small = rng.random(len(extra)) < cal.SMALL_DEPOSIT_SHARE
    extra_level = np.where(small, level[extra] * rng.uniform(0.05, 0.4, size=len(extra)), level[extra])
    return Events.concat(
        [
            make_events(
                month.open[regular],
                month.start + np.minimum(dom[regular], month.length) - 1,
                INCOME,
                CREDIT,
                DEPOSIT,
                NO_SYMBOL,
                _deposit_amounts(rng, level[regular], cal.REGULAR_DEPOSIT_SPREAD),
            ),
            make_events(
                month.open[extra],
                month.days(rng, month.first_dom[extra]),
                INCOME,
                CREDIT,
                DEPOSIT,
                NO_SYMBOL,
                _deposit_amounts(rng, extra_level, cal.DEPOSIT_SPREAD),
            ),
        ]
    )


def order_payments(month: Month, orders: Orders) -> Events:
    """One payment of every standing order due this month, on its day."""
    due = np.flatnonzero((orders.first <= month.index) & (orders.last >= month.index))
    day = month.start + np.minimum(orders.dom[due], month.length) - 1
    return make_events(
        orders.account[due],
        day,
        PAYMENT,
        DEBIT,
        OUTGOING,
        orders.trans_k_symbol[due],
        orders.amount[due],
        orders.bank[due],
        orders.number[due],
        due,
    )


def _card_withdrawals(rng: np.random.Generator, month: Month, accounts: Accounts) -> Events:
    """Card withdrawals of card holders, from the day the card is issued."""
    holder = accounts.card_month[month.open] <= month.index
    issued_now = accounts.card_month[month.open] == month.index
    issue_dom = accounts.card_day[month.open] - month.start + 1
    first_dom = np.where(issued_now, np.maximum(month.first_dom, issue_dom), month.first_dom)
    share = (month.length - first_dom + 1) / month.length
    count = rng.poisson(np.where(holder, cal.CARD_WITHDRAWALS_PER_MONTH * share, 0.0))
    who = np.repeat(np.arange(len(month.open)), count)
    low, high = cal.CARD_WITHDRAWAL_AMOUNTS
    amount = np.rint(rng.uniform(low, high, size=len(who)) / 10) * 100
    return make_events(month.open[who], month.days(rng, first_dom[who]), SPENDING, DEBIT, CARD, NO_SYMBOL, amount)


def _cash_type_withdrawals(rng: np.random.Generator, month: Month, accounts: Accounts, money: Money) -> Events:
    """Occasional large withdrawals of type VYBER by accounts that can afford the largest of them."""
    active = accounts.activation[month.open] <= month.index
    amount = np.rint(quantile_draw(rng, cal.TYPE_VYBER_AMOUNTS, len(month.open))) * 10
    spare = money.available - money.reserve(accounts, month, cal.TYPE_VYBER_RESERVE)
    wealthy = spare >= cal.TYPE_VYBER_AMOUNTS[-1] * 10
    wanted = active & wealthy & (rng.random(len(month.open)) < cal.TYPE_VYBER_PER_MONTH)
    chosen = np.flatnonzero(wanted)
    day = month.days(rng, money.first_safe_dom(month, chosen, amount[chosen]))
    return make_events(month.open[chosen], day, SPENDING, CASH, WITHDRAWAL, NO_SYMBOL, amount[chosen])


def statement_fees(rng: np.random.Generator, month: Month, accounts: Accounts) -> Events:
    """The month-end statement fee (SLUZBY) of active accounts."""
    due = (accounts.activation[month.open] <= month.index) & (rng.random(len(month.open)) < cal.STATEMENT_FEE_SHARE)
    charged = month.open[due]
    day = np.full(len(charged), month.start + month.length - 1)
    amount = _FEES[accounts.frequency[charged]]
    return make_events(charged, day, STATEMENT, DEBIT, WITHDRAWAL, FEE, amount)


class Money:
    """What each open account can spend this month: `secure` is there all month (opening balance
    less the month's payments), `available` once the month's credits are in, from `credit_dom` on."""

    def __init__(self, month: Month, balance: np.ndarray, planned: list[Events]) -> None:
        size = len(balance)
        credits, debits = np.zeros(size), np.zeros(size)
        credit_dom = np.full(size, month.length)
        for part in planned:
            credit = part.type == CREDIT
            credits += np.bincount(part.account[credit], weights=part.amount[credit], minlength=size)
            debits += np.bincount(part.account[~credit], weights=part.amount[~credit], minlength=size)
            np.minimum.at(credit_dom, part.account[credit], part.day[credit] - month.start + 1)
        self.secure = (balance - debits)[month.open]
        self.available = (balance + credits - debits)[month.open]
        self.credit_dom = credit_dom[month.open]

    def spend(self, taken: np.ndarray) -> None:
        """Takes `taken` (per open account) off what is left."""
        self.secure = self.secure - taken
        self.available = self.available - taken

    @staticmethod
    def reserve(accounts: Accounts, month: Month, share: float) -> np.ndarray:
        """What withdrawals leave: `share` of the target balance and next month's standing orders."""
        return share * accounts.target_balance[month.open] + accounts.fixed_payments[month.open]

    def first_safe_dom(self, month: Month, who: np.ndarray, amount: np.ndarray) -> np.ndarray:
        """First day-of-month on which `who` can take out `amount` without going negative."""
        return np.where(
            amount > self.secure[who], np.maximum(month.first_dom[who], self.credit_dom[who]), month.first_dom[who]
        )


def _cash_withdrawals(
    rng: np.random.Generator, month: Month, accounts: Accounts, balance: np.ndarray, money: Money
) -> Events:
    """Cash withdrawals of about the account's typical size, larger when the balance is above its
    target and smaller below, leaving part of the target balance in the account."""
    ramp = np.asarray(cal.WITHDRAWAL_AGE_RAMP)
    age_factor = np.where(month.age < len(ramp), ramp[np.minimum(month.age, len(ramp) - 1)], 1.0)
    season = cal.WITHDRAWAL_SEASON[month.month_of_year - 1]
    rate = accounts.withdrawal_rate[month.open] * age_factor * season * month.share_open()
    spare = money.available - money.reserve(accounts, month, cal.WITHDRAWAL_RESERVE)
    count = np.where(spare >= 1000, rng.poisson(rate), 0)
    who = np.repeat(np.arange(len(month.open)), count)
    target = np.maximum(accounts.target_balance[month.open], 1000.0)
    low, high = cal.BALANCE_PULL_LIMITS
    pull = np.clip(np.exp(cal.BALANCE_PULL * (balance[month.open] - target) / target), low, high)
    size = accounts.withdrawal_size[month.open] * pull / season
    wanted = size[who] * rng.lognormal(0.0, cal.WITHDRAWAL_SPREAD, size=len(who))
    total = np.bincount(who, weights=wanted, minlength=len(month.open))
    scale = np.minimum(1.0, np.maximum(spare, 0.0) / np.maximum(total, 1.0))
    amount = rounded(rng, wanted * scale[who], cal.ROUND_HUNDRED_SHARE)
    first_dom = money.first_safe_dom(month, who, (total * scale)[who])
    return make_events(month.open[who], month.days(rng, first_dom), SPENDING, DEBIT, WITHDRAWAL, NO_SYMBOL, amount)


def _spending(
    rng: np.random.Generator, month: Month, accounts: Accounts, balance: np.ndarray, planned: list[Events]
) -> list[Events]:
    """Withdrawals from what the month's other postings leave."""
    money = Money(month, balance, planned)
    large = _cash_type_withdrawals(rng, month, accounts, money)
    money.spend(np.bincount(large.account, weights=large.amount, minlength=len(accounts))[month.open])
    return [large, _cash_withdrawals(rng, month, accounts, balance, money)]


def intramonth(events: Events, opening: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and closing balance of every account over the month's events."""
    order = np.lexsort((events.seq, events.day, events.account))
    account = events.account[order]
    signed = events.signed()[order]
    closing = opening + np.bincount(account, weights=signed, minlength=len(opening)).astype(np.int64)
    lowest = np.minimum(opening, closing)
    if len(account):
        totals = np.cumsum(signed)
        starts = np.flatnonzero(np.concatenate(([True], account[1:] != account[:-1])))
        offsets = np.repeat(totals[starts] - signed[starts], np.diff(np.append(starts, len(account))))
        running = opening[account] + totals - offsets
        np.minimum.at(lowest, account, running)
    return lowest, closing


def month_end(
    rng: np.random.Generator,
    month: Month,
    accounts: Accounts,
    opening: np.ndarray,
    lowest: np.ndarray,
    closing: np.ndarray,
) -> Events:
    """Interest on the average balance and sanction interest on the deepest overdraft."""
    last_day = month.start + month.length - 1
    open_ = month.open
    average = (opening[open_] + closing[open_]) / 2
    allowed = np.where(
        month.age == 0,
        accounts.open_dom[open_] <= cal.INTEREST_FIRST_MONTH_LAST_DAY,
        (month.age > cal.INTEREST_YOUNG_AGE) | (rng.random(len(open_)) < cal.INTEREST_YOUNG_SHARE),
    )
    interest = np.rint(np.maximum(average, 0) * cal.INTEREST_RATE).astype(np.int64)
    credited = allowed & (interest > 0)
    overdraft = np.minimum(lowest[open_], 0)
    sanction = np.maximum(np.rint(-overdraft * cal.SANCTION_RATE), 1).astype(np.int64)
    penalised = overdraft < 0
    return Events.concat(
        [
            make_events(open_[credited], last_day, CREDITED, CREDIT, NO_OPERATION, INTEREST, interest[credited]),
            make_events(open_[penalised], last_day, PENALTY, DEBIT, WITHDRAWAL, SANCTION, sanction[penalised]),
        ]
    )


def _simulate_month(
    rng: np.random.Generator, window: Window, index: int, population: Population, balance: np.ndarray
) -> tuple[Events, np.ndarray]:
    """The month's transactions and each account's closing balance."""
    accounts = population.accounts
    month = Month(window, index, accounts)
    planned = [
        opening_deposits(rng, month, accounts),
        incomes(month, accounts),
        cash_deposits(rng, month, accounts),
        order_payments(month, population.orders),
        _card_withdrawals(rng, month, accounts),
        statement_fees(rng, month, accounts),
    ]
    events = Events.concat(planned + _spending(rng, month, accounts, balance, planned))
    lowest, closing = intramonth(events, balance)
    closing_events = month_end(rng, month, accounts, balance, lowest, closing)
    events = Events.concat([events, closing_events])
    return events, closing + np.bincount(
        closing_events.account, weights=closing_events.signed(), minlength=len(balance)
    ).astype(np.int64)


def simulate(rng: np.random.Generator, window: Window, population: Population) -> Events:
    """All transactions of the population over the window, in no particular order."""
    balance = np.zeros(len(population.accounts), dtype=np.int64)
    months = []
    for index in range(window.months):
        events, balance = _simulate_month(rng, window, index, population, balance)
        months.append(events)
    return Events.concat(months)
