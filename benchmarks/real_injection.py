"""Detection on REAL Berka transactions with anomalies planted by an injector independent of the generator.

Reads the real PKDD'99 files beside the repository (`../shared/data/berka/pkdd99`: the complete
relations and the first 49,102 transactions), plants labelled anomalies of every kind the design
names, writes the result as a PKDD'99 folder, runs `ads run --source` on it in a fresh ADS_HOME and
reads back the published Parquet (`{output}/transaction_scores/month=YYYY-MM/`). Prints the planted
counts, a re-derivation of every balance chain (where it breaks, by kind), then per kind and overall
the average precision and the recall within each month's top 1 % of the ensemble's `score`, of each
published detector score, and of a plain Isolation Forest on the raw columns (amount, balance,
one-hot type / operation / category) fitted on all transactions; the kinds the machine-learning part
alone (`ml`) finds at >= 0.5 top-1 % recall; whether the ensemble's overall AP is at least the plain
forest's; and the recall and precision of the published missing payments against the removed
standing-order payments. Exit status 1 when `ads run` fails or a balance chain breaks where no kind
explains it.

The partial file stops within its last day (some of that day's postings are missing, which breaks
those accounts' ledgers for real), so that day is left out; the rest of the real file's chains hold
(within 0.10: interest is rounded at times). The injector keeps every balance chain consistent
except where the kind is a broken ledger or an amount typed wrong while the balance was posted right
(`data_entry`); a planted posting continues from the posted balance its account-day closes at.
About `--per-kind` rows of each kind are planted, or `--per-kind // 6` groups for the kinds of
several postings (`burst`, `sequence_change`, `month_overspend`):

- `wrong_amount`: a posting at 10x or 100x its amount, balances carried forward;
- `data_entry`: the amount's digits transposed or a zero appended, the balance left as posted;
- `duplicate`: a payment posted a second time the same day, under a new id;
- `burst`: 5 to 8 cash withdrawals of one account on one day;
- `unusual_payee`: a payment of 2 to 5 times the account's largest earlier payment to an unseen account;
- `ledger_break`: one balance shifted by 100 to 10,000 without the rest of its chain;
- `beyond_habits`: a cash withdrawal of 4 to 10 times the account's largest earlier withdrawal;
- `missing_bill`: a standing-order payment removed (labelled by account and month);
- `wrong_price`: a recurring payment (SIPO household, POJISTNE insurance, UVER loan, or a transfer
  repeated to the same payee at the same amount, at least twice before) posted at 1.15 to 1.6 or
  0.4 to 0.85 times its usual amount, balances carried forward;
- `sequence_change`: a quiet pension account (DUCHOD credits, never more than 2 cash withdrawals in
  8 days) that withdraws every day for 5 to 8 days, each 0.5 to 1.5 times its median withdrawal
  (cash, or by card where the account used its card before); every withdrawal labelled;
- `month_overspend`: 4 to 8 extra cash withdrawals on different days of one month, each 1 to 2
  times the account's median withdrawal, the month's withdrawals at least 3 times its usual month;
  every withdrawal labelled;
- `omitted_posting`: a posting without counterparty (cash, fee or interest of 100 or more) removed
  with the later balances left as posted; the account's next posting, the first whose balance no
  longer follows, is labelled.

The first eight kinds are planted first and draw the same rows for a seed as before; the last four
avoid every account-day within a few days of another kind's (and one another's).

The published scores are read robustly: the ensemble `score`, each key of the map `detector_scores`
(`iforest`, `lof`, `lstm`, ..., `ml` for the machine-learning part, `rules` for the rules') and, in
an output without the map, the columns `iforest_score` / `lof_score` instead.

Usage::

    python benchmarks/real_injection.py [--per-kind 40] [--seed 7] [--keep DIR] [--ads-args "..."]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parents[1]

REAL = REPO.parent / "shared" / "data" / "berka" / "pkdd99"
RELATIONS = ("account", "card", "client", "disp", "district", "loan", "order")
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


def read_transactions(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep=";", dtype={"date": str, "bank": str, "account": str, "k_symbol": str})
    frame["day"] = pd.to_datetime(frame["date"], format="%y%m%d")
    frame["signed"] = np.where(frame["type"] == "PRIJEM", frame["amount"], -frame["amount"])
    frame["position"] = np.arange(len(frame), dtype=float)
    frame["label"] = "normal"
    return frame


class Injector:
    """Plants labelled anomalies into real transactions; balances follow unless the kind breaks them.

    Several transactions of one account on one day come in no known order, so a posting is changed
    or removed only where it is its account's one transaction that day, and planted postings go after
    the day's last one: every later balance then moves by the change, and no same-day order is assumed.
    """

    def __init__(self, trans: pd.DataFrame, orders: pd.DataFrame, seed: int) -> None:
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


def write_source(frame: pd.DataFrame, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for relation in RELATIONS:
        shutil.copyfile(REAL / f"{relation}.asc", folder / f"{relation}.asc")
    out = frame[TRANS_COLUMNS].copy()
    out["amount"] = out["amount"].map(lambda value: f"{value:.2f}")
    out["balance"] = out["balance"].map(lambda value: f"{value:.2f}")
    text = ['"' + '";"'.join(TRANS_COLUMNS) + '"']
    for record in out.itertuples(index=False):
        quoted = [str(record.trans_id), str(record.account_id), record.date]
        quoted += [f'"{record.type}"', f'"{record.operation}"' if isinstance(record.operation, str) else '""']
        quoted += [record.amount, record.balance, f'"{record.k_symbol}"' if isinstance(record.k_symbol, str) else '""']
        quoted += [f'"{record.bank}"' if isinstance(record.bank, str) and record.bank else ""]
        quoted += [f'"{record.account}"' if isinstance(record.account, str) and record.account else ""]
        text.append(";".join(quoted))
    (folder / "trans.asc").write_text("\r\n".join(text) + "\r\n", encoding="latin-1")


def plant_all(trans: pd.DataFrame, orders: pd.DataFrame, per_kind: int, seed: int) -> tuple[pd.DataFrame, Injector]:
    """The transactions with every kind planted: about `per_kind` rows (or `per_kind // 6` groups) each."""
    injector = Injector(trans, orders, seed)
    groups = max(1, per_kind // 6)
    for plant, count in (
        (injector.missing_bills, per_kind),
        (injector.wrong_amounts, per_kind),
        (injector.data_entry, per_kind),
        (injector.duplicates, per_kind),
        (injector.bursts, groups),
        (injector.unusual_payees, per_kind),
        (injector.beyond_habits, per_kind),
        (injector.ledger_breaks, per_kind),
        (injector.wrong_prices, per_kind),
        (injector.omitted_postings, per_kind),
        (injector.sequence_changes, groups),
        (injector.month_overspends, groups),
    ):
        plant(count)
    return injector.result(), injector


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


def check_ledger(planted: pd.DataFrame) -> tuple[str, int]:
    """Where the planted file's balance chains break, by label; and how many breaks no kind explains."""
    broken, unexplained = unexplained_breaks(planted)
    label = planted["label"]
    counts = label[broken].value_counts()
    parts = ", ".join(f"{kind} {counts.get(kind, 0)}/{int((label == kind).sum())}" for kind in BROKEN_LEDGER_KINDS)
    after = int((broken & ~unexplained & ~label.isin(BROKEN_LEDGER_KINDS)).sum())
    return (
        f"balance chains re-derived: {int(broken.sum())} postings break ({parts}, {after} right after a "
        f"shifted balance); {int(unexplained.sum())} elsewhere",
        int(unexplained.sum()),
    )


def read_scores(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The published scores (trans_id, score, is_anomaly), one column per detector score, and where those came from.

    Detector scores come from the map column `detector_scores` (map<string, double>) where the
    output has it, else from the columns `iforest_score`, `lof_score` (and `ml_score`, `rules_score`)
    of an older output. Partitions written with and without the map are read together (the missing
    column reads as null).
    """
    dataset = ds.dataset(folder, partitioning="hive")
    fragments = list(dataset.get_fragments())
    if fragments:
        schema = pa.unify_schemas([fragment.physical_schema for fragment in fragments])
        dataset = ds.dataset(folder, schema=schema, partitioning="hive")
    table = dataset.to_table()
    frame = table.select([name for name in ("trans_id", "score", "is_anomaly") if name in table.column_names])
    frame = frame.to_pandas()
    parts = pd.DataFrame(index=frame.index)
    if "detector_scores" in table.column_names:
        records = [dict(value) if value else {} for value in table.column("detector_scores").to_pylist()]
        parts = pd.DataFrame.from_records(records, index=frame.index).astype(float)
    for name in ("iforest", "lof", "lstm", "ml", "rules"):
        if f"{name}_score" in table.column_names:
            column = pd.Series(table.column(f"{name}_score").to_pandas().astype(float).to_numpy(), index=frame.index)
            parts[name] = parts[name].fillna(column) if name in parts else column
    parts = parts.loc[:, parts.notna().any()]
    first = [name for name in ("ml", "rules") if name in parts]
    parts = parts[first + sorted(set(parts.columns) - set(first))]
    fallback = [f"`{name}`" for name in table.column_names if name.endswith("_score") and name != "score"]
    origin = " and ".join(
        ["the map `detector_scores`"] * ("detector_scores" in table.column_names)
        + [f"the columns {', '.join(fallback)}"] * bool(fallback)
    )
    return frame, parts, origin or "nowhere (no detector scores published)"


def metric_table(results: dict[str, pd.DataFrame], metric: str, title: str) -> str:
    """One metric: a row per kind (overall first), a column per scorer."""
    names = list(results)
    any_result = next(iter(results.values()))
    width = max(len(kind) for kind in any_result.index) + 2
    columns = [max(9, len(name) + 2) for name in names]
    header = f"{title:<{width}}{'rows':>7}" + "".join(f"{name:>{w}}" for name, w in zip(names, columns, strict=True))
    lines = [header, "-" * len(header)]
    for kind in any_result.index:
        cells = "".join(f"{results[name].loc[kind, metric]:>{w}.3f}" for name, w in zip(names, columns, strict=True))
        lines.append(f"{kind:<{width}}{any_result.loc[kind, 'rows']:>7,}{cells}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=40, help="planted anomalies (or bursts) of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder instead of a temporary one")
    parser.add_argument(
        "--ads-args", default="", help='further arguments of `ads run`, one string split as a shell would: "--x y"'
    )
    args = parser.parse_args()
    if not REAL.exists():
        print(f"the real Berka files are not at {REAL}; nothing to measure")
        return 2
    # The metrics and the baseline of the generated-data benchmark (imported here, not at the top, so
    # that the injector can be used without the project's modules).
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    from detection import detection_metrics, raw_columns, raw_isolation_forest

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-real-"))
    trans = read_transactions(REAL / "trans_partial.asc")
    trans = trans.loc[trans["day"] < trans["day"].max()].reset_index(drop=True)
    orders = pd.read_csv(REAL / "order.asc", sep=";", dtype={"account_to": str, "bank_to": str})
    planted, injector = plant_all(trans, orders, args.per_kind, args.seed)
    write_source(planted, work / "source")
    planted[["trans_id", "account_id", "day", "label"]].to_csv(work / "labels.csv", index=False)
    counts = planted["label"].value_counts().drop("normal", errors="ignore").sort_index()
    print(
        f"{len(planted):,} real transactions with {int(counts.sum())} planted rows and "
        f"{len(injector.missing)} removed standing-order payments (seed {args.seed})",
        flush=True,
    )
    print("planted: " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    ledger, unexplained = check_ledger(planted)
    print(ledger, flush=True)

    environment = {**os.environ, "ADS_HOME": str(work / "home"), "GX_ANALYTICS_ENABLED": "false"}
    environment.pop("DAGSTER_HOME", None)
    environment.pop("ADS_MONTHS", None)
    started = time.perf_counter()
    command = [sys.executable, "-m", "ads_assets.cli", "run", "--source", str(work / "source")]
    command += ["--output", str(work / "out"), *shlex.split(args.ads_args)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=REPO)  # noqa: S603 - runs this interpreter's ads CLI with the benchmark's own arguments, no shell
    print(f"ads run: exit {result.returncode} in {time.perf_counter() - started:.0f} s")
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    scores_path = work / "out" / "transaction_scores"
    if not scores_path.exists():
        print(f"no published scores at {scores_path}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 1

    published, parts, origin = read_scores(scores_path)
    detectors = list(parts.columns)
    parts = parts.add_prefix("detector ").assign(trans_id=published["trans_id"].to_numpy())
    scored = planted.merge(published, on="trans_id", how="left").merge(parts, on="trans_id", how="left")
    unscored = int(scored["score"].isna().sum())
    kinds = scored["label"].to_numpy(dtype=object)
    months = scored["day"].dt.strftime("%Y-%m").to_numpy()
    raw = scored.rename(
        columns={"balance": "balance_after", "type": "transaction_type", "k_symbol": "category"}
    ).assign(amount=scored["amount"].astype(float))
    baseline = -raw_isolation_forest(raw, random_state=0).score_samples(raw_columns(raw))

    def lowest_filled(values: pd.Series) -> np.ndarray:
        """Scores with the unscored rows ranked last."""
        floor = values.min() if values.notna().any() else 0.0
        return values.fillna(floor).to_numpy(dtype=float)

    scorers = {"ensemble": lowest_filled(scored["score"])}
    scorers.update({name: lowest_filled(scored[f"detector {name}"]) for name in detectors})
    scorers["raw IF"] = baseline
    results = {name: detection_metrics(values, kinds, months) for name, values in scorers.items()}

    print(f"\n{unscored} transactions without a score; {int(scored['is_anomaly'].fillna(False).sum()):,} flagged")
    print(
        f"scorers: the ensemble's `score`; {', '.join(detectors) or 'no detector'} from {origin}; raw IF, a plain "
        "Isolation Forest on the raw columns (amount, balance, one-hot type / operation / category)"
    )
    print()
    print(metric_table(results, "ap", "average precision"))
    print()
    print(metric_table(results, "recall_top1", "recall in top 1 %"))
    print()
    if "ml" in results:
        recall = results["ml"]["recall_top1"].drop(index="overall")
        found = [kind for kind, value in recall.items() if value >= 0.5]
        print(f"the ML part alone (ml) finds at >= 0.5 top-1 % recall: {', '.join(found) or 'no kind'}")
    else:
        print("the ML part alone (ml): not in this output (no `ml` key in detector_scores)")
    ours, plain = results["ensemble"].loc["overall", "ap"], results["raw IF"].loc["overall", "ap"]
    print(
        f"ensemble overall AP {ours:.3f} {'>=' if ours >= plain else '<'} plain raw-column forest {plain:.3f}: "
        f"{'at least' if ours >= plain else 'below'} the plain forest"
    )

    missing_path = work / "out" / "missing_payments"
    found = (
        ds.dataset(missing_path, partitioning="hive").to_table().to_pandas()
        if missing_path.exists()
        else pd.DataFrame()
    )
    reported = {
        (int(a), f"{pd.Timestamp(m):%Y-%m}")
        for a, m in zip(found.get("account_id", []), found.get("month", []), strict=True)
    }
    expected = set(injector.missing)
    hits = len(expected & reported)
    print(
        f"\nmissing payments: {len(expected)} removed, {len(reported)} reported account-months, "
        f"recall {hits / max(1, len(expected)):.3f}, precision {hits / max(1, len(reported)):.3f}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result.returncode == 0 and unexplained == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
