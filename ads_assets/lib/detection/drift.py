"""Drift of the key features and of the score distribution: the population stability index (PSI) per month.

`psi(reference, current)` compares two samples of one quantity over the reference's decile bins:
PSI = sum over bins of (c - r) * ln(c / r), with r and c the shares of the reference and the current
sample in each bin. The bins are the reference's quantiles (ties merged), so every bin holds about the
same share of the reference and the index does not change under a monotone transform of the quantity
(the amount or its log give the same PSI). Missing values (NaN) form a bin of their own. A bin empty on
one side counts as `EMPTY_SHARE` of that side's rows, so the index stays finite.

The bands are the usual ones (`DRIFT_BANDS`): below 0.1 'stable', 0.1 to 0.25 'moderate', above 0.25
'major'. A month with a major drift of any key feature or of the score (`needs_retrain`) is a month the
model no longer describes: the next month gets a full retrain (`drift_retrain_months`).

`monthly_drift` reports, per month, the PSI of each of `DRIFT_FEATURES` (columns of
`marts.fct_transaction_features` and one ratio derived from them) and optionally of the score, against
one reference (a model's training window, or its reference rows), as rows of `anomaly.drift`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import psycopg

from ..tables import ANOMALY_SCHEMA, copy_frame
from .base import numeric
from .features import model_features
from .training import TrainingWindow, shift_months, training_frame

DRIFT_BANDS: tuple[float, float] = (0.1, 0.25)
"""PSI up to the first is 'stable', up to the second 'moderate', above it 'major'."""
BAND_NAMES: tuple[str, str, str] = ("stable", "moderate", "major")
EMPTY_SHARE = 1e-4
"""The share an empty bin counts as on the side where it is empty."""
SCORE_SUBJECT = "score"

DRIFT_FEATURES: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "amount": lambda frame: numeric(frame, "amount"),
    "amount_vs_history": lambda frame: model_features(frame, ("amount_vs_median",))["amount_vs_median"].to_numpy(),
    "balance_after": lambda frame: numeric(frame, "balance_after"),
    "txn_count_day": lambda frame: numeric(frame, "txn_count_day"),
    "days_since_previous_txn": lambda frame: numeric(frame, "days_since_previous_txn"),
}
"""The key features whose drift is recorded: the amount, the amount against the account's 90-day median of
its kind, the balance after the transaction, the account's transactions that day and the days since its
previous transaction."""

DRIFT_TABLE = f"{ANOMALY_SCHEMA}.drift"
DRIFT_COLUMNS: tuple[str, ...] = ("month", "subject", "psi", "band", "reference", "recorded_at")
DRIFT_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {ANOMALY_SCHEMA};
CREATE TABLE IF NOT EXISTS {DRIFT_TABLE} (
    month text NOT NULL,
    subject text NOT NULL,
    psi double precision NOT NULL,
    band text NOT NULL CHECK (band IN ('stable', 'moderate', 'major')),
    reference text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (month, subject)
);
"""


def _profile(reference: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's interior bin edges (its quantiles at 1/bins, ..., ties merged) and floored bin shares."""
    finite = reference[np.isfinite(reference)]
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])) if len(finite) else np.zeros(0)
    return edges, np.fmax(_shares(reference, edges), EMPTY_SHARE)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each bin's share of `values`, the last bin being the missing values."""
    missing = ~np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1)
    return np.append(counts, missing.sum()) / len(values)


def _psi(profile: tuple[np.ndarray, np.ndarray], current: np.ndarray) -> float:
    edges, expected = profile
    if not len(current):
        return float("nan")
    actual = np.fmax(_shares(current, edges), EMPTY_SHARE)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """The population stability index of `current` against `reference` (see the module); NaN when either is empty."""
    reference = np.asarray(reference, dtype=np.float64)
    if not len(reference):
        return float("nan")
    return _psi(_profile(reference, bins), np.asarray(current, dtype=np.float64))


def band(value: float) -> str:
    """'stable' below 0.1, 'moderate' up to 0.25, 'major' above; a PSI that is not a number has no band."""
    if not np.isfinite(value):
        raise ValueError(f"no band for a PSI of {value}")
    low, high = DRIFT_BANDS
    return BAND_NAMES[0] if value < low else BAND_NAMES[1] if value <= high else BAND_NAMES[2]


def feature_values(frame: pd.DataFrame) -> pd.DataFrame:
    """The key features (`DRIFT_FEATURES`) of every row of a feature-mart frame."""
    return pd.DataFrame({name: compute(frame) for name, compute in DRIFT_FEATURES.items()}, index=frame.index)


def monthly_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_label: str,
    scores: tuple[np.ndarray, np.ndarray] | None = None,
    bins: int = 10,
) -> pd.DataFrame:
    """Per month of `current` (its `trans_month`), the PSI and band of each key feature against `reference`.

    `scores`: the score of every `reference` row and of every `current` row (in row order), to add the
    score distribution as subject 'score'. Rows as in `anomaly.drift` (without `recorded_at`).
    """
    if reference.empty:
        raise ValueError(f"no reference rows to compare months with ({reference_label})")
    reference_values = feature_values(reference)
    current_values = feature_values(current)
    if scores is not None:
        reference_values[SCORE_SUBJECT] = np.asarray(scores[0], dtype=np.float64)
        current_values[SCORE_SUBJECT] = np.asarray(scores[1], dtype=np.float64)
    profiles = {subject: _profile(reference_values[subject].to_numpy(), bins) for subject in current_values.columns}
    months = pd.to_datetime(current["trans_month"]).dt.strftime("%Y-%m").to_numpy()
    rows = []
    for month in sorted(set(months)):
        chosen = months == month
        for subject, profile in profiles.items():
            value = _psi(profile, current_values[subject].to_numpy()[chosen])
            rows.append((month, subject, value, band(value), reference_label))
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS[:-1]))


def needs_retrain(report: pd.DataFrame) -> bool:
    """Whether any PSI of a drift report lies above the major band (0.25)."""
    return bool((report["psi"] > DRIFT_BANDS[1]).any())


def drift_retrain_months(
    features: pd.DataFrame,
    plan: Mapping[date, TrainingWindow],
    training_months: int = 12,
) -> dict[date, TrainingWindow]:
    """Extra training windows forced by drift: the month after each month that drifted beyond the major band.

    Months of `plan` (first days of months, each with the window of the model that scores it) are taken in
    order; a month is compared with the window of the model that actually scores it, which is the window
    of an earlier drift retrain while that one is in force (until the plan's own model changes). When any
    key feature of the month drifted above 0.25 against that window, the next month of the plan (if any)
    is scored by a model of its own, trained on the `training_months` months before it: the returned map
    holds those next months with their windows. Cold-start months are neither judged nor replaced.
    `features` holds the rows of every window and month (`trans_date`, `trans_month` and the key features).
    """
    months = sorted(plan)
    month_of_row = pd.to_datetime(features["trans_month"]).dt.date.to_numpy()
    values = feature_values(features)
    profiles: dict[TrainingWindow, list[tuple[np.ndarray, np.ndarray]]] = {}
    forced: dict[date, TrainingWindow] = {}
    override: tuple[TrainingWindow, TrainingWindow] | None = None
    for month, following in zip(months, [*months[1:], None], strict=True):
        planned = plan[month]
        if month in forced:
            override = (planned, forced[month])
        elif override is not None and override[0] != planned:
            override = None
        window = override[1] if override is not None else planned
        rows = month_of_row == month
        if planned.cold_start or following is None or plan[following].cold_start or not rows.any():
            continue
        if window not in profiles:
            reference = values.loc[training_frame(features, window).index]
            if reference.empty:
                continue
            profiles[window] = [_profile(reference[name].to_numpy(), 10) for name in values.columns]
        drifts = [
            _psi(profile, values[name].to_numpy()[rows])
            for profile, name in zip(profiles[window], values.columns, strict=True)
        ]
        if max(drifts) > DRIFT_BANDS[1]:
            forced[following] = TrainingWindow(shift_months(following, -training_months), following)
    return forced


def ensure_drift_table(cursor: psycopg.Cursor) -> None:
    """Create `anomaly.drift`: per month and subject (a key feature or 'score'), its PSI, band and reference."""
    cursor.execute(DRIFT_DDL)


def write_drift(connection: psycopg.Connection, report: pd.DataFrame, recorded_at: datetime | None = None) -> int:
    """Replace the months of `report` in `anomaly.drift` with its rows, in one transaction; returns rows written."""
    rows = report.assign(recorded_at=recorded_at or datetime.now(UTC))[list(DRIFT_COLUMNS)]
    with connection.transaction(), connection.cursor() as cursor:
        ensure_drift_table(cursor)
        cursor.execute(f"DELETE FROM {DRIFT_TABLE} WHERE month = ANY(%s)", (sorted(set(rows["month"])),))  # noqa: S608 - DRIFT_TABLE is a module constant, months go as a parameter
        copy_frame(cursor, DRIFT_TABLE, rows)
    return len(rows)


def major_drift_since(connection: psycopg.Connection, since: datetime) -> list[tuple[str, datetime]]:
    """(month, recorded_at) of every month recorded with a major drift after `since`."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_drift_table(cursor)
        cursor.execute(
            f"SELECT month, max(recorded_at) FROM {DRIFT_TABLE} WHERE band = 'major' AND recorded_at > %s "  # noqa: S608 - DRIFT_TABLE is a module constant, values go as parameters
            "GROUP BY month ORDER BY month",
            (since,),
        )
        return [(str(month), recorded) for month, recorded in cursor.fetchall()]
