"""What asks for a retrain: a month whose key features drifted beyond the major band (PSI above 0.25), whose
flagged rate left the band of the months before it, or whose champion caught fewer canaries than its floor."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from ads_assets.lib.alerting import ALERTS_TABLE, ensure_alerts_table
from ads_assets.lib.detection.drift import major_drift_since
from ads_assets.lib.metrics import METRICS_TABLE, ensure_metrics_table

FLAG_RATE_HISTORY = 12
"""The months before a month whose flagged rates make its band."""
FLAG_RATE_MIN_HISTORY = 3
"""Months of history a band needs; a month with fewer before it has no band."""
FLAG_RATE_FACTOR = 3.0
"""The band: from the median flagged rate of those months divided by this, to the median times this."""


@dataclass(frozen=True)
class RetrainTrigger:
    """One reason to retrain after `month` (YYYY-MM): `drift`, `flag_rate` or `canary_recall`."""

    month: str
    reason: str
    detail: str
    recorded_at: datetime


def flag_rate_band(history: Sequence[float]) -> tuple[float, float] | None:
    """(low, high) of the flagged rate expected after the months `history`; None without enough of them."""
    recent = list(history)[-FLAG_RATE_HISTORY:]
    if len(recent) < FLAG_RATE_MIN_HISTORY:
        return None
    median = statistics.median(recent)
    if median <= 0:
        return None
    return median / FLAG_RATE_FACTOR, median * FLAG_RATE_FACTOR


def flag_rate_triggers(connection: psycopg.Connection, since: datetime) -> list[RetrainTrigger]:
    """The months recorded after `since` whose latest flagged rate lies outside the band of the months before."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_metrics_table(cursor)
        cursor.execute(
            sql.SQL(
                "SELECT DISTINCT ON (partition) partition, value, recorded_at FROM {table} "
                "WHERE stage = 'score' AND name = 'flagged_rate' AND partition <> '' "
                "ORDER BY partition, recorded_at DESC"
            ).format(table=sql.Identifier(*METRICS_TABLE))
        )
        rates = cursor.fetchall()
    triggers, history = [], []
    for month, rate, recorded_at in rates:
        band = flag_rate_band(history)
        if recorded_at > since and band is not None and not band[0] <= rate <= band[1]:
            detail = f"flagged rate {rate:.4f} outside {band[0]:.4f}..{band[1]:.4f}"
            triggers.append(RetrainTrigger(str(month), "flag_rate", detail, recorded_at))
        history.append(float(rate))
    return triggers


def canary_recall_triggers(connection: psycopg.Connection, since: datetime) -> list[RetrainTrigger]:
    """The months whose champion's canary recall fell below its floor (a `model_performance` alert) after `since`."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_alerts_table(cursor)
        cursor.execute(
            sql.SQL(
                "SELECT details->>'month', message, raised_at FROM {table} WHERE kind = 'model_performance' "
                "AND details->>'metric' = 'canary_recall' AND details->>'month' <> '' AND raised_at > %s "
                "ORDER BY raised_at"
            ).format(table=sql.Identifier(*ALERTS_TABLE)),
            (since,),
        )
        return [RetrainTrigger(str(month), "canary_recall", message, at) for month, message, at in cursor.fetchall()]


def retrain_triggers(connection: psycopg.Connection, since: datetime) -> list[RetrainTrigger]:
    """Every reason to retrain recorded after `since`, by month."""
    drifted = [
        RetrainTrigger(month, "drift", "key features drifted beyond PSI 0.25", at)
        for month, at in major_drift_since(connection, since)
    ]
    triggers = drifted + flag_rate_triggers(connection, since) + canary_recall_triggers(connection, since)
    return sorted(triggers, key=lambda trigger: (trigger.month, trigger.reason))
