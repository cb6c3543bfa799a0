"""Hand-built feature-mart frames for detector tests that need no Postgres.

`ledger_frame` makes accounts with a monthly salary, a fixed household payment to one payee and a
few cash withdrawals a month, with running balances and the per-account history columns the model
features read (computed over each account's earlier rows of the same kind, a simplification of the
mart's 90-day windows that keeps every value exact and easy to check).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = {
    "collection_from_other_bank": (1, "PRIJEM", "PREVOD Z UCTU", ""),
    "household_payment": (-1, "VYDAJ", "PREVOD NA UCET", "SIPO"),
    "cash_withdrawal": (-1, "VYDAJ", "VYBER", ""),
}


def ledger_frame(accounts: int = 40, months: int = 6, seed: int = 0, start: str = "1997-01-01") -> pd.DataFrame:
    """Mart-like rows of `accounts` regular accounts over `months` months, in (date, trans_id) order."""
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(start)
    rows: list[dict[str, object]] = []
    for account in range(1, accounts + 1):
        salary = float(rng.integers(8, 30) * 1000)
        household = float(rng.integers(10, 60) * 37.5)
        payee = f"{rng.integers(10**7, 10**8)}"
        for month in range(months):
            base = first + pd.DateOffset(months=month)
            rows.append(
                _row(
                    account,
                    base + pd.Timedelta(days=int(rng.integers(0, 3))),
                    "collection_from_other_bank",
                    salary,
                    "AB",
                    f"{account}00",
                )
            )
            rows.append(
                _row(
                    account,
                    base + pd.Timedelta(days=int(rng.integers(10, 14))),
                    "household_payment",
                    household,
                    "CD",
                    payee,
                )
            )
            for _ in range(int(rng.integers(2, 5))):
                amount = float(np.round(rng.lognormal(np.log(salary / 8), 0.4), -1))
                rows.append(
                    _row(account, base + pd.Timedelta(days=int(rng.integers(3, 27))), "cash_withdrawal", amount, "", "")
                )
    return with_history(pd.DataFrame(rows))


def _row(account: int, day: pd.Timestamp, kind: str, amount: float, bank: str, payee: str) -> dict[str, object]:
    direction, trans_type, operation, category = KINDS[kind]
    return {
        "account_id": account,
        "trans_date": day,
        "transaction_kind": kind,
        "transaction_type": trans_type,
        "operation": operation,
        "category": category,
        "direction": direction,
        "amount": amount,
        "counterparty_bank": bank or None,
        "counterparty_account": payee or None,
        "account_district_id": account % 3 + 1,
        "district_average_salary": 9000.0,
    }


def with_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Order the rows, number them, and add balances and each account's earlier-rows statistics."""
    frame = frame.sort_values(["account_id", "trans_date", "direction"], ascending=[True, True, False], kind="stable")
    frame = frame.reset_index(drop=True)
    signed = frame["amount"] * frame["direction"]
    frame["balance_after"] = signed.groupby(frame["account_id"]).cumsum() + 1000.0
    frame["balance_before"] = frame["balance_after"] - signed
    frame["balance_change_pct"] = 100 * signed / frame["balance_before"].abs().clip(lower=1)
    frame["signed_amount"] = signed
    kind = frame.groupby(["account_id", "transaction_kind"])["amount"]
    frame["kind_txn_count_90d"] = kind.cumcount()
    earlier = kind.shift()
    grouped = earlier.groupby([frame["account_id"], frame["transaction_kind"]])
    frame["kind_amount_mean_90d"] = grouped.transform(lambda s: s.expanding().mean())
    frame["kind_amount_median_90d"] = grouped.transform(lambda s: s.expanding().median())
    frame["kind_amount_max_90d"] = grouped.transform(lambda s: s.expanding().max())
    frame["kind_amount_std_90d"] = grouped.transform(lambda s: s.expanding().std()).fillna(0.0)
    frame["days_since_previous_txn"] = frame.groupby("account_id")["trans_date"].diff().dt.days
    frame["txn_count_day"] = frame.groupby(["account_id", "trans_date"])["amount"].transform("size")
    frame["txn_count_7d"] = frame["txn_count_day"]
    payee = frame["counterparty_account"].fillna("")
    paid = frame.groupby(["account_id", payee]).cumcount()
    frame["counterparty_previous_txn_count"] = np.where(payee != "", paid, np.nan)
    frame["is_new_counterparty"] = pd.array(np.where(payee != "", paid == 0, pd.NA), dtype="boolean")
    frame["is_repeat_amount_to_counterparty"] = frame.groupby(["account_id", payee, "amount"]).cumcount() > 0
    frame["is_duplicate_posting"] = False
    frame = frame.sort_values(["trans_date", "account_id"], kind="stable").reset_index(drop=True)
    frame["trans_id"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    frame["trans_month"] = frame["trans_date"].dt.to_period("M").dt.to_timestamp()
    frame["ledger_gap"] = 0.0
    return frame
