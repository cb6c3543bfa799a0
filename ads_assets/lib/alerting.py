"""Alert events: stored once in `anomaly.alerts`, delivered to a Slack-compatible webhook and to the log.

An `AlertEvent` is one of `ALERT_KINDS`: a high-severity anomaly, a drop in model performance, an unexpected
data pattern (a failed quality or volume check), drift, or a failed run. Its `event_key` is the sha256 of its
kind, subject and identifying details (`key_fields`), so raising the same event again (a re-run, a retried
step) neither stores nor sends it twice: `raise_events` inserts with ON CONFLICT DO NOTHING and returns only
the events that are new.

`deliver` posts the new events to the webhook (`ADS_ALERT_WEBHOOK`), one message per event, or, when more than
`flood_threshold` arrive at once, one summary message (counts per kind, the most severe few). Every event is
also logged. A webhook that fails is logged and recorded as `failed: <reason>`, never raised; without a webhook
the status is `log-only`. The webhook URL is a secret: logs and statuses name it only as `scheme://host/…`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
import psycopg
from psycopg import sql

from ads_assets.lib.db import scrub
from ads_assets.lib.tables import ANOMALY_SCHEMA

ALERTS_TABLE = (ANOMALY_SCHEMA, "alerts")
ALERT_KINDS = ("high_severity_anomaly", "model_performance", "data_quality", "drift", "run_failure")
SEVERITIES = ("critical", "warning", "info")
"""From the most to the least severe."""
SENT = "sent"
LOG_ONLY = "log-only"
FAILED = "failed"
PENDING = "pending"
DEFAULT_FLOOD_THRESHOLD = 10
DEFAULT_TIMEOUT = 5.0
SUMMARY_TOP = 5
"""Events a flood summary lists by name, the most severe first."""
SLACK_TEXT_LIMIT = 3000
"""The longest text Slack accepts in one section block."""
HIGH_SEVERITY_SCORE = 0.95

ALERTS_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {table} (
    event_key text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ({kinds})),
    severity text NOT NULL CHECK (severity IN ({severities})),
    subject text NOT NULL,
    message text NOT NULL,
    details jsonb NOT NULL DEFAULT '{{}}',
    raised_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    delivery_status text NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS alerts_raised_at_idx ON {table} (raised_at);
"""
).format(
    schema=sql.Identifier(ALERTS_TABLE[0]),
    table=sql.Identifier(*ALERTS_TABLE),
    kinds=sql.SQL(", ").join(map(sql.Literal, ALERT_KINDS)),
    severities=sql.SQL(", ").join(map(sql.Literal, SEVERITIES)),
)


class Log(Protocol):
    """Where events are logged: a `logging.Logger` or Dagster's `context.log`."""

    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...

    def error(self, msg: str) -> None: ...


@dataclass(frozen=True)
class AlertEvent:
    """One alert: what happened (`kind`, `severity`, `message`) to what (`subject`), with JSON `details`.

    `key_fields` names the entries of `details` that identify the event beside kind and subject; the other
    details (a score, an observed value) may change without making it a new event.
    """

    kind: str
    severity: str
    subject: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    key_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}: expected one of {', '.join(ALERT_KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}: expected one of {', '.join(SEVERITIES)}")
        missing = [name for name in self.key_fields if name not in self.details]
        if missing:
            raise ValueError(f"key fields not in the details: {', '.join(missing)}")

    @property
    def event_key(self) -> str:
        """sha256 of kind, subject and the identifying details, as canonical JSON."""
        identity = {name: self.details[name] for name in self.key_fields}
        canonical = json.dumps([self.kind, self.subject, identity], sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def rank(self) -> tuple[int, float]:
        """Sort key, the most urgent first: by severity, then by a higher `score` in the details."""
        score = self.details.get("score")
        return SEVERITIES.index(self.severity), -float(score) if isinstance(score, int | float) else 0.0

    def line(self) -> str:
        return f"[{self.severity}] {self.kind} {self.subject}: {self.message}"


def high_severity_anomalies(
    scores: Iterable[Mapping[str, Any]], threshold: float = HIGH_SEVERITY_SCORE
) -> list[AlertEvent]:
    """An event per scored transaction (mappings with trans_id, month, score, and optionally account_id,
    reasons, model_version) whose score is at least `threshold`; one event per transaction and month."""
    events = []
    for row in scores:
        score = float(row["score"])
        if score < threshold:
            continue
        reasons = row.get("reasons")
        details = {
            "trans_id": int(row["trans_id"]),
            "month": str(row["month"]),
            "score": round(score, 4),
            **{name: _plain(row[name]) for name in ("account_id", "model_version", "reasons") if name in row},
        }
        events.append(
            AlertEvent(
                kind="high_severity_anomaly",
                severity="critical",
                subject=f"trans_id {details['trans_id']}",
                message=f"score {score:.3f} in {details['month']}"
                + (f": {reasons}" if isinstance(reasons, str) and reasons else ""),
                details=details,
                key_fields=("month",),
            )
        )
    return events


def model_performance(model_version: str, metric: str, value: float, floor: float, month: str = "") -> AlertEvent:
    """A model metric (canary recall, precision on labels) below its floor; once per model version, metric
    and month."""
    return AlertEvent(
        kind="model_performance",
        severity="warning",
        subject=f"model {model_version}",
        message=f"{metric} {value:.3f} is below {floor:.3f}" + (f" in {month}" if month else ""),
        details={"metric": metric, "value": value, "floor": floor, "month": month},
        key_fields=("metric", "month"),
    )


def data_quality(asset: str, check: str, partition: str, observed: Mapping[str, Any], blocking: bool) -> AlertEvent:
    """A failed quality or volume check of an asset's partition; once per asset, check and partition."""
    return AlertEvent(
        kind="data_quality",
        severity="critical" if blocking else "warning",
        subject=f"{asset} {partition}".strip(),
        message=f"check {check} failed",
        details={"check": check, "partition": partition, "observed": {k: _plain(v) for k, v in observed.items()}},
        key_fields=("check", "partition"),
    )


def drift(month: str, subject: str, psi: float, band: str, reference: str) -> AlertEvent:
    """Drift of a feature or of the score in a month (a row of `anomaly.drift`); once per month, subject, band
    and reference."""
    return AlertEvent(
        kind="drift",
        severity="warning" if band == "major" else "info",
        subject=f"{subject} {month}",
        message=f"{band} drift, PSI {psi:.3f} against {reference}",
        details={"month": month, "feature": subject, "psi": psi, "band": band, "reference": reference},
        key_fields=("band", "reference"),
    )


def run_failure(run_id: str, job: str, error: str, steps: Sequence[str] = ()) -> AlertEvent:
    """A failed Dagster run; once per run."""
    return AlertEvent(
        kind="run_failure",
        severity="critical",
        subject=f"run {run_id}",
        message=f"{job} failed" + (f" in {', '.join(steps)}" if steps else "") + f": {error}",
        details={"run_id": run_id, "job": job, "steps": list(steps), "error": error},
    )


def ensure_alerts_table(cursor: psycopg.Cursor) -> None:
    """Create `anomaly.alerts` when it is missing."""
    cursor.execute(ALERTS_DDL)


def raise_events(connection: psycopg.Connection, events: Iterable[AlertEvent]) -> list[AlertEvent]:
    """Store `events` in `anomaly.alerts` as pending; returns those not stored before, in the order given."""
    unique: dict[str, AlertEvent] = {}
    for event in events:
        unique.setdefault(event.event_key, event)
    if not unique:
        return []
    keys = list(unique)
    with connection.transaction(), connection.cursor() as cursor:
        ensure_alerts_table(cursor)
        cursor.execute(
            sql.SQL(
                "INSERT INTO {table} (event_key, kind, severity, subject, message, details) "
                "SELECT k, kind, severity, subject, message, details::jsonb "
                "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                "AS e(k, kind, severity, subject, message, details) "
                "ON CONFLICT (event_key) DO NOTHING RETURNING event_key"
            ).format(table=sql.Identifier(*ALERTS_TABLE)),
            (
                keys,
                [unique[key].kind for key in keys],
                [unique[key].severity for key in keys],
                [unique[key].subject for key in keys],
                [unique[key].message for key in keys],
                [json.dumps(unique[key].details, default=str) for key in keys],
            ),
        )
        inserted = {row[0] for row in cursor.fetchall()}
    return [unique[key] for key in keys if key in inserted]


def deliver(
    events: Sequence[AlertEvent],
    webhook_url: str | None,
    log: Log,
    flood_threshold: int = DEFAULT_FLOOD_THRESHOLD,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, str]:
    """Log the events and post them to the webhook; returns the delivery status by event key.

    Up to `flood_threshold` events go as one message and one log line each; more go as one summary message,
    logged once with the most severe of them. After a failed post the rest are not tried (a dead webhook costs
    one timeout, not one per event).
    """
    if not events:
        return {}
    if len(events) <= flood_threshold:
        for event in events:
            _log_event(log, event)
    else:
        log.warning(_flood_line(events))
    if not webhook_url:
        return dict.fromkeys((event.event_key for event in events), LOG_ONLY)
    messages = (
        [([event], event_message(event)) for event in events]
        if len(events) <= flood_threshold
        else [(list(events), summary_message(events))]
    )
    statuses: dict[str, str] = {}
    failure: str | None = None
    for covered, payload in messages:
        if failure is None:
            failure = post_json(webhook_url, payload, timeout)
            status = SENT if failure is None else f"{FAILED}: {failure}"
            if failure:
                log.warning(
                    f"alert webhook {redacted(webhook_url)} failed: {failure}; {len(covered)} alert(s) logged only"
                )
        else:
            status = f"{FAILED}: not tried after an earlier failure ({failure})"
        statuses.update(dict.fromkeys((event.event_key for event in covered), status))
    return statuses


def record_delivery(
    connection: psycopg.Connection, statuses: Mapping[str, str], delivered_at: datetime | None = None
) -> None:
    """Write each event's delivery status; `delivered_at` is set for events sent or logged, left null on failure."""
    if not statuses:
        return
    now = delivered_at or datetime.now(UTC)
    with connection.transaction(), connection.cursor() as cursor:
        ensure_alerts_table(cursor)
        cursor.execute(
            sql.SQL(
                "UPDATE {table} AS a SET delivery_status = d.status, "
                "delivered_at = CASE WHEN d.status LIKE %s THEN NULL ELSE %s END "
                "FROM unnest(%s::text[], %s::text[]) AS d(event_key, status) WHERE a.event_key = d.event_key"
            ).format(table=sql.Identifier(*ALERTS_TABLE)),
            (f"{FAILED}%", now, list(statuses), list(statuses.values())),
        )


def raise_and_deliver(
    connection: psycopg.Connection,
    events: Iterable[AlertEvent],
    webhook_url: str | None,
    log: Log,
    flood_threshold: int = DEFAULT_FLOOD_THRESHOLD,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, str]:
    """`raise_events`, `deliver` the new ones and `record_delivery`; returns the statuses of the new events."""
    new = raise_events(connection, events)
    statuses = deliver(new, webhook_url, log, flood_threshold, timeout)
    record_delivery(connection, statuses)
    return statuses


def event_message(event: AlertEvent) -> dict[str, Any]:
    """The Slack-compatible message of one event: a fallback `text` and its blocks."""
    details = json.dumps(event.details, sort_keys=True, default=str)
    return {
        "text": _truncated(f"ADS alert {event.line()}"),
        "blocks": [
            _section(f"*{_escape(event.severity.upper())}* `{event.kind}` *{_escape(event.subject)}*"),
            _section(_escape(event.message)),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _truncated(_escape(details))}]},
        ],
    }


def _kind_counts(events: Sequence[AlertEvent]) -> str:
    """The events counted per kind, in ALERT_KINDS order: `high_severity_anomaly 20, drift 3`."""
    kinds = Counter(event.kind for event in events)
    return ", ".join(f"{kind} {kinds[kind]}" for kind in ALERT_KINDS if kinds[kind])


def _most_severe(events: Sequence[AlertEvent], top: int) -> list[AlertEvent]:
    return sorted(events, key=lambda event: event.rank)[:top]


def _flood_line(events: Sequence[AlertEvent], top: int = SUMMARY_TOP) -> str:
    worst = "; ".join(event.line() for event in _most_severe(events, top))
    return f"alert flood: {len(events)} alerts ({_kind_counts(events)}); most severe: {worst}"


def summary_message(events: Sequence[AlertEvent], top: int = SUMMARY_TOP) -> dict[str, Any]:
    """One Slack-compatible message for a flood: the count per kind and severity, and the `top` most severe."""
    severities = Counter(event.severity for event in events)
    worst = _most_severe(events, top)
    counts = _kind_counts(events)
    by_severity = ", ".join(f"{severity} {severities[severity]}" for severity in SEVERITIES if severities[severity])
    listed = "\n".join(f"• {_escape(event.line())}" for event in worst)
    return {
        "text": _truncated(f"ADS: {len(events)} alerts ({counts})"),
        "blocks": [
            _section(f"*ADS: {len(events)} alerts*\n{counts}\n{by_severity}"),
            _section(f"*Most severe {len(worst)}:*\n{listed}"),
        ],
    }


def post_json(url: str, payload: Mapping[str, Any], timeout: float) -> str | None:
    """POST `payload` as JSON; None when the server answers 2xx, else the reason (never the URL)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return "the webhook URL is not http(s)"
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, see above
            response.read()
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except urllib.error.URLError as error:
        return scrub(str(error.reason), url)
    except (OSError, http.client.HTTPException) as error:
        return scrub(f"{type(error).__name__}: {error}", url)
    return None


def redacted(url: str) -> str:
    """The webhook as it may be shown: scheme and host only."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


def _log_event(log: Log, event: AlertEvent) -> None:
    line = f"alert {event.line()}"
    if event.severity == "critical":
        log.error(line)
    elif event.severity == "warning":
        log.warning(line)
    else:
        log.info(line)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _truncated(text)}}


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping of &, < and >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncated(text: str) -> str:
    return text if len(text) <= SLACK_TEXT_LIMIT else text[: SLACK_TEXT_LIMIT - 1] + "…"


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python numbers, a missing value (NaN, NA) to None, anything else
    unknown to its text."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)
