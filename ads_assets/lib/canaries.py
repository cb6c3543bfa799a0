"""Canaries: known anomalies planted into a copy of real transactions, and their features built by dbt.

`Injector` plants labelled anomalies of every kind into PKDD'99-shaped transactions (trans_id,
account_id, date, type, operation, amount, balance, k_symbol, bank, account, plus `day`, `signed`,
`position` and `label`), keeping every balance chain consistent except where the kind is a broken
ledger; `benchmarks/real_injection.py` documents each kind. `plant` plants the row kinds
(`CANARY_KINDS`) within given months.

`build_canaries` makes the canary copy of a bank: the raw relations of a deterministic sample of
accounts, their transactions up to the last month asked for with the kinds planted in those months,
loaded into a database of its own on the same Postgres server, where the dbt models are run (not
tested) so that the canary feature rows come from exactly the production feature SQL; the rows are
read back and the database dropped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from ads_assets.lib.berka.schema import RELATIONS, ColumnType, Relation
from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.locking import LOCKS_FOLDER, waiting_lock
from ads_assets.lib.raw_schema import ensure_raw_schema, raw_table
from ads_assets.lib.tables import FEATURES_TABLE, copy_frame, read_query
from ads_assets.settings import Settings

TRANS_COLUMNS = [
    "trans_id",
    "account_id",
    "date",
    "type",
    "operation",
    "amount",
    "balance",
    "k_symbol",
    "bank",
    "account",
]
PAYMENT = "PREVOD NA UCET"
WITHDRAWAL = "VYBER"
CARD_WITHDRAWAL = "VYBER KARTOU"
DEBIT = "VYDAJ"
CREDIT = "PRIJEM"
RECURRING_SYMBOLS = ("SIPO", "POJISTNE", "UVER")
PENSION = "DUCHOD"
BROKEN_LEDGER_KINDS = ("ledger_break", "data_entry", "omitted_posting")


class Injector:
    """Plants labelled anomalies into real transactions; balances follow unless the kind breaks them.

    Several transactions of one account on one day come in no known order, so a posting is changed
    or removed only where it is its account's one transaction that day, and planted postings go after
    the day's last one: every later balance then moves by the change, and no same-day order is assumed.
    """

    def __init__(
        self,
        trans: pd.DataFrame,
        orders: pd.DataFrame,
        seed: int,
        plant_in: Sequence[tuple[pd.Timestamp, pd.Timestamp]] = (),
    ) -> None:
        """`plant_in`: the spans of days [start, end) planted rows may fall in (none: anywhere)."""
        self.rng = np.random.default_rng(seed)
        self.trans = trans
        self.orders = orders
        self.next_id = int(trans["trans_id"].max()) + 1
        self.balance_shift = np.zeros(len(trans))
        self.own_delta = np.zeros(len(trans))
        self.used = np.zeros(len(trans), dtype=bool)
        self.added: list[dict] = []
        self.changes: list[tuple[int, pd.Timestamp, float]] = []
        self.removed: list[int] = []
        self.missing: list[tuple[int, str]] = []
        self.omitted: list[int] = []
        same_day = trans.groupby(["account_id", "day"])["trans_id"].transform("size")
        self.alone = (same_day == 1).to_numpy()
        # The posted balance each account-day closes at (not a sum of amounts from an opening balance:
        # the first day's postings come in no known order, and the real balances drift by 0.10 at times).
        self.day_close = ledger_walk(trans)[1].round(2)
        early = trans["day"] <= trans.groupby("account_id")["day"].transform("min") + pd.Timedelta(days=60)
        busy = trans["account_id"].map(trans["account_id"].value_counts()) >= 20
        self.eligible = (busy & ~early).to_numpy()
        # For the kinds planted last: the real amounts (earlier kinds change some), day numbers, each
        # account's rows in file order and the account-days another kind already uses.
        self.first_day = trans["day"].min()
        self.ordinal = (trans["day"] - self.first_day).dt.days.to_numpy()
        self.last_ordinal = int(self.ordinal.max())
        self.account_ids = trans["account_id"].to_numpy()
        self.amounts = trans["amount"].to_numpy(dtype=float).copy()
        self.rows_of = {int(account): rows for account, rows in trans.groupby("account_id").indices.items()}
        self.busy = busy.to_numpy()
        symbol = trans["k_symbol"].fillna("").str.strip()
        self.symbol = symbol.to_numpy(dtype=object)
        self.cash = (trans["operation"].isin([WITHDRAWAL, CARD_WITHDRAWAL]) & (symbol == "")).to_numpy()
        self.card = (trans["operation"] == CARD_WITHDRAWAL).to_numpy()
        self.pension = (symbol == PENSION).to_numpy() & (trans["type"] == CREDIT).to_numpy()
        self.no_counterparty = trans["bank"].isna().to_numpy()
        self.touched: set[tuple[int, int]] = set()
        self.group_accounts: set[int] = set()
        self.anywhere = self.eligible
        self.plant_within(plant_in)

    def plant_within(self, spans: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> None:
        """Plant only within these spans of days [start, end) from now on (none: anywhere)."""
        self.spans = [
            ((pd.Timestamp(start) - self.first_day).days, (pd.Timestamp(end) - self.first_day).days)
            for start, end in spans
        ]
        inside = [(self.ordinal >= a) & (self.ordinal < b) for a, b in self.spans]
        self.eligible = self.anywhere & np.logical_or.reduce(inside) if inside else self.anywhere

    def _inside(self, first: int, last: int) -> bool:
        """True when days first..last lie within one span of `plant_in`, or when there are no spans."""
        return not self.spans or any(a <= first and last < b for a, b in self.spans)

    def _pick(self, mask: np.ndarray, count: int, alone: bool = False) -> np.ndarray:
        wanted = mask & ~self.used & self.eligible & (self.alone if alone else True)
        rows = self.rng.choice(np.flatnonzero(wanted), size=min(count, int(wanted.sum())), replace=False)
        self.used[rows] = True
        for row in rows:
            self._touch(int(self.account_ids[row]), int(self.ordinal[row]))
        return rows

    def _touch(self, account: int, ordinal: int) -> None:
        self.touched.add((account, ordinal))

    def _free(self, account: int, first: int, last: int, margin: int) -> bool:
        """True when no other kind uses a day of `account` within `margin` days of first..last."""
        return not any((account, ordinal) in self.touched for ordinal in range(first - margin, last + margin + 1))

    def _pick_free(self, mask: np.ndarray, count: int, margin: int, accept=None) -> list[int]:
        """Up to `count` rows of `mask` (alone on their account-day), none within `margin` days of another kind's.

        Drawn one by one in a random order from the seed, so that each sees the picks before it;
        `accept(row)` may refuse a row (and may touch further account-days when it takes one).
        """
        wanted = mask & ~self.used & self.eligible & self.alone
        picked: list[int] = []
        for row in self.rng.permutation(np.flatnonzero(wanted)):
            if len(picked) >= count:
                break
            account, ordinal = int(self.account_ids[row]), int(self.ordinal[row])
            if self.used[row] or not self._free(account, ordinal, ordinal, margin):
                continue
            if accept is not None and not accept(int(row)):
                continue
            self.used[row] = True
            self._touch(account, ordinal)
            picked.append(int(row))
        return picked

    def _largest_before(self, row: int, mask: pd.Series) -> float:
        account, day = self.trans.at[row, "account_id"], self.trans.at[row, "day"]
        earlier = self.trans.loc[mask & (self.trans["account_id"] == account) & (self.trans["day"] < day), "amount"]
        return float(earlier.max()) if len(earlier) else 1000.0

    def _change(self, row: int, delta: float) -> None:
        self.own_delta[row] += delta
        self.changes.append((int(self.trans.at[row, "account_id"]), self.trans.at[row, "day"], delta))

    def _add(self, row: int, label: str, **values: object) -> None:
        entry = self.trans.loc[row, TRANS_COLUMNS + ["day", "position"]].to_dict()
        entry.update(values, trans_id=self.next_id, label=label, position=entry["position"] + 0.5)
        entry["signed"] = entry["amount"] if entry["type"] == "PRIJEM" else -entry["amount"]
        entry["day_close"] = self.day_close.iat[row]
        self.next_id += 1
        self.added.append(entry)

    def wrong_amounts(self, count: int) -> None:
        for row in self._pick(np.ones(len(self.trans), dtype=bool), count, alone=True):
            factor = self.rng.choice([10, 100], p=[0.7, 0.3])
            self._change(row, self.trans.at[row, "signed"] * (factor - 1))
            self.trans.at[row, "amount"] = round(self.trans.at[row, "amount"] * factor, 2)
            self.trans.at[row, "label"] = "wrong_amount"

    def data_entry(self, count: int) -> None:
        for row in self._pick((self.trans["amount"] >= 100).to_numpy(), count):
            digits = f"{int(self.trans.at[row, 'amount'])}"
            swapped = digits[1] + digits[0] + digits[2:]
            transposed = swapped[0] != "0" and swapped != digits and self.rng.random() < 0.5
            self.trans.at[row, "amount"] = float(swapped if transposed else digits + "0")
            self.trans.at[row, "label"] = "data_entry"

    def duplicates(self, count: int) -> None:
        payments = (self.trans["operation"] == PAYMENT).to_numpy()
        for row in self._pick(payments, count):
            self._add(row, "duplicate")

    def bursts(self, count: int) -> None:
        for row in self._pick((self.trans["type"] != "PRIJEM").to_numpy(), count):
            for _ in range(self.rng.integers(5, 9)):
                amount = float(self.rng.integers(30, 300) * 10)
                self._add(
                    row, "burst", type=DEBIT, operation=WITHDRAWAL, amount=amount, k_symbol="", bank="", account=""
                )

    def unusual_payees(self, count: int) -> None:
        payments = self.trans["operation"] == PAYMENT
        banks = ["AB", "CD", "EF", "GH", "IJ", "KL", "MN", "OP", "QR", "ST", "UV", "WX", "YZ"]
        for row in self._pick(payments.to_numpy(), count):
            amount = round(self._largest_before(row, payments) * self.rng.uniform(2, 5), 0)
            payee = f"{self.rng.integers(10**7, 10**8)}"
            bank = str(self.rng.choice(banks))
            self._add(
                row,
                "unusual_payee",
                type=DEBIT,
                operation=PAYMENT,
                amount=amount,
                k_symbol="",
                bank=bank,
                account=payee,
            )

    def beyond_habits(self, count: int) -> None:
        withdrawals = self.trans["operation"] == WITHDRAWAL
        for row in self._pick(withdrawals.to_numpy(), count):
            amount = round(self._largest_before(row, withdrawals) * self.rng.uniform(4, 10), -2)
            self._add(
                row, "beyond_habits", type=DEBIT, operation=WITHDRAWAL, amount=amount, k_symbol="", bank="", account=""
            )

    def ledger_breaks(self, count: int) -> None:
        for row in self._pick(np.ones(len(self.trans), dtype=bool), count):
            self.balance_shift[row] = float(self.rng.integers(100, 10_000)) * self.rng.choice([-1, 1])
            self.trans.at[row, "label"] = "ledger_break"

    def missing_bills(self, count: int) -> None:
        keys = self.orders.rename(columns={"account_to": "account", "bank_to": "bank"})[
            ["account_id", "bank", "account", "amount"]
        ]
        keys = keys.assign(account=keys["account"].astype(str))
        candidates = self.trans.reset_index().merge(keys, on=["account_id", "bank", "account", "amount"], how="inner")[
            "index"
        ]
        for row in self._pick(np.isin(np.arange(len(self.trans)), candidates.to_numpy()), count, alone=True):
            self._change(row, -self.trans.at[row, "signed"])
            self.removed.append(row)
            self.missing.append((int(self.trans.at[row, "account_id"]), f"{self.trans.at[row, 'day']:%Y-%m}"))

    def _add_on(self, account: int, ordinal: int, label: str, values: dict[str, object]) -> None:
        """A posting of `account` on day `ordinal`, after its other postings that day (if any)."""
        rows = self.rows_of[account]
        last = rows[self.ordinal[rows] <= ordinal][-1]
        day = self.first_day + pd.Timedelta(days=ordinal)
        entry = {
            "trans_id": self.next_id,
            "account_id": account,
            "date": f"{day:%y%m%d}",
            "bank": "",
            "account": "",
            "k_symbol": "",
            **values,
            "day": day,
            "position": float(np.searchsorted(self.ordinal, ordinal, side="right")) - 0.5,
            "label": label,
            "day_close": self.day_close.iat[last],
        }
        entry["signed"] = entry["amount"] if entry["type"] == CREDIT else -entry["amount"]
        self.next_id += 1
        self.added.append(entry)
        self._touch(account, ordinal)

    def _habit(self, account: int, before: int) -> tuple[np.ndarray, np.ndarray]:
        """The account's cash withdrawals (day numbers, real amounts) before day `before`."""
        rows = self.rows_of[account]
        rows = rows[self.cash[rows] & (self.ordinal[rows] < before)]
        return self.ordinal[rows], self.amounts[rows]

    def _draw_amounts(self, usual: float, low: float, high: float, count: int) -> np.ndarray | None:
        """`count` amounts within low..high times `usual`, in hundreds (tens for small habits)."""
        step = 100.0 if usual >= 1000 else 10.0
        first, last = int(np.ceil(low * usual / step)), int(np.floor(high * usual / step))
        if first < 1 or first > last:
            return None
        return self.rng.integers(first, last + 1, size=count).astype(float) * step

    def _lowest_close(self, account: int, since: int) -> float:
        """The account's lowest day-close from the day before `since` on (real balances)."""
        rows = self.rows_of[account]
        before = rows[self.ordinal[rows] < since]
        after = rows[self.ordinal[rows] >= since]
        closes = self.day_close.to_numpy()
        return float(min(closes[before[-1:]].tolist() + closes[after].tolist()))

    def wrong_prices(self, count: int) -> None:
        """A recurring payment at 1.15-1.6x or 0.4-0.85x its usual amount; later balances carried forward."""
        trans = self.trans
        key = [
            trans["account_id"],
            trans["operation"].fillna(""),
            pd.Series(self.symbol, index=trans.index),
            trans["bank"].fillna(""),
            trans["account"].fillna(""),
            pd.Series(self.amounts, index=trans.index),
        ]
        seen_before = trans.groupby(key).cumcount().to_numpy()
        recurring = np.isin(self.symbol, RECURRING_SYMBOLS) | (trans["operation"] == PAYMENT).to_numpy()
        mask = recurring & (trans["type"] != CREDIT).to_numpy() & (seen_before >= 2) & (self.amounts >= 50)
        for row in self._pick_free(mask, count, margin=3):
            usual = self.amounts[row]
            low, high = (1.15, 1.6) if self.rng.random() < 0.5 else (0.4, 0.85)
            amount = float(np.clip(round(usual * self.rng.uniform(low, high)), np.ceil(low * usual), high * usual))
            self._change(row, -(amount - usual))
            self.trans.at[row, "amount"] = amount
            self.trans.at[row, "label"] = "wrong_price"

    def omitted_postings(self, count: int) -> None:
        """A posting removed, the later balances left as posted; the account's next posting is labelled."""
        following = np.full(len(self.trans), -1)
        for rows in self.rows_of.values():
            following[rows[:-1]] = rows[1:]
        has_next = following >= 0
        nxt = np.where(has_next, following, 0)
        mask = self.no_counterparty & (self.amounts >= 100) & has_next & self.alone[nxt] & self.eligible[nxt]

        def accept(row: int) -> bool:
            after = int(nxt[row])
            account = int(self.account_ids[row])
            if self.used[after] or not self._free(account, int(self.ordinal[after]), int(self.ordinal[after]), 3):
                return False
            self.used[after] = True
            self._touch(account, int(self.ordinal[after]))
            self.removed.append(row)
            self.omitted.append(row)
            self.trans.at[after, "label"] = "omitted_posting"
            return True

        self._pick_free(mask, count, margin=3, accept=accept)

    def sequence_changes(self, groups: int) -> None:
        """A quiet pension account that withdraws every day for 5-8 days, each 0.5-1.5x its median withdrawal."""
        pensioners = sorted({int(a) for a in self.account_ids[self.pension & self.busy]})
        planted = 0
        for account in self.rng.permutation(pensioners):
            if planted >= groups:
                break
            account = int(account)
            if account in self.group_accounts:
                continue
            rows = self.rows_of[account]
            days, _ = self._habit(account, self.last_ordinal + 1)
            if len(days) < 3 or (len(days) > 2 and np.min(days[2:] - days[:-2]) < 8):
                continue  # not quiet: three cash withdrawals within 8 days
            length = int(self.rng.integers(5, 9))
            first_possible = int(self.ordinal[rows[0]]) + 90
            starts = np.arange(first_possible, self.last_ordinal - length + 2)
            if self.spans:
                starts = np.array([start for start in starts if self._inside(start, start + length - 1)], dtype=int)
            for start in self.rng.permutation(starts)[:20]:
                start, last = int(start), int(start) + length - 1
                earlier_days, earlier_amounts = self._habit(account, start)
                if len(earlier_amounts) < 3 or np.any((days >= start) & (days <= last)):
                    continue
                if not self._free(account, start, last, 7):
                    continue
                amounts = self._draw_amounts(float(np.median(earlier_amounts)), 0.5, 1.5, length)
                if amounts is None or self._lowest_close(account, start) < amounts.sum():
                    continue
                rows_before = rows[self.ordinal[rows] < start]
                operation = WITHDRAWAL
                if self.card[rows_before].any() and self.rng.random() < 0.5:
                    operation = CARD_WITHDRAWAL
                for offset, amount in enumerate(amounts):
                    values = {"type": DEBIT, "operation": operation, "amount": float(amount)}
                    self._add_on(account, start + offset, "sequence_change", values)
                for ordinal in range(start, last + 1):
                    self._touch(account, ordinal)
                self.group_accounts.add(account)
                planted += 1
                break

    def month_overspends(self, groups: int) -> None:
        """4-8 extra cash withdrawals over different days of a month, each 1-2x the usual withdrawal."""
        candidates = sorted({int(a) for a in self.account_ids[self.cash & self.busy]})
        months = pd.date_range(self.first_day, self.first_day + pd.Timedelta(days=self.last_ordinal), freq="MS")
        planted = 0
        for account in self.rng.permutation(candidates):
            if planted >= groups:
                break
            account = int(account)
            if account in self.group_accounts:
                continue
            opened = int(self.ordinal[self.rows_of[account][0]])
            for month in self.rng.permutation(len(months)):
                start = int((months[month] - self.first_day).days)
                end = min(int((months[month] + pd.offsets.MonthEnd(0) - self.first_day).days), self.last_ordinal)
                history = start - opened
                if not self._inside(start, end):
                    continue
                if history < 90 or end - start < 20 or not self._free(account, start, end, 7):
                    continue
                days, amounts = self._habit(account, start)
                if len(amounts) < 3:
                    continue
                usual = float(np.median(amounts))
                # The usual month: the median of the account's monthly withdrawals since its first full month.
                first_month = months[months >= self.first_day + pd.Timedelta(days=opened)]
                bounds = [int((m - self.first_day).days) for m in first_month if m < months[month]] + [start]
                totals = [amounts[(days >= a) & (days < b)].sum() for a, b in zip(bounds, bounds[1:], strict=False)]
                usual_month = max(float(np.median(totals)) if totals else 0.0, usual)
                count = int(self.rng.integers(4, 9))
                extra = self._draw_amounts(usual, 1.0, 2.0, count)
                if extra is None:
                    continue
                month_days, month_amounts = self._habit(account, end + 1)
                already = month_amounts[month_days >= start].sum()
                if already + extra.sum() < 3 * usual_month or self._lowest_close(account, start) < extra.sum():
                    continue
                chosen = np.sort(self.rng.choice(np.arange(start, end + 1), size=count, replace=False))
                for ordinal, amount in zip(chosen, extra, strict=True):
                    values = {"type": DEBIT, "operation": WITHDRAWAL, "amount": float(amount)}
                    self._add_on(account, int(ordinal), "month_overspend", values)
                for ordinal in range(start, end + 1):
                    self._touch(account, ordinal)
                self.group_accounts.add(account)
                planted += 1
                break

    def _carried(self, account: pd.Series, day: pd.Series, through_day: bool) -> np.ndarray:
        carried = np.zeros(len(account))
        for changed_account, changed_day, delta in self.changes:
            later = (day >= changed_day) if through_day else (day > changed_day)
            carried += np.where((account == changed_account) & later, delta, 0.0)
        return carried

    def result(self) -> pd.DataFrame:
        """Transactions with the planted ones, every later balance moved by each change before it."""
        base = self.trans.copy()
        base["balance"] = base["balance"] + self._carried(base["account_id"], base["day"], False) + self.own_delta
        base["balance"] = base["balance"] + self.balance_shift
        base = base.drop(index=self.removed)
        added = pd.DataFrame(self.added)
        added["balance"] = (
            added["day_close"]
            + self._carried(added["account_id"], added["day"], True)
            + added.groupby(["account_id", "day"])["signed"].cumsum()
        )
        inserted_before = added.groupby(["account_id", "day"])["signed"].sum()
        for (account, day), net in inserted_before.items():
            later = (base["account_id"] == account) & (base["day"] > day)
            base.loc[later, "balance"] += net
            later_added = (added["account_id"] == account) & (added["day"] > day)
            added.loc[later_added, "balance"] += net
        frame = pd.concat([base, added.drop(columns="day_close")], ignore_index=True)
        frame = frame.sort_values(["day", "position"], kind="stable")
        frame["balance"] = frame["balance"].round(2)
        return frame


def ledger_walk(frame: pd.DataFrame, tolerance: float = 0.11) -> tuple[pd.Series, pd.Series]:
    """Walk every account's balance chain: which postings break it, and each account-day's posted close.

    Same-day postings come in no known order, so the balance before a posting (its balance minus its
    signed amount) must be a close the previous day can have had, or the balance of another posting
    that day. A day's close is the balance that the previous close plus the day's net gives, when one
    does; else the balance that no other posting of the day continues from (where several do, any of
    them may be the close the next day continues from; the one nearest the expected close is reported).
    The first day of an account is not judged (its opening balance is unknown). The real file is off
    by 0.10 here and there (interest rounded), hence the tolerance.
    """
    order = frame.sort_values(["account_id", "day", "position"], kind="stable")
    accounts = order["account_id"].to_numpy()
    days = order["day"].to_numpy()
    balances = order["balance"].to_numpy(dtype=float)
    signed = np.where(order["type"] == CREDIT, 1.0, -1.0) * order["amount"].to_numpy(dtype=float)
    broken = np.zeros(len(order), dtype=bool)
    closes = np.zeros(len(order))
    starts = np.flatnonzero(np.r_[True, (accounts[1:] != accounts[:-1]) | (days[1:] != days[:-1])])
    candidates = np.zeros(0)
    for first, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        if first == 0 or accounts[first] != accounts[first - 1]:
            candidates = np.zeros(0)
        day_balances, before = balances[first:stop], balances[first:stop] - signed[first:stop]
        if len(candidates):
            for offset in range(stop - first):
                others = np.append(np.delete(day_balances, offset), candidates)
                broken[first + offset] = not np.any(np.abs(others - before[offset]) < tolerance)
        expected = candidates + signed[first:stop].sum()
        matching = [b for b in day_balances if np.any(np.abs(expected - b) < tolerance)]
        if stop - first == 1:
            candidates = day_balances.copy()
        elif matching:
            candidates = np.array(matching[:1])
        else:
            chain_ends = [b for b in day_balances if not np.any(np.abs(before - b) < tolerance)]
            candidates = np.array(chain_ends or day_balances)
        nearest = np.argmin(np.abs(candidates - expected[0])) if len(expected) else len(candidates) - 1
        closes[first:stop] = candidates[nearest]
    return (
        pd.Series(broken, index=order.index).reindex(frame.index),
        pd.Series(closes, index=order.index).reindex(frame.index),
    )


def ledger_breaks(frame: pd.DataFrame) -> pd.Series:
    """True for each posting whose balance does not follow from the account's previous balance."""
    return ledger_walk(frame)[0]


def unexplained_breaks(planted: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Postings whose balance does not follow, and those of them that no planted kind explains.

    Explained: the kinds of a broken ledger (`ledger_break`, `data_entry`, `omitted_posting`) and the
    account's postings on the next day after a shifted balance (they follow the true chain, not the shift).
    """
    broken = ledger_breaks(planted)
    label = planted["label"]
    after_shift = pd.Series(False, index=planted.index)
    for account, day in planted.loc[label == "ledger_break", ["account_id", "day"]].itertuples(index=False):
        own = planted["account_id"] == account
        later = planted.loc[own & (planted["day"] > day), "day"]
        after_shift |= own & planted["day"].between(day, later.min() if len(later) else day)
    return broken, broken & ~(label.isin(BROKEN_LEDGER_KINDS) | after_shift)


CANARY_KINDS = (
    "wrong_amount",
    "data_entry",
    "duplicate",
    "burst",
    "unusual_payee",
    "ledger_break",
    "beyond_habits",
    "wrong_price",
    "omitted_posting",
    "sequence_change",
    "month_overspend",
)
"""The kinds `plant` plants: every kind of the injector that marks a transaction (a missing bill marks none)."""
NORMAL = "normal"
TEXT_COLUMNS = ("type", "operation", "k_symbol", "bank", "account")
NULLABLE_TEXT = ("operation", "k_symbol", "bank", "account")


def injector_frame(raw_trans: pd.DataFrame) -> pd.DataFrame:
    """Rows of `raw.fin_trans` as the injector reads them: PKDD'99 columns in file order, `day`, `signed`, `label`."""
    frame = raw_trans.sort_values(["date", "trans_id"], kind="stable").reset_index(drop=True)
    frame = frame.assign(
        **{
            column: frame[column].astype(object).where(frame[column].notna(), np.nan)
            for column in TEXT_COLUMNS
            if column in frame
        }
    )
    frame["amount"] = frame["amount"].astype(float)
    frame["balance"] = frame["balance"].astype(float)
    frame["day"] = pd.to_datetime(frame["date"])
    frame["signed"] = np.where(frame["type"] == CREDIT, frame["amount"], -frame["amount"])
    frame["position"] = np.arange(len(frame), dtype=float)
    frame["label"] = NORMAL
    return frame


def plant(
    trans: pd.DataFrame,
    months: Sequence[date],
    per_kind: int,
    seed: int,
    first_new_id: int | None = None,
) -> pd.DataFrame:
    """`trans` (see `injector_frame`) with up to `per_kind` rows of each row kind planted in each month of `months`.

    The kinds of several postings (`burst`, `sequence_change`, `month_overspend`) get up to one group per
    month. New postings get ids from `first_new_id` on (default: after the frame's largest). Returns the
    raw columns, `label` (the kind, or `normal`) in (date, position) order.
    """
    spans = [(pd.Timestamp(month), pd.Timestamp(_next_month(month))) for month in months]
    injector = Injector(trans.copy(), pd.DataFrame(), seed, plant_in=spans)
    if first_new_id is not None:
        injector.next_id = max(injector.next_id, first_new_id)
    for span in spans:
        injector.plant_within([span])
        for kind_plant, count in (
            (injector.wrong_amounts, per_kind),
            (injector.data_entry, per_kind),
            (injector.duplicates, per_kind),
            (injector.bursts, 1),
            (injector.unusual_payees, per_kind),
            (injector.beyond_habits, per_kind),
            (injector.ledger_breaks, per_kind),
            (injector.wrong_prices, per_kind),
            (injector.omitted_postings, per_kind),
            (injector.sequence_changes, 1),
            (injector.month_overspends, 1),
        ):
            kind_plant(count)
    planted = injector.result()
    planted["date"] = planted["day"].dt.date
    for column in NULLABLE_TEXT:
        values = planted[column].astype(object)
        blank = values.isna() | (values.astype(str).str.strip() == "")
        planted[column] = values.where(~blank, None)
    return planted[[*TRANS_COLUMNS, "label"]].reset_index(drop=True)


@dataclass(frozen=True)
class Canaries:
    """The canary copy's feature rows and what was planted in them.

    `features`: rows of `marts.fct_transaction_features` built from the copy, of the sampled `accounts`,
    dated within the months asked for and the `lookback_days` before each; `kinds`: the planted kind of
    each labelled trans_id; `removed`: trans_ids of the real rows the copy no longer holds (omitted
    postings).
    """

    features: pd.DataFrame
    kinds: dict[int, str]
    accounts: frozenset[int]
    removed: frozenset[int]

    def counts(self, month: date | None = None) -> dict[str, int]:
        """Planted rows per kind (of `month` only, when given) that have feature rows."""
        rows = self.features
        if month is not None:
            days = pd.to_datetime(rows["trans_date"])
            rows = rows.loc[(days >= pd.Timestamp(month)) & (days < pd.Timestamp(_next_month(month)))]
        kinds = pd.Series([self.kinds.get(int(trans_id), NORMAL) for trans_id in rows["trans_id"]], dtype=object)
        counted = kinds[kinds != NORMAL].value_counts()
        return {str(kind): int(count) for kind, count in counted.sort_index().items()}


def sample_accounts(connection: psycopg.Connection, size: int, seed: int) -> list[int]:
    """`size` account ids drawn at random (the same for a seed and the same accounts), sorted."""
    accounts = [int(row[0]) for row in connection.execute("SELECT account_id FROM raw.fin_account ORDER BY 1")]
    if len(accounts) <= size:
        return accounts
    chosen = np.random.default_rng(seed).choice(len(accounts), size=size, replace=False)
    return sorted(accounts[index] for index in chosen)


def read_sampled_relations(
    connection: psycopg.Connection, accounts: Sequence[int], until: date
) -> dict[str, pd.DataFrame]:
    """The raw relations of `accounts`: their rows of every relation, transactions dated before `until`."""
    account_list = list(accounts)
    queries = {
        "district": ("SELECT * FROM raw.fin_district", ()),
        "account": ("SELECT * FROM raw.fin_account WHERE account_id = ANY(%s)", (account_list,)),
        "disp": ("SELECT * FROM raw.fin_disp WHERE account_id = ANY(%s)", (account_list,)),
        "client": (
            "SELECT * FROM raw.fin_client WHERE client_id IN "
            "(SELECT client_id FROM raw.fin_disp WHERE account_id = ANY(%s))",
            (account_list,),
        ),
        "order": ("SELECT * FROM raw.fin_order WHERE account_id = ANY(%s)", (account_list,)),
        "loan": ("SELECT * FROM raw.fin_loan WHERE account_id = ANY(%s)", (account_list,)),
        "card": (
            "SELECT * FROM raw.fin_card WHERE disp_id IN (SELECT disp_id FROM raw.fin_disp WHERE account_id = ANY(%s))",
            (account_list,),
        ),
        "trans": (
            "SELECT * FROM raw.fin_trans WHERE account_id = ANY(%s) AND date < %s ORDER BY date, trans_id",
            (account_list, until),
        ),
    }
    return {relation: read_query(connection, query, params) for relation, (query, params) in queries.items()}


def load_relations(connection: psycopg.Connection, relations: dict[str, pd.DataFrame]) -> None:
    """Create the raw schema and COPY `relations` into it, analysed as autovacuum would leave them."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_raw_schema(cursor)
        for name, frame in relations.items():
            copy_frame(cursor, raw_table(RELATIONS[name]), _typed(frame, RELATIONS[name]))
    connection.execute("ANALYZE")


def _typed(frame: pd.DataFrame, relation: Relation) -> pd.DataFrame:
    """The relation's columns of `frame` as COPY writes them: integers without a decimal point, dates as dates."""
    columns: dict[str, pd.Series] = {}
    for column in relation.columns:
        values = frame[column.name]
        if column.type == ColumnType.INT:
            values = values.astype("Int64")
        elif column.type == ColumnType.DATE:
            values = pd.Series(pd.to_datetime(values).dt.date, index=frame.index, dtype=object)
        columns[column.name] = values
    return pd.DataFrame(columns)


@contextmanager
def canary_database(server: PostgresTarget, name: str) -> Iterator[PostgresTarget]:
    """A new empty database `name` on `server` (one left by a crash is dropped first), dropped on exit."""
    identifier = sql.Identifier(name)
    with connect(server, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
    try:
        yield replace(server, dbname=name)
    finally:
        with connect(server, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))


CANARY_LOCK = "canaries.lock"
"""The lock of the canary database: runs of different months that retrain take it in turn."""


def canary_database_name(dbname: str) -> str:
    """The canary database of the production database `dbname`: a fixed name, so dbt's saved parse stays valid."""
    return f"{dbname[:50]}_canaries"


def run_feature_models(
    target: PostgresTarget, project_dir: Path, target_path: Path, window: tuple[date, date] | None = None
) -> None:
    """`dbt run` of the feature mart and the models it reads, against `target`; RuntimeError when it fails.

    `window` [start, end) limits the mart's rows as a partition run does (ADS_FEATURES_MIN_DATE / _MAX_DATE).
    """
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt) if dbt.exists() else "dbt", "run", "--quiet", "--select", "+fct_transaction_features"]
    command += ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
    command += ["--target-path", str(target_path), "--log-path", str(target_path / "logs")]
    start, end = (f"{bound:%Y-%m-%d}" for bound in window) if window else ("", "")
    environment = {
        **os.environ,
        **target.dbt_profile_env(),
        "ADS_FEATURES_MIN_DATE": start,
        "ADS_FEATURES_MAX_DATE": end,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    target_path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, env=environment, capture_output=True, text=True)  # noqa: S603 - fixed dbt argv, no shell
    if result.returncode != 0:
        raise RuntimeError(f"dbt run of the canary features failed:\n{target.scrub(result.stdout + result.stderr)}")


def build_canaries(
    server: PostgresTarget,
    source: psycopg.Connection,
    months: Sequence[date],
    project_dir: Path,
    target_path: Path,
    accounts: int = 400,
    per_kind: int = 4,
    lookback_days: int = 60,
    seed: int = 0,
) -> Canaries:
    """The canary copy of the bank in `source` for `months` (first days), built on `server` and dropped again.

    A deterministic sample of `accounts` accounts, their relations and their transactions up to the end of
    the last month, with about `per_kind` rows of each kind planted per month (see `plant`), run through
    the dbt feature models in a database of its own. Returns the feature rows of each month and of the
    `lookback_days` before it.
    """
    months = sorted(set(months))
    sampled = sample_accounts(source, accounts, seed)
    until = _next_month(months[-1])
    relations = read_sampled_relations(source, sampled, until)
    last_id = source.execute("SELECT coalesce(max(trans_id), 0) FROM raw.fin_trans").fetchone()
    real = injector_frame(relations["trans"])
    planted = plant(real, months, per_kind, seed, first_new_id=int(last_id[0] if last_id else 0) + 1)
    relations["trans"] = planted.drop(columns="label")
    spans = [(month - timedelta(days=lookback_days), _next_month(month)) for month in months]
    with (
        waiting_lock(Settings.from_env().home / LOCKS_FOLDER / CANARY_LOCK),
        canary_database(server, canary_database_name(server.dbname)) as target,
    ):
        with connect(target) as connection:
            load_relations(connection, relations)
        run_feature_models(target, project_dir, target_path, (spans[0][0], until))
        with connect(target) as connection:
            features = read_spans(connection, spans)
    labelled = planted.loc[planted["label"] != NORMAL]
    return Canaries(
        features=features,
        kinds=dict(zip(labelled["trans_id"].astype(int), labelled["label"].astype(str), strict=True)),
        accounts=frozenset(sampled),
        removed=frozenset(set(real["trans_id"].astype(int)) - set(planted["trans_id"].astype(int))),
    )


def read_spans(connection: psycopg.Connection, spans: Sequence[tuple[date, date]]) -> pd.DataFrame:
    """The feature rows dated within any of `spans` ([start, end) each), in (trans_date, trans_id) order."""
    condition = sql.SQL(" OR ").join(sql.SQL("(trans_date >= %s AND trans_date < %s)") for _ in spans)
    query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY trans_date, trans_id").format(
        sql.Identifier(*FEATURES_TABLE.split(".")), condition
    )
    return read_query(connection, query.as_string(connection), [bound for span in spans for bound in span])


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)
