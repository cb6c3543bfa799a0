"""Detection on REAL Berka transactions with anomalies planted by an injector independent of the generator.

Reads the real PKDD'99 files beside the repository (`../shared/data/berka/pkdd99`: the complete
relations and the first 49,102 transactions), plants labelled anomalies of every kind the design
names, writes the result as a PKDD'99 folder, runs `ads run --source` on it in a fresh ADS_HOME and
reads back the published Parquet. Prints, per kind and overall, the average precision and the recall
within each month's top 1 % of `score`, beside a plain Isolation Forest on the raw columns (amount,
balance, one-hot type / operation / category) fitted on all transactions, and the recall and
precision of the published missing payments against the removed standing-order payments.

The partial file stops within its last day (some of that day's postings are missing, which breaks
those accounts' ledgers for real), so that day is left out. The injector keeps every balance chain consistent except where the kind is a broken ledger or an
amount typed wrong while the balance was posted right (`data_entry`):

- `wrong_amount`: a posting at 10x or 100x its amount, balances carried forward;
- `data_entry`: the amount's digits transposed or a zero appended, the balance left as posted;
- `duplicate`: a payment posted a second time the same day, under a new id;
- `burst`: 5 to 8 cash withdrawals of one account on one day;
- `unusual_payee`: a payment of 2 to 5 times the account's largest earlier payment to an unseen account;
- `ledger_break`: one balance shifted by 100 to 10,000 without the rest of its chain;
- `beyond_habits`: a cash withdrawal of 4 to 10 times the account's largest earlier withdrawal;
- `missing_bill`: a standing-order payment removed (labelled by account and month).

Usage::

    python benchmarks/real_injection.py [--per-kind 40] [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from detection import detection_metrics, metrics_table, raw_columns, raw_isolation_forest  # noqa: E402

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
DEBIT = "VYDAJ"


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
        same_day = trans.groupby(["account_id", "day"])["trans_id"].transform("size")
        self.alone = (same_day == 1).to_numpy()
        opening = trans.groupby("account_id")["balance"].transform("first") - trans.groupby("account_id")[
            "signed"
        ].transform("first")
        day_net = trans.groupby(["account_id", "day"])["signed"].transform("sum")
        first_of_day = ~trans.duplicated(["account_id", "day"])
        running = day_net.where(first_of_day, 0.0).groupby(trans["account_id"]).cumsum()
        self.day_close = (opening + running).round(2)
        early = trans["day"] <= trans.groupby("account_id")["day"].transform("min") + pd.Timedelta(days=60)
        busy = trans["account_id"].map(trans["account_id"].value_counts()) >= 20
        self.eligible = (busy & ~early).to_numpy()

    def _pick(self, mask: np.ndarray, count: int, alone: bool = False) -> np.ndarray:
        wanted = mask & ~self.used & self.eligible & (self.alone if alone else True)
        rows = self.rng.choice(np.flatnonzero(wanted), size=min(count, int(wanted.sum())), replace=False)
        self.used[rows] = True
        return rows

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=40, help="planted anomalies (or bursts) of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder instead of a temporary one")
    args = parser.parse_args()
    if not REAL.exists():
        print(f"the real Berka files are not at {REAL}; nothing to measure")
        return 2

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-real-"))
    trans = read_transactions(REAL / "trans_partial.asc")
    trans = trans.loc[trans["day"] < trans["day"].max()].reset_index(drop=True)
    orders = pd.read_csv(REAL / "order.asc", sep=";", dtype={"account_to": str, "bank_to": str})
    injector = Injector(trans, orders, args.seed)
    for plant in (
        injector.missing_bills,
        injector.wrong_amounts,
        injector.data_entry,
        injector.duplicates,
        injector.bursts,
        injector.unusual_payees,
        injector.beyond_habits,
        injector.ledger_breaks,
    ):
        plant(args.per_kind if plant != injector.bursts else max(1, args.per_kind // 6))
    planted = injector.result()
    write_source(planted, work / "source")
    planted[["trans_id", "account_id", "day", "label"]].to_csv(work / "labels.csv", index=False)
    print(
        f"{len(planted):,} real transactions with {int((planted['label'] != 'normal').sum())} planted rows and "
        f"{len(injector.missing)} removed standing-order payments",
        flush=True,
    )

    environment = {**os.environ, "ADS_HOME": str(work / "home"), "GX_ANALYTICS_ENABLED": "false"}
    environment.pop("DAGSTER_HOME", None)
    environment.pop("ADS_MONTHS", None)
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ads_assets.cli",
            "run",
            "--source",
            str(work / "source"),
            "--output",
            str(work / "out"),
        ],
        env=environment,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    print(f"ads run: exit {result.returncode} in {time.perf_counter() - started:.0f} s")
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")

    scores = ds.dataset(work / "out" / "transaction_scores", partitioning="hive").to_table().to_pandas()
    scored = planted.merge(scores[["trans_id", "score", "is_anomaly", "rule_hits"]], on="trans_id", how="left")
    unscored = int(scored["score"].isna().sum())
    scored["score"] = scored["score"].fillna(0.0)
    kinds = scored["label"].to_numpy(dtype=object)
    months = scored["day"].dt.strftime("%Y-%m").to_numpy()
    raw = scored.rename(
        columns={"balance": "balance_after", "type": "transaction_type", "k_symbol": "category"}
    ).assign(amount=scored["amount"].astype(float))
    baseline = -raw_isolation_forest(raw, random_state=0).score_samples(raw_columns(raw))
    ours = detection_metrics(scored["score"].to_numpy(), kinds, months)
    plain = detection_metrics(baseline, kinds, months)

    print(f"\n{unscored} transactions without a score; {int(scored['is_anomaly'].fillna(False).sum()):,} flagged")
    print(metrics_table(ours, plain, "ADS", "ADS"))

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
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
