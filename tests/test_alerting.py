"""Alert events: stored once in anomaly.alerts, posted to a webhook on loopback, floods summarized, failures kept."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import psycopg
import pytest

from ads_assets.defs.resources import alerts_resource
from ads_assets.lib.alerting import (
    AlertEvent,
    data_quality,
    drift,
    high_severity_anomalies,
    raise_and_deliver,
    raise_events,
    run_failure,
)
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.settings import Settings

LOOPBACK = "127.0.0.1"
SECRET_PATH = "/services/T0ADS/B0ADS/s3cr3tW3bhookT0ken"
LOGGER = "ads.test.alerting"


@dataclass
class Webhook:
    """What the loopback webhook received, and the status it answers with."""

    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def webhook_server() -> Iterator[tuple[str, Webhook]]:
    webhook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            webhook.received.append(json.loads(body))
            webhook.paths.append(self.path)
            self.send_response(webhook.status)
            self.end_headers()
            self.wfile.write(b"ok" if webhook.status == 200 else b"no")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}{SECRET_PATH}", webhook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook(webhook_server: tuple[str, Webhook]) -> tuple[str, Webhook]:
    url, state = webhook_server
    state.status = 200
    state.received.clear()
    state.paths.clear()
    return url, state


@pytest.fixture(scope="module")
def database(postgres_target: PostgresTarget) -> Iterator[PostgresTarget]:
    with temporary_database(postgres_target) as target:
        yield target


@pytest.fixture
def connection(database: PostgresTarget) -> Iterator[psycopg.Connection]:
    with connect(database) as connection:
        connection.execute("DROP TABLE IF EXISTS anomaly.alerts")
        connection.commit()
        yield connection


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return logging.getLogger(LOGGER)


def stored(connection: psycopg.Connection) -> list[tuple[Any, ...]]:
    return connection.execute(
        "SELECT event_key, kind, severity, subject, details, delivery_status, delivered_at IS NOT NULL "
        "FROM anomaly.alerts ORDER BY subject"
    ).fetchall()


def scored(trans_id: int, score: float, month: str = "1997-03") -> dict[str, Any]:
    return {"trans_id": trans_id, "month": month, "score": score, "account_id": 7, "reasons": "amount 12x usual"}


def test_event_key_is_kind_subject_and_identifying_details() -> None:
    first = high_severity_anomalies([scored(11, 0.97)])[0]
    rescored = high_severity_anomalies([scored(11, 0.99)])[0]
    other_month = high_severity_anomalies([scored(11, 0.97, "1997-04")])[0]
    assert first.event_key == rescored.event_key
    assert first.event_key != other_month.event_key
    assert len(first.event_key) == 64
    assert [event.subject for event in high_severity_anomalies([scored(1, 0.949), scored(2, 0.95)])] == ["trans_id 2"]
    with pytest.raises(ValueError, match="unknown alert kind"):
        AlertEvent(kind="weather", severity="info", subject="x", message="y")


def test_an_event_is_stored_and_sent_once(
    connection: psycopg.Connection, webhook: tuple[str, Webhook], log: logging.Logger
) -> None:
    url, state = webhook
    event = high_severity_anomalies([scored(11, 0.97)])[0]

    statuses = raise_and_deliver(connection, [event, event], url, log)

    assert statuses == {event.event_key: "sent"}
    assert len(state.received) == 1
    message = state.received[0]
    assert (
        message["text"]
        == "ADS alert [critical] high_severity_anomaly trans_id 11: score 0.970 in 1997-03: amount 12x usual"
    )
    assert message["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*CRITICAL* `high_severity_anomaly` *trans_id 11*"},
    }
    assert state.paths == [SECRET_PATH]
    details = {"trans_id": 11, "month": "1997-03", "score": 0.97, "account_id": 7, "reasons": "amount 12x usual"}
    assert stored(connection) == [
        (event.event_key, "high_severity_anomaly", "critical", "trans_id 11", details, "sent", True)
    ]

    again = raise_and_deliver(connection, high_severity_anomalies([scored(11, 0.99)]), url, log)

    assert again == {}
    assert len(state.received) == 1
    assert [row[4]["score"] for row in stored(connection)] == [0.97]


def test_a_flood_becomes_one_summary_message(
    connection: psycopg.Connection,
    webhook: tuple[str, Webhook],
    log: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, state = webhook
    anomalies = high_severity_anomalies([scored(100 + n, 0.95 + n / 1000) for n in range(20)])
    drifts = [drift("1997-03", feature, 0.4, "major", "1996-01..1996-12") for feature in ("amount", "score", "x")]
    checks = [data_quality("raw/trans", check, "1997-03", {"rows": 0}, blocking=True) for check in ("volume", "nulls")]
    events = [*drifts, *anomalies, *checks]

    statuses = raise_and_deliver(connection, events, url, log)

    assert len(state.received) == 1
    summary = state.received[0]
    assert summary["text"] == "ADS: 25 alerts (high_severity_anomaly 20, data_quality 2, drift 3)"
    assert summary["blocks"][0]["text"]["text"] == (
        "*ADS: 25 alerts*\nhigh_severity_anomaly 20, data_quality 2, drift 3\ncritical 22, warning 3"
    )
    top = summary["blocks"][1]["text"]["text"].splitlines()
    assert top[0] == "*Most severe 5:*"
    assert top[1] == "• [critical] high_severity_anomaly trans_id 119: score 0.969 in 1997-03: amount 12x usual"
    assert [line.split()[4] for line in top[1:]] == ["119:", "118:", "117:", "116:", "115:"]
    assert statuses == {event.event_key: "sent" for event in events}
    assert [row[5] for row in stored(connection)] == ["sent"] * 25
    assert sum(record.getMessage().startswith("alert [") for record in caplog.records) == 0
    (flood,) = [record.getMessage() for record in caplog.records if record.getMessage().startswith("alert flood")]
    assert flood.startswith("alert flood: 25 alerts (")


def test_a_failing_webhook_is_recorded_and_does_not_raise(
    connection: psycopg.Connection,
    webhook: tuple[str, Webhook],
    log: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, state = webhook
    state.status = 500
    events = [run_failure("r-1", "ads_full", "SourceError: trans.asc is missing", ["raw__trans"]), *drift_events()]

    statuses = raise_and_deliver(connection, events, url, log)

    assert len(state.received) == 1
    assert statuses[events[0].event_key] == "failed: HTTP 500 Internal Server Error"
    assert statuses[events[1].event_key] == (
        "failed: not tried after an earlier failure (HTTP 500 Internal Server Error)"
    )
    assert [(row[3], row[5], row[6]) for row in stored(connection)] == [
        ("amount 1997-04", "failed: not tried after an earlier failure (HTTP 500 Internal Server Error)", False),
        ("run r-1", "failed: HTTP 500 Internal Server Error", False),
    ]
    assert "alert [critical] run_failure run r-1: ads_full failed in raw__trans" in caplog.text
    assert f"alert webhook http://{LOOPBACK}/… failed: HTTP 500" in caplog.text


def drift_events() -> list[AlertEvent]:
    return [drift("1997-04", "amount", 0.31, "major", "1996-01..1996-12")]


def test_the_webhook_url_is_never_logged_or_stored(
    connection: psycopg.Connection,
    webhook: tuple[str, Webhook],
    log: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = webhook
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        closed_port = probe.getsockname()[1]
    refused = f"http://{LOOPBACK}:{closed_port}{SECRET_PATH}"
    first, second, third = (run_failure(f"r-{n}", "ads_full", "boom") for n in range(3))

    sent = raise_and_deliver(connection, [first], url, log)
    failed = raise_and_deliver(connection, [second], refused, log, timeout=1)
    logged = raise_and_deliver(connection, [third], None, log)

    assert sent == {first.event_key: "sent"}
    assert failed[second.event_key].startswith("failed: ")
    assert logged == {third.event_key: "log-only"}
    assert [row[5:] for row in stored(connection)] == [
        ("sent", True),
        (failed[second.event_key], False),
        ("log-only", True),
    ]
    everything = caplog.text + json.dumps(failed) + repr(stored(connection))
    assert "alert [critical] run_failure run r-2: ads_full failed: boom" in caplog.text
    for secret in (url, refused, SECRET_PATH, "s3cr3tW3bhookT0ken"):
        assert secret not in everything


def test_the_resource_posts_to_ads_alert_webhook_and_settings_hide_it(
    connection: psycopg.Connection,
    webhook: tuple[str, Webhook],
    log: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, state = webhook
    monkeypatch.setenv("ADS_ALERT_WEBHOOK", url)
    settings = Settings.from_env()
    event = run_failure("r-9", "ads_full", "boom")

    with dg.build_resources({"alerts": alerts_resource(settings)}) as resources:
        statuses = resources.alerts.raise_and_deliver(connection, [event], log)

    assert statuses == {event.event_key: "sent"}
    assert state.paths == [SECRET_PATH]
    assert settings.alert_webhook == url
    assert url not in repr(settings)
    assert alerts_resource(replace(settings, alert_webhook=None)).webhook_url is None


def test_a_high_score_beyond_the_alert_budget_has_no_reasons_and_is_stored(connection: psycopg.Connection) -> None:
    """A row scoring 0.95 or more that the month's alert budget left unflagged carries no reasons (NaN in the
    frame): its event stores null reasons, not the invalid JSON token NaN."""
    (event,) = high_severity_anomalies(
        [{"trans_id": 7, "month": "1998-12", "score": 0.97, "reasons": float("nan"), "account_id": 3}]
    )
    assert event.details["reasons"] is None
    assert [stored.event_key for stored in raise_events(connection, [event])] == [event.event_key]
    (reasons,) = connection.execute("SELECT details->'reasons' FROM anomaly.alerts").fetchone()
    assert reasons is None
