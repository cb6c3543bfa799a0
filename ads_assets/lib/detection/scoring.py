"""Scoring one month: the rows of `anomaly.transaction_scores` for a month's transactions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from .ensemble import EnsembleDetector, Scored
from .tables import ANALYST_COLUMNS, SCORE_COLUMNS


def by_date(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in (trans_date, trans_id) order, so training and digests do not depend on the database's row order."""
    return frame.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True) if len(frame) else frame


def empty_scores() -> pd.DataFrame:
    """A score table without rows."""
    return pd.DataFrame(columns=SCORE_COLUMNS)


def score_month(
    ensemble: EnsembleDetector,
    features: pd.DataFrame,
    month: date,
    version: str,
    history: pd.DataFrame | None = None,
    scored: Scored | None = None,
) -> pd.DataFrame:
    """The `anomaly.transaction_scores` rows of one month: scores, per-detector scores, alert flags and reasons.

    `history`: the month's accounts' earlier rows, for detectors that read sequences (`ensemble.lookback_days`).
    `scored`: the ensemble's verdict on `features` when the caller has it already.
    """
    if features.empty:
        return empty_scores()
    frame = features.reset_index(drop=True)
    scored = scored if scored is not None else ensemble.score_frame(frame, history)
    table = scored.table
    reasons = ensemble.explain(frame, scored=scored, only_flagged=True, history=history)
    reason_by_trans = {int(reason["trans_id"]): json.dumps(reason, default=str) for reason in reasons}
    sentence_by_trans = {int(reason["trans_id"]): reason.get("sentence") for reason in reasons}
    rule_names = [rule.name for rule in ensemble.rules.rules]
    severities = table[rule_names].to_numpy() if rule_names else np.zeros((len(table), 0))
    trans_ids = table["trans_id"].astype("int64")
    return pd.DataFrame(
        {
            "trans_id": trans_ids.to_numpy(),
            "account_id": table["account_id"].astype("int64").to_numpy(),
            "trans_date": pd.to_datetime(frame["trans_date"]).dt.date.to_numpy(),
            "month": f"{month:%Y-%m}",
            "score": table["score"].astype(float).to_numpy(),
            "is_anomaly": table["flagged"].astype(bool).to_numpy(),
            "detector_scores": scored.detector_scores(),
            "rule_hits": [[rule_names[i] for i in np.flatnonzero(row > 0)] for row in severities],
            "reasons": [reason_by_trans.get(int(trans_id)) for trans_id in trans_ids],
            "model_version": version,
            "scored_at": datetime.now(UTC),
            **analyst_columns(frame, [sentence_by_trans.get(int(trans_id)) for trans_id in trans_ids]),
        }
    )


def analyst_columns(features: pd.DataFrame, sentences: list[str | None]) -> dict[str, pd.Series]:
    """The score rows' `ANALYST_COLUMNS`, in `features`' row order: the reason sentences given, and what each
    copies of its feature row."""
    index = pd.RangeIndex(len(features))
    columns = {}
    for column in ANALYST_COLUMNS:
        values = sentences if column.feature is None else features[column.feature].to_numpy()
        columns[column.name] = pd.Series(values, index=index).astype(PANDAS_TYPES[column.arrow_type])
    return columns


PANDAS_TYPES = {pa.string(): "string", pa.float64(): "float64", pa.int64(): "Int64"}
"""The pandas dtype of each Arrow type of `ANALYST_COLUMNS`, nullable where pandas has one."""


def postgres_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The score rows with `detector_scores` as JSON text, as Postgres COPY takes jsonb."""
    return scores.assign(detector_scores=[json.dumps(value) for value in scores["detector_scores"]])


def parquet_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The score rows with `detector_scores` as key/value pairs, as Arrow builds a map, without `month`."""
    pairs = [list(value.items()) for value in scores["detector_scores"]]
    return scores.drop(columns=["month"]).assign(detector_scores=pairs)
