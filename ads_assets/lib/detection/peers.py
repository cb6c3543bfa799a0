"""What a transaction's peers look like: the amounts of the same kind in the same district, and of the same payee.

`PeerProfile.fit(training)` learns, from training rows only:

- how common each transaction kind is (`kind_share_`): a kind the bank rarely sees is a raw signal
  a plain model on the raw columns sees too;
- the usual log amount of each kind among the accounts of each district, and how much it varies
  (`peer_stats_`, median and interquartile spread; a district with fewer than `min_rows` rows of the
  kind falls back to the kind across the bank);
- for every payee (counterparty bank and account) paid in training: how many accounts pay it and
  its usual log amount over all of them (`payee_stats_`).

`transform(frame)` adds the columns `kind_share`, `peer_log_amount_median`, `peer_log_amount_spread`,
`payee_payers` and `payee_log_amount_median` (and the two medians in crowns for explanations) that the model features `kind_rarity`,
`amount_vs_peers`, `payee_reach` and `amount_vs_payee_peers` read. A payment five times what the
customer's peers pay for the same thing is material whatever the district's salaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import numpy as np
import pandas as pd

from .base import numeric, text

PEER_COLUMNS = (
    "kind_share",
    "peer_log_amount_median",
    "peer_log_amount_spread",
    "payee_payers",
    "payee_log_amount_median",
)
PAIR_BASE = 1_000_000
"""Kind code times this plus district id plus one: one integer per (kind, district) pair."""
MIN_SPREAD = 0.25
"""log units: the narrowest spread a peer group is given (amounts of one kind vary by at least ~25 %)."""


def _log_amount(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.fmax(numeric(frame, "amount"), 0.0))


def _district(frame: pd.DataFrame) -> np.ndarray:
    return np.nan_to_num(numeric(frame, "account_district_id"), nan=-1.0).astype(np.int64)


def _payee(frame: pd.DataFrame) -> np.ndarray:
    account = text(frame, "counterparty_account")
    bank = text(frame, "counterparty_bank")
    return np.where(account != "", bank + "/" + account, "")


def _robust(values: pd.core.groupby.SeriesGroupBy) -> pd.DataFrame:
    quartiles = values.quantile([0.25, 0.5, 0.75]).unstack()
    return pd.DataFrame(
        {
            "median": quartiles[0.5],
            "spread": np.fmax((quartiles[0.75] - quartiles[0.25]) / 1.349, MIN_SPREAD),
            "rows": values.size(),
        }
    )


@dataclass
class PeerProfile:
    """Kind shares, per kind-and-district amount levels and per payee amount levels of the training rows."""

    min_rows: int = 30
    kind_share_: dict[str, float] = field(default_factory=dict)
    kind_stats_: pd.DataFrame = field(default_factory=pd.DataFrame)
    peer_stats_: pd.DataFrame = field(default_factory=pd.DataFrame)
    payee_stats_: pd.DataFrame = field(default_factory=pd.DataFrame)

    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn the peer statistics of `frame` (training rows)."""
        rows = pd.DataFrame(
            {
                "kind": text(frame, "transaction_kind"),
                "district": _district(frame),
                "log_amount": _log_amount(frame),
                "payee": _payee(frame),
                "account": numeric(frame, "account_id"),
            }
        )
        counts = rows["kind"].value_counts()
        self.kind_share_ = {str(kind): float(count / max(len(rows), 1)) for kind, count in counts.items()}
        self.kind_stats_ = _robust(rows.groupby("kind")["log_amount"])
        by_district = _robust(rows.groupby(["kind", "district"])["log_amount"])
        self.peer_stats_ = by_district.loc[by_district["rows"] >= self.min_rows]
        paid = rows.loc[rows["payee"] != ""]
        payees = paid.groupby("payee").agg(payers=("account", "nunique"), log_amount=("log_amount", "median"))
        self.payee_stats_ = payees
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the peer columns added (existing ones are kept)."""
        if all(column in frame.columns for column in PEER_COLUMNS):
            return frame
        out = frame.copy(deep=False)
        kinds = text(frame, "transaction_kind")
        codes, uniques = pd.factorize(kinds)
        shares = np.asarray([self.kind_share_.get(kind, 0.0) for kind in uniques] + [0.0], dtype=np.float64)
        out["kind_share"] = shares[codes]
        pairs, keys = pd.factorize(codes.astype(np.int64) * PAIR_BASE + _district(frame) + 1)
        pair_kinds = np.asarray(uniques, dtype=object)[keys // PAIR_BASE] if len(keys) else np.zeros(0, dtype=object)
        pair_index = pd.MultiIndex.from_arrays([pair_kinds, keys % PAIR_BASE - 1])
        district_level = self.peer_stats_.reindex(pair_index)
        kind_level = self.kind_stats_.reindex(pair_kinds)
        for column, source in (("peer_log_amount_median", "median"), ("peer_log_amount_spread", "spread")):
            chosen = np.where(
                district_level[source].notna().to_numpy(),
                district_level[source].to_numpy(dtype=np.float64, na_value=np.nan),
                kind_level[source].to_numpy(dtype=np.float64, na_value=np.nan),
            )
            out[column] = chosen[pairs]
        payee_codes, payee_uniques = pd.factorize(_payee(frame))
        payees = self.payee_stats_.reindex(payee_uniques)
        out["payee_payers"] = payees["payers"].to_numpy(dtype=np.float64, na_value=0.0)[payee_codes]
        out["payee_log_amount_median"] = payees["log_amount"].to_numpy(dtype=np.float64, na_value=np.nan)[payee_codes]
        out["peer_amount_median"] = np.round(np.expm1(out["peer_log_amount_median"].to_numpy()), 2)
        out["payee_amount_median"] = np.round(np.expm1(out["payee_log_amount_median"].to_numpy()), 2)
        return out
