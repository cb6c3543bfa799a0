"""Accounts with their owners, dispositions, cards, loans and standing orders, and how each one lives.

Everything here is drawn once per account; `ledger.py` turns it into monthly transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import RELATIONS, ColumnType
from . import calibration as cal
from .events import HOUSEHOLD, INSURANCE, LOAN, NO_SYMBOL
from .months import Window

PENSIONER, EMPLOYEE, CASH_EARNER = 0, 1, 2
DATE_DTYPE = "datetime64[us]"
_ORDER_K_CODES = {"SIPO": HOUSEHOLD, "POJISTNE": INSURANCE, "LEASING": NO_SYMBOL, None: NO_SYMBOL}


@dataclass(frozen=True)
class Accounts:
    """Per-account arrays, index = account_id - 1; days are day numbers, months window indexes.

    Money is in tenths of a crown. `activation` is the month standing orders and statement fees
    start; `card_month` is the month a card is issued (the window length when there is none).
    """

    district: np.ndarray
    frequency: np.ndarray
    open_day: np.ndarray
    open_month: np.ndarray
    open_dom: np.ndarray
    activation: np.ndarray
    owner_born: np.ndarray
    income_kind: np.ndarray
    income_amount: np.ndarray
    income_dom: np.ndarray
    income_start: np.ndarray
    income_bank: np.ndarray
    income_number: np.ndarray
    deposit_rate: np.ndarray
    deposit_level: np.ndarray
    deposit_dom: np.ndarray
    withdrawal_rate: np.ndarray
    withdrawal_size: np.ndarray
    target_balance: np.ndarray
    fixed_payments: np.ndarray
    card_month: np.ndarray
    card_day: np.ndarray

    def __len__(self) -> int:
        return len(self.district)


@dataclass(frozen=True)
class Orders:
    """Standing orders, index = order_id - 1, loan repayments included (k_symbol UVER).

    Each pays `amount` on day `dom` of every month from `first` to `last` (window indexes).
    """

    account: np.ndarray
    k_symbol: np.ndarray
    trans_k_symbol: np.ndarray
    amount: np.ndarray
    bank: np.ndarray
    number: np.ndarray
    dom: np.ndarray
    first: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.account)


@dataclass(frozen=True)
class Population:
    accounts: Accounts
    orders: Orders
    relations: dict[str, pd.DataFrame]
    """district, account, client, disp, order, loan and card as canonical frames."""


def quantile_draw(rng: np.random.Generator, table: tuple[float, ...], size: int) -> np.ndarray:
    """Draws from the distribution with the given evenly spaced quantiles (linear in between)."""
    return np.interp(rng.random(size), np.linspace(0.0, 1.0, len(table)), table)


def shares(weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Weights scaled to sum to one."""
    array = np.asarray(weights, dtype=float)
    return array / array.sum()


def as_dates(days: np.ndarray) -> np.ndarray:
    """Day numbers as canonical datetimes."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype(DATE_DTYPE)


def account_numbers(rng: np.random.Generator, size: int) -> np.ndarray:
    """Counterparty account numbers as published: up to 8 digits, no leading zeros."""
    return rng.integers(1, cal.ACCOUNT_NUMBER_LIMIT, size=size)


def unseen_numbers(rng: np.random.Generator, seen: np.ndarray, count: int) -> np.ndarray:
    """`count` distinct account numbers none of which is in `seen`."""
    numbers = account_numbers(rng, count)
    while True:
        clash = np.isin(numbers, seen) | _repeated(numbers)
        if not clash.any():
            return numbers
        numbers[clash] = account_numbers(rng, int(clash.sum()))


def _repeated(values: np.ndarray) -> np.ndarray:
    """True for every occurrence of a value after its first."""
    repeated = np.ones(len(values), dtype=bool)
    repeated[np.unique(values, return_index=True)[1]] = False
    return repeated


def _opening_weights(window: Window) -> np.ndarray:
    """Relative number of accounts opened in each window month: the real monthly openings where the
    window overlaps 1993-1998, their mean outside it, uniform if that leaves nothing."""
    index = (window.years - cal.OPENINGS_FIRST_YEAR) * 12 + window.months_of_year - 1
    known = (index >= 0) & (index < len(cal.OPENINGS_PER_MONTH))
    table = np.asarray(cal.OPENINGS_PER_MONTH, dtype=float)
    typical = table[table > 0].mean()
    weights = np.where(known, table[np.clip(index, 0, len(table) - 1)], typical)
    return weights if weights.sum() > 0 else np.ones(window.months)


def _opening_days(rng: np.random.Generator, window: Window, size: int) -> np.ndarray:
    """Opening day of each account, sorted, so account ids follow opening dates."""
    months = rng.choice(window.months, size=size, p=shares(_opening_weights(window)))
    offsets = (rng.random(size) * window.lengths[months]).astype(np.int64)
    return np.sort(window.starts[months] + offsets)


def _birth_days(rng: np.random.Generator, size: int) -> np.ndarray:
    """Birth days drawn from the real clients' birth years, uniform within the year."""
    years = cal.BIRTH_FIRST_YEAR + rng.choice(len(cal.BIRTH_YEAR_CLIENTS), size=size, p=shares(cal.BIRTH_YEAR_CLIENTS))
    starts = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    ends = (years - 1969).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    return starts + (rng.random(size) * (ends - starts)).astype(np.int64)


def _years_of(days: np.ndarray) -> np.ndarray:
    """Calendar year of each day number."""
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def _ages(born: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years from `born` to `on` (day numbers)."""
    return ((on - born) / 365.25).astype(np.int64)


def _draw_accounts(rng: np.random.Generator, window: Window, size: int) -> dict[str, np.ndarray]:
    """District, frequency, opening day and activation month of each account."""
    open_day = _opening_days(rng, window, size)
    open_month = window.month_of(open_day)
    return {
        "district": 1 + rng.choice(len(cal.DISTRICT_ACCOUNTS), size=size, p=shares(cal.DISTRICT_ACCOUNTS)),
        "frequency": rng.choice(len(cal.FREQUENCIES), size=size, p=shares(cal.FREQUENCY_SHARES)),
        "open_day": open_day,
        "open_month": open_month,
        "open_dom": open_day - window.starts[open_month] + 1,
        "activation": open_month + rng.choice(cal.ACTIVATION_AGES, size=size, p=shares(cal.ACTIVATION_SHARES)),
    }


def _draw_income(
    rng: np.random.Generator, born: np.ndarray, open_month: np.ndarray, open_dom: np.ndarray
) -> dict[str, np.ndarray]:
    """How each account is fed: a pension (mostly older owners), a salary, or cash deposits."""
    size = len(born)
    old = _years_of(born) <= cal.PENSION_BIRTH_YEAR
    pensioner = old & (rng.random(size) < cal.PENSION_SHARE_OLD)
    employee = ~pensioner & (rng.random(size) < cal.SALARY_SHARE_YOUNG)
    kind = np.where(pensioner, PENSIONER, np.where(employee, EMPLOYEE, CASH_EARNER))
    crowns = np.where(pensioner, quantile_draw(rng, cal.PENSIONS, size), quantile_draw(rng, cal.SALARIES, size))
    dom = rng.integers(1, 29, size=size)
    same_month = (rng.random(size) < cal.INCOME_START_SAME_MONTH) & (dom > open_dom)
    cash = kind == CASH_EARNER
    income = np.where(cash, 0, crowns.round() * 10).astype(np.int64)
    return {
        "income_kind": kind,
        "income_amount": income,
        "income_dom": dom,
        "income_start": np.where(same_month, open_month, open_month + 1),
        "income_bank": rng.integers(0, len(cal.BANKS), size=size),
        "income_number": account_numbers(rng, size),
        "deposit_rate": np.where(
            cash,
            cal.MIN_DEPOSITS_PER_MONTH
            + rng.gamma(2.0, (cal.DEPOSITS_PER_MONTH - cal.MIN_DEPOSITS_PER_MONTH) / 2.0, size=size),
            cal.OTHER_DEPOSITS_PER_MONTH,
        ),
        "deposit_level": np.where(cash, quantile_draw(rng, cal.DEPOSIT_LEVELS, size) * 10, income),
        "deposit_dom": rng.integers(1, 29, size=size),
        "withdrawal_rate": rng.gamma(4.0, cal.WITHDRAWALS_PER_MONTH / 4.0, size=size),
    }


def _expected_income(income: dict[str, np.ndarray]) -> np.ndarray:
    """Mean monthly credits of each account, in tenths."""
    return income["income_amount"] + income["deposit_rate"] * income["deposit_level"]


def _wealth_scores(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Standard normal scores in the order of the accounts' expected income."""
    scores = np.empty(len(expected))
    scores[np.argsort(expected, kind="stable")] = np.sort(rng.standard_normal(len(expected)))
    return scores


def _correlated_uniforms(rng: np.random.Generator, scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Uniform ranks within each group, correlated (Gaussian copula, cal.WEALTH_CORRELATION) with `scores`."""
    rho = cal.WEALTH_CORRELATION
    noisy = rho * scores + np.sqrt(1 - rho**2) * rng.standard_normal(len(scores))
    order = np.lexsort((noisy, groups))
    ranks = np.empty(len(scores))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_groups[1:] != sorted_groups[:-1])))
    sizes = np.diff(np.append(starts, len(order)))
    position = np.arange(len(order)) - np.repeat(starts, sizes)
    ranks[order] = (position + 0.5) / np.repeat(sizes, sizes)
    return ranks


def _draw_cards(
    rng: np.random.Generator, window: Window, open_month: np.ndarray, born: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Month and day each account's card is issued; month = window.months where none is."""
    size, months = len(open_month), np.arange(window.months)
    year_index = np.clip(window.years - cal.CARD_HAZARD_FIRST_YEAR, 0, len(cal.CARD_MONTHLY_HAZARD) - 1)
    hazard = np.asarray(cal.CARD_MONTHLY_HAZARD)[year_index][None, :]
    young = (window.years[None, :] - _years_of(born)[:, None]) <= cal.CARD_YOUNG_AGE
    hazard = np.where(young, hazard * cal.CARD_YOUNG_FACTOR, hazard)
    eligible = months[None, :] >= (open_month + cal.CARD_MIN_AGE_MONTHS)[:, None]
    issued = eligible & (rng.random((size, window.months)) < hazard)
    month = np.where(issued.any(axis=1), issued.argmax(axis=1), window.months)
    has = month < window.months
    offsets = (rng.random(size) * window.lengths[np.minimum(month, window.months - 1)]).astype(np.int64)
    day = np.where(has, window.starts[month] + offsets, -1)
    return month, day


def _draw_loans(
    rng: np.random.Generator, window: Window, open_day: np.ndarray, scores: np.ndarray
) -> dict[str, np.ndarray]:
    """At most one loan per account, a year or so after opening; repayments rise with income."""
    size = len(open_day)
    low, high = cal.LOAN_GAP_DAYS
    day = open_day + rng.integers(low, high + 1, size=size)
    shares_by_year = np.asarray(cal.LOAN_SHARE_BY_OPENING_YEAR)
    year = np.clip(_years_of(open_day) - cal.LOAN_FIRST_YEAR, 0, len(shares_by_year) - 1)
    taken = (rng.random(size) < shares_by_year[year]) & (day <= window.last_day)
    account = np.flatnonzero(taken)
    day = day[taken]
    by_date = np.argsort(day, kind="stable")
    account, day = account[by_date], day[by_date]
    count = len(account)
    month = window.month_of(day)
    duration = rng.choice(cal.LOAN_DURATIONS, size=count, p=shares(cal.LOAN_DURATION_SHARES))
    ranks = _correlated_uniforms(rng, scores[account], np.zeros(count, dtype=np.int64))
    payments = np.interp(ranks, np.linspace(0, 1, len(cal.LOAN_PAYMENTS)), cal.LOAN_PAYMENTS).round()
    finished = month + duration <= window.months - 1
    good = rng.random(count) < np.where(finished, cal.LOAN_PAID_UP_SHARE, cal.LOAN_RUNNING_OK_SHARE)
    status = np.where(finished, np.where(good, "A", "B"), np.where(good, "C", "D"))
    return {
        "account": account,
        "day": day,
        "month": month,
        "duration": duration,
        "payments": payments.astype(np.int64),
        "status": status,
    }


def _order_amounts(rng: np.random.Generator, symbols: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Order amounts (tenths) from each k_symbol's real quantiles, rising with the account's income."""
    ranks = _correlated_uniforms(rng, scores, symbols)
    amounts = np.zeros(len(symbols))
    for code, symbol in enumerate(cal.ORDER_K_SYMBOLS):
        table = cal.ORDER_AMOUNTS[symbol]
        chosen = symbols == code
        amounts[chosen] = np.interp(ranks[chosen], np.linspace(0, 1, len(table)), table)
    return np.maximum(np.rint(amounts * 10), 10)


def _plain_orders(
    rng: np.random.Generator, window: Window, activation: np.ndarray, scores: np.ndarray
) -> dict[str, np.ndarray]:
    """Standing orders other than loan repayments: from activation (some later) to the end."""
    size = len(activation)
    per_account = rng.choice(len(cal.ORDERS_PER_ACCOUNT), size=size, p=shares(cal.ORDERS_PER_ACCOUNT))
    account = np.repeat(np.arange(size), per_account)
    symbols = rng.choice(len(cal.ORDER_K_SYMBOLS), size=len(account), p=shares(cal.ORDER_K_SHARES))
    low, high = cal.LATE_ORDER_DELAY
    late = rng.random(len(account)) < cal.LATE_ORDER_SHARE
    delay = np.where(late, rng.integers(low, high + 1, size=len(account)), 0)
    return {
        "account": account,
        "k_symbol": np.array(cal.ORDER_K_SYMBOLS, dtype=object)[symbols],
        "amount": _order_amounts(rng, symbols, scores[account]).astype(np.int64),
        "first": activation[account] + delay,
        "last": np.full(len(account), window.months - 1),
    }


def _loan_orders(rng: np.random.Generator, window: Window, loans: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One UVER order per loan, paying about `payments` from the month after the loan for `duration`."""
    count = len(loans["account"])
    return {
        "account": loans["account"],
        "k_symbol": np.full(count, "UVER", dtype=object),
        "amount": np.maximum(loans["payments"] * 10 + rng.integers(-5, 6, size=count), 10).astype(np.int64),
        "first": loans["month"] + 1,
        "last": np.minimum(loans["month"] + loans["duration"], window.months - 1),
    }


def _draw_orders(
    rng: np.random.Generator,
    window: Window,
    activation: np.ndarray,
    loans: dict[str, np.ndarray],
    scores: np.ndarray,
) -> Orders:
    """All standing orders, sorted by account, each with its payee, day of month and months."""
    parts = [_plain_orders(rng, window, activation, scores), _loan_orders(rng, window, loans)]
    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    by_account = np.argsort(merged["account"], kind="stable")
    merged = {name: values[by_account] for name, values in merged.items()}
    total = len(by_account)
    low, high = cal.ORDER_DAYS
    return Orders(
        **merged,
        trans_k_symbol=np.array([_ORDER_K_CODES.get(k, LOAN) for k in merged["k_symbol"]], dtype=np.int8),
        bank=rng.integers(0, len(cal.BANKS), size=total),
        number=account_numbers(rng, total),
        dom=rng.integers(low, high + 1, size=total),
    )


def _cover_orders(income: dict[str, np.ndarray], fixed: np.ndarray) -> dict[str, np.ndarray]:
    """Raises cash deposits where standing orders would take more than cal.AFFORDABLE_SHARE of the
    expected credits."""
    expected = _expected_income(income)
    shortfall = np.maximum(fixed / cal.AFFORDABLE_SHARE - expected, 0.0)
    short = shortfall > 0
    rate = np.where(short, np.maximum(income["deposit_rate"], 1.0), income["deposit_rate"])
    level = np.where(short, (expected - income["income_amount"] + shortfall) / rate, income["deposit_level"])
    return dict(income, deposit_rate=rate, deposit_level=level)


def _plan_spending(
    rng: np.random.Generator, income: dict[str, np.ndarray], orders: Orders, frequency: np.ndarray
) -> dict[str, np.ndarray]:
    """Covers the standing orders, then sets each account's target balance and cash withdrawals:
    those with more left after the orders withdraw more often and more."""
    fixed = np.bincount(orders.account, weights=orders.amount, minlength=len(frequency))
    planned = _cover_orders(income, fixed)
    expected = _expected_income(planned)
    fee = np.asarray(cal.STATEMENT_FEES)[frequency] * 10
    disposable = np.maximum(expected - fixed - fee, cal.MIN_DISPOSABLE_SHARE * expected)
    rate = income["withdrawal_rate"] * (disposable / np.median(disposable)) ** cal.WITHDRAWAL_RATE_ELASTICITY
    rate = np.maximum(rate * cal.WITHDRAWALS_PER_MONTH / rate.mean(), 0.05)
    scale = (expected / np.median(expected)) ** cal.BALANCE_TARGET_ELASTICITY
    spread = rng.lognormal(0.0, cal.BALANCE_TARGET_SPREAD, size=len(frequency))
    return dict(
        planned,
        withdrawal_rate=rate,
        withdrawal_size=disposable / rate / np.exp(cal.WITHDRAWAL_SPREAD**2 / 2),
        target_balance=cal.BALANCE_TARGET * 10 * scale * spread,
        fixed_payments=fixed,
    )


def _district_frame() -> pd.DataFrame:
    """The 77 districts with their real demographics, in canonical dtypes."""
    relation = RELATIONS["district"]
    frame = pd.DataFrame([list(row) for row in cal.DISTRICTS], columns=list(relation.column_names))
    dtypes = {ColumnType.TEXT: "str", ColumnType.DECIMAL: "float64", ColumnType.INT: "int64"}
    for column in relation.columns:
        nullable_int = column.type == ColumnType.INT and column.nullable
        frame[column.name] = frame[column.name].astype("Int64" if nullable_int else dtypes[column.type])
    return frame


def _birth_numbers(born: np.ndarray, female: np.ndarray) -> list[str]:
    """PKDD'99 birth numbers: YYMMDD with 50 added to the month for women."""
    dates = born.astype("datetime64[D]")
    month_start = dates.astype("datetime64[M]")
    years = _years_of(born) % 100
    months = month_start.astype(np.int64) % 12 + 1 + 50 * female
    days = (dates - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    return [f"{y:02d}{m:02d}{d:02d}" for y, m, d in zip(years.tolist(), months.tolist(), days.tolist(), strict=True)]


def _people_frames(
    rng: np.random.Generator, accounts: dict[str, np.ndarray], owner_born: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """client and disp frames (owner then disponent per account) and each account's owner disp_id."""
    size = len(owner_born)
    has_disponent = rng.random(size) < cal.DISPONENT_SHARE
    per_account = 1 + has_disponent.astype(np.int64)
    account = np.repeat(np.arange(size), per_account)
    owner = np.ones(len(account), dtype=bool)
    owner[1:] = account[1:] != account[:-1]
    born = np.empty(len(account), dtype=np.int64)
    born[owner] = owner_born
    born[~owner] = _birth_days(rng, int((~owner).sum()))
    female = rng.random(len(account)) < cal.FEMALE_SHARE
    own_district = rng.random(len(account)) < cal.CLIENT_IN_ACCOUNT_DISTRICT
    other_district = 1 + rng.choice(len(cal.DISTRICT_ACCOUNTS), size=len(account), p=shares(cal.DISTRICT_ACCOUNTS))
    ids = np.arange(1, len(account) + 1)
    client = pd.DataFrame(
        {
            "client_id": ids,
            "birth_number": pd.array(_birth_numbers(born, female), dtype="str"),
            "district_id": np.where(own_district, accounts["district"][account], other_district),
        }
    )
    disp = pd.DataFrame(
        {
            "disp_id": ids,
            "client_id": ids,
            "account_id": account + 1,
            "type": pd.array(np.where(owner, "OWNER", "DISPONENT"), dtype="str"),
        }
    )
    return client, disp, ids[owner]


def _card_frame(
    rng: np.random.Generator, card_day: np.ndarray, owner_born: np.ndarray, owner_disp: np.ndarray
) -> pd.DataFrame:
    """Cards on the owners' dispositions in order of issue; junior for owners up to CARD_YOUNG_AGE."""
    holders = np.flatnonzero(card_day >= 0)
    holders = holders[np.argsort(card_day[holders], kind="stable")]
    issued = card_day[holders]
    junior = _ages(owner_born[holders], issued) <= cal.CARD_YOUNG_AGE
    gold = rng.random(len(holders)) < cal.GOLD_SHARE
    return pd.DataFrame(
        {
            "card_id": np.arange(1, len(holders) + 1),
            "disp_id": owner_disp[holders],
            "type": pd.array(np.where(junior, "junior", np.where(gold, "gold", "classic")), dtype="str"),
            "issued": as_dates(issued),
        }
    )


def _order_frame(orders: Orders) -> pd.DataFrame:
    """The order relation in canonical dtypes."""
    banks = np.asarray(cal.BANKS, dtype=object)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, len(orders) + 1),
            "account_id": orders.account + 1,
            "bank_to": pd.array(banks[orders.bank], dtype="str"),
            "account_to": pd.array(orders.number.astype(str), dtype="str"),
            "amount": orders.amount / 10,
            "k_symbol": pd.array(orders.k_symbol, dtype="str"),
        }
    )


def _loan_frame(loans: dict[str, np.ndarray]) -> pd.DataFrame:
    """The loan relation in canonical dtypes; amount = payments x duration."""
    return pd.DataFrame(
        {
            "loan_id": np.arange(1, len(loans["account"]) + 1),
            "account_id": loans["account"] + 1,
            "date": as_dates(loans["day"]),
            "amount": (loans["payments"] * loans["duration"]).astype(float),
            "duration": loans["duration"].astype(np.int64),
            "payments": loans["payments"].astype(float),
            "status": pd.array(loans["status"], dtype="str"),
        }
    )


def _account_frame(accounts: dict[str, np.ndarray]) -> pd.DataFrame:
    """The account relation in canonical dtypes."""
    frequencies = np.asarray(cal.FREQUENCIES, dtype=object)
    return pd.DataFrame(
        {
            "account_id": np.arange(1, len(accounts["district"]) + 1),
            "district_id": accounts["district"].astype(np.int64),
            "frequency": pd.array(frequencies[accounts["frequency"]], dtype="str"),
            "date": as_dates(accounts["open_day"]),
        }
    )


def draw_population(rng: np.random.Generator, window: Window, size: int) -> Population:
    """`size` accounts opened within `window`, with everything attached to them."""
    accounts = _draw_accounts(rng, window, size)
    owner_born = _birth_days(rng, size)
    income = _draw_income(rng, owner_born, accounts["open_month"], accounts["open_dom"])
    scores = _wealth_scores(rng, _expected_income(income))
    loans = _draw_loans(rng, window, accounts["open_day"], scores)
    orders = _draw_orders(rng, window, accounts["activation"], loans, scores)
    income = _plan_spending(rng, income, orders, accounts["frequency"])
    card_month, card_day = _draw_cards(rng, window, accounts["open_month"], owner_born)
    client, disp, owner_disp = _people_frames(rng, accounts, owner_born)
    relations = {
        "district": _district_frame(),
        "account": _account_frame(accounts),
        "client": client,
        "disp": disp,
        "order": _order_frame(orders),
        "loan": _loan_frame(loans),
        "card": _card_frame(rng, card_day, owner_born, owner_disp),
    }
    state = Accounts(**accounts, owner_born=owner_born, **income, card_month=card_month, card_day=card_day)
    return Population(accounts=state, orders=orders, relations=relations)
