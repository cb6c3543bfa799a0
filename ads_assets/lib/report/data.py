"""What the anomaly report shows, read from Postgres: daily volumes, scored points, districts, alerts, leaderboard, checks.

Every query is a constant with its values as parameters; a table that a run has not written yet (the
leaderboard before any retrain, the check results before any check) gives an empty frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg

from ads_assets.alerts import AlertFilter, fetch_alerts
from ads_assets.lib.detection.selection import LEADERBOARD_TABLE
from ads_assets.lib.quality.store import CHECK_RESULTS_TABLE
from ads_assets.lib.tables import FEATURES_TABLE, SCORES_TABLE

TOP_ALERTS = 50
FLAGGED_POINTS = 5000
"""The highest-scoring flagged transactions drawn on the amount-against-score chart."""
UNFLAGGED_POINTS = 2000
"""The size of the sample of unflagged transactions drawn in grey beside them."""
SAMPLE_SEED = 42
DISTRICT_TABLE = "raw.fin_district"
ACCOUNT_TABLE = "raw.fin_account"

LEADING_DETECTOR = """
LEFT JOIN LATERAL (
    SELECT part.key AS detector
    FROM jsonb_each(CASE WHEN jsonb_typeof(s.reasons -> 'detectors') = 'object' THEN s.reasons -> 'detectors'
                    ELSE '{}'::jsonb END) AS part
    WHERE part.key <> 'ml' AND jsonb_typeof(part.value -> 'contribution') = 'number'
    ORDER BY (part.value ->> 'contribution')::float8 DESC, part.key
    LIMIT 1
) AS lead ON true
"""
"""The part (`rules` or an ML detector) with the largest contribution in a scored row's reasons: `lead.detector`."""

DAILY_QUERY = f"""
SELECT trans_date, count(*) AS transactions, count(*) FILTER (WHERE is_anomaly) AS flagged
FROM {SCORES_TABLE} GROUP BY trans_date ORDER BY trans_date
"""  # noqa: S608 - table names are module constants
FLAGGED_POINTS_QUERY = f"""
SELECT s.trans_id, f.amount::float8 AS amount, s.score, true AS flagged, lead.detector
FROM {SCORES_TABLE} AS s
LEFT JOIN {FEATURES_TABLE} AS f ON f.trans_id = s.trans_id
{LEADING_DETECTOR}
WHERE s.is_anomaly ORDER BY s.score DESC, s.trans_id LIMIT %s
"""  # noqa: S608 - table names and the lateral join are module constants, values go as parameters
UNFLAGGED_POINTS_QUERY = f"""
SELECT s.trans_id, f.amount::float8 AS amount, s.score, false AS flagged, NULL::text AS detector
FROM (
    SELECT trans_id, score FROM {SCORES_TABLE} TABLESAMPLE BERNOULLI (%s::float8) REPEATABLE ({SAMPLE_SEED})
    WHERE NOT is_anomaly LIMIT %s
) AS s
LEFT JOIN {FEATURES_TABLE} AS f ON f.trans_id = s.trans_id
ORDER BY s.trans_id
"""  # noqa: S608 - table names are module constants, values go as parameters
DISTRICTS_QUERY = f"""
WITH per_account AS (
    SELECT account_id, count(*) AS transactions, count(*) FILTER (WHERE is_anomaly) AS flagged
    FROM {SCORES_TABLE} GROUP BY account_id
)
SELECT d.district_id, d.a2 AS name, coalesce(sum(p.transactions), 0)::bigint AS transactions,
       coalesce(sum(p.flagged), 0)::bigint AS flagged
FROM {DISTRICT_TABLE} AS d
LEFT JOIN {ACCOUNT_TABLE} AS a ON a.district_id = d.district_id
LEFT JOIN per_account AS p ON p.account_id = a.account_id
GROUP BY d.district_id, d.a2 ORDER BY d.district_id
"""  # noqa: S608 - table names are module constants
LEADING_QUERY = f"""
SELECT s.trans_id, lead.detector FROM {SCORES_TABLE} AS s {LEADING_DETECTOR} WHERE s.trans_id = ANY(%s)
"""  # noqa: S608 - table names and the lateral join are module constants, values go as parameters
LEADERBOARD_QUERY = f"""
SELECT month, candidate, rank, average_precision, recall_at_1pct, meets_floor, is_champion
FROM {LEADERBOARD_TABLE} ORDER BY month DESC, rank
"""  # noqa: S608 - table names are module constants
QUALITY_QUERY = f"""
WITH latest AS (
    SELECT DISTINCT ON (asset, partition, check_name) asset, check_name, severity, success
    FROM {CHECK_RESULTS_TABLE} ORDER BY asset, partition, check_name, evaluated_at DESC
)
SELECT asset, count(*) AS checks, count(*) FILTER (WHERE success) AS passed,
       count(*) FILTER (WHERE NOT success AND severity = 'blocking') AS failed_blocking,
       count(*) FILTER (WHERE NOT success AND severity <> 'blocking') AS failed_warning,
       coalesce(string_agg(DISTINCT check_name, ', ') FILTER (WHERE NOT success), '') AS failed_checks
FROM latest GROUP BY asset ORDER BY asset
"""  # noqa: S608 - table names are module constants

DAILY_COLUMNS = ("trans_date", "transactions", "flagged")
POINT_COLUMNS = ("trans_id", "amount", "score", "flagged", "detector")
DISTRICT_COLUMNS = ("district_id", "name", "transactions", "flagged")
ALERT_COLUMNS = (
    "month",
    "trans_id",
    "account_id",
    "trans_date",
    "amount",
    "kind",
    "score",
    "detector",
    "status",
    "sentence",
)
LEADERBOARD_COLUMNS = (
    "month",
    "candidate",
    "rank",
    "average_precision",
    "recall_at_1pct",
    "meets_floor",
    "is_champion",
)
QUALITY_COLUMNS = ("asset", "checks", "passed", "failed_blocking", "failed_warning", "failed_checks")


@dataclass(frozen=True)
class ReportData:
    """Everything the anomaly report of a run shows, as frames with the `*_COLUMNS` columns.

    - `daily`: per transaction date, the transactions scored and flagged;
    - `points`: the flagged transactions (the `FLAGGED_POINTS` highest scores) with the part that contributed
      most to each score (`detector`: `rules` or an ML detector's name), and a sample of unflagged ones
      (`detector` missing); `amount` in CZK, missing for a transaction without features;
    - `districts`: per district of the `district` relation, its name and the transactions of its accounts
      scored and flagged;
    - `alerts`: the `TOP_ALERTS` highest-scoring flagged transactions with their reason's sentence and status;
    - `leaderboard`: every retrain month's candidates by rank, the latest month first;
    - `quality`: per asset, the latest result of each of its checks (per partition) counted.
    """

    run_id: str
    generated_at: datetime
    daily: pd.DataFrame
    points: pd.DataFrame
    districts: pd.DataFrame
    alerts: pd.DataFrame
    leaderboard: pd.DataFrame
    quality: pd.DataFrame

    @property
    def transactions(self) -> int:
        return int(self.daily["transactions"].sum())

    @property
    def flagged(self) -> int:
        return int(self.daily["flagged"].sum())


def _frame(
    connection: psycopg.Connection, query: str, columns: Sequence[str], params: Sequence[Any] = ()
) -> pd.DataFrame:
    rows = connection.execute(query, params).fetchall()
    return pd.DataFrame(rows, columns=list(columns))


def _exists(connection: psycopg.Connection, table: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def read_points(connection: psycopg.Connection, unflagged: int, sample: int = UNFLAGGED_POINTS) -> pd.DataFrame:
    """The flagged points and a sample of about `sample` of the `unflagged` transactions, in POINT_COLUMNS."""
    flagged = _frame(connection, FLAGGED_POINTS_QUERY, POINT_COLUMNS, (FLAGGED_POINTS,))
    percent = min(100.0, 100.0 * 2 * sample / unflagged) if unflagged else 0.0
    others = _frame(connection, UNFLAGGED_POINTS_QUERY, POINT_COLUMNS, (percent, sample)) if percent else None
    frames = [frame for frame in (flagged, others) if frame is not None and len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else flagged


def read_alerts(connection: psycopg.Connection, top: int = TOP_ALERTS) -> pd.DataFrame:
    """The `top` highest-scoring flagged transactions as `ads alerts` lists them, with their leading part."""
    alerts = fetch_alerts(connection, AlertFilter(top=top), labels={})
    leading = dict(connection.execute(LEADING_QUERY, ([alert.trans_id for alert in alerts],)).fetchall())
    rows = [
        (
            alert.month,
            alert.trans_id,
            alert.account_id,
            alert.trans_date,
            None if alert.amount is None else float(alert.amount),
            alert.kind,
            alert.score,
            leading.get(alert.trans_id),
            alert.status,
            alert.sentence,
        )
        for alert in alerts
    ]
    return pd.DataFrame(rows, columns=list(ALERT_COLUMNS))


def read_report_data(connection: psycopg.Connection, run_id: str) -> ReportData:
    """What the report of run `run_id` shows, read from the score, feature, district, leaderboard and check tables."""
    daily = _frame(connection, DAILY_QUERY, DAILY_COLUMNS)
    unflagged = int(daily["transactions"].sum() - daily["flagged"].sum()) if len(daily) else 0
    return ReportData(
        run_id=run_id,
        generated_at=datetime.now(UTC),
        daily=daily,
        points=read_points(connection, unflagged),
        districts=_frame(connection, DISTRICTS_QUERY, DISTRICT_COLUMNS),
        alerts=read_alerts(connection),
        leaderboard=(
            _frame(connection, LEADERBOARD_QUERY, LEADERBOARD_COLUMNS)
            if _exists(connection, LEADERBOARD_TABLE)
            else pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
        ),
        quality=(
            _frame(connection, QUALITY_QUERY, QUALITY_COLUMNS)
            if _exists(connection, CHECK_RESULTS_TABLE)
            else pd.DataFrame(columns=list(QUALITY_COLUMNS))
        ),
    )
