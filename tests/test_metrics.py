"""Operational metrics: exact values from hand-built inputs, rows in ops.metrics, data points on CloudWatch (moto)."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest
from botocore.config import Config

from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.ingest import LoadReport
from ads_assets.lib.metrics import (
    CloudWatchSink,
    Metric,
    asset_metadata,
    canary_metrics,
    delivery_metric,
    flagged_metrics,
    ingest_metrics,
    quality_metrics,
    record,
    report,
    seconds_metric,
    training_metrics,
)
from tests.s3_server import LOOPBACK, REGION

RUN = "run-0001"
MONTH = "1997-03"
STARTED = datetime(1998, 1, 2, 3, 4, 5, tzinfo=UTC)
RECORDED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
HYPERPARAMETERS = {
    "contamination": 0.01,
    "detectors": {"iforest": 0.6, "lof": 0.4},
    "scaler": "robust",
    "bootstrap": False,
    "max_samples": None,
}


def run_metrics() -> list[Metric]:
    load = LoadReport(
        relation="trans",
        source_file="trans.asc",
        sha256="0" * 64,
        window="1997-03-01..1997-04-01",
        rows_read=1000,
        rows_accepted=990,
        rows_quarantined=10,
        started_at=STARTED,
        finished_at=STARTED + timedelta(seconds=4),
    )
    metrics = [
        *ingest_metrics(RUN, MONTH, load),
        *quality_metrics(RUN, MONTH, [True, True, True, False]),
        seconds_metric(RUN, MONTH, "features", "build_seconds", 2.5),
        *training_metrics(RUN, MONTH, 12.5, HYPERPARAMETERS),
        *canary_metrics(RUN, MONTH, [1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0, 0, 0]),
        *flagged_metrics(RUN, MONTH, flagged=3, scored=1200),
        delivery_metric(RUN, MONTH, "transaction_scores", delivered=True),
        delivery_metric(RUN, "", "data_docs", delivered=False),
    ]
    return [Metric(m.run_id, m.partition, m.stage, m.name, m.value, m.unit, recorded_at=RECORDED) for m in metrics]


EXPECTED_ROWS = [
    ("canaries", "canaries", 4.0, "Count"),
    ("canaries", "f1", 4 / 7, "None"),
    ("canaries", "precision", 2 / 3, "None"),
    ("canaries", "recall", 0.5, "None"),
    ("features", "build_seconds", 2.5, "Seconds"),
    ("ingest", "trans.rows_accepted", 990.0, "Count"),
    ("ingest", "trans.rows_per_second", 250.0, "Count/Second"),
    ("ingest", "trans.rows_read", 1000.0, "Count"),
    ("ingest", "trans.rows_rejected", 10.0, "Count"),
    ("publish", "data_docs.delivered", 0.0, "Count"),
    ("publish", "transaction_scores.delivered", 1.0, "Count"),
    ("quality", "checks_failed", 1.0, "Count"),
    ("quality", "checks_run", 4.0, "Count"),
    ("quality", "pass_rate", 0.75, "None"),
    ("score", "flagged", 3.0, "Count"),
    ("score", "flagged_rate", 0.0025, "None"),
    ("score", "scored", 1200.0, "Count"),
    ("train", "hyperparameter.bootstrap", 0.0, "None"),
    ("train", "hyperparameter.contamination", 0.01, "None"),
    ("train", "hyperparameter.detectors.iforest", 0.6, "None"),
    ("train", "hyperparameter.detectors.lof", 0.4, "None"),
    ("train", "hyperparameter.scaler=robust", 1.0, "None"),
    ("train", "training_seconds", 12.5, "Seconds"),
]


@pytest.fixture(scope="module")
def database(postgres_target: PostgresTarget) -> Iterator[PostgresTarget]:
    with temporary_database(postgres_target) as target:
        yield target


@pytest.fixture
def connection(database: PostgresTarget) -> Iterator[psycopg.Connection]:
    with connect(database) as connection:
        connection.execute("DROP TABLE IF EXISTS ops.metrics")
        connection.commit()
        yield connection


@pytest.fixture
def cloudwatch(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 CloudWatch client on the moto server; the sink finds it through the environment.

    Request compression is off: moto's server cannot read the gzip bodies botocore sends above 10 KB.
    """
    monkeypatch.setenv("AWS_DISABLE_REQUEST_COMPRESSION", "true")
    monkeypatch.setenv("ADS_CLOUDWATCH_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("ADS_CLOUDWATCH_NAMESPACE", f"ADS/test-{uuid.uuid4().hex[:8]}")
    return boto3.client("cloudwatch", endpoint_url=s3_endpoint, region_name=REGION)


def test_metrics_land_in_ops_metrics_with_exact_values(connection: psycopg.Connection) -> None:
    assert record(connection, run_metrics()) == len(EXPECTED_ROWS)

    rows = connection.execute(
        "SELECT run_id, partition, stage, name, value, unit, recorded_at FROM ops.metrics ORDER BY stage, name"
    ).fetchall()
    assert [(stage, name, unit) for _, _, stage, name, _, unit, _ in rows] == [
        (s, n, u) for s, n, _, u in EXPECTED_ROWS
    ]
    assert [row[4] for row in rows] == pytest.approx([value for _, _, value, _ in EXPECTED_ROWS], rel=1e-12)
    assert {(run, partition, at) for run, partition, *_, at in rows} == {(RUN, MONTH, RECORDED), (RUN, "", RECORDED)}
    assert [row[3] for row in rows if row[1] == ""] == ["data_docs.delivered"]

    record(connection, [delivery_metric(RUN, "", "data_docs", delivered=True)])

    assert connection.execute("SELECT count(*) FROM ops.metrics").fetchone() == (len(EXPECTED_ROWS),)
    assert connection.execute("SELECT value FROM ops.metrics WHERE name = 'data_docs.delivered'").fetchone() == (1.0,)


def test_asset_metadata_is_float_values_without_hyperparameters() -> None:
    metadata = asset_metadata(run_metrics())

    assert metadata["ingest/trans.rows_per_second"] == 250.0
    assert metadata["quality/pass_rate"] == 0.75
    assert metadata["canaries/f1"] == pytest.approx(4 / 7)
    assert all(type(value) is float for value in metadata.values())
    assert not [key for key in metadata if "hyperparameter" in key]
    assert len(metadata) == len(EXPECTED_ROWS) - 5


def test_a_metric_refuses_bad_partitions_units_and_values() -> None:
    with pytest.raises(ValueError, match="bad partition"):
        Metric(RUN, "1997-03-01", "ingest", "rows", 1.0)
    with pytest.raises(ValueError, match="unknown unit"):
        Metric(RUN, MONTH, "ingest", "rows", 1.0, "rows")
    with pytest.raises(ValueError, match="not a finite number"):
        Metric(RUN, MONTH, "canaries", "f1", float("nan"))


def test_cloudwatch_receives_the_data_points_with_stage_and_partition(cloudwatch: Any) -> None:
    sink = CloudWatchSink.from_env()
    assert sink is not None

    assert sink.send(run_metrics()) == len(EXPECTED_ROWS) - 5

    listed = cloudwatch.list_metrics(Namespace=sink.namespace)["Metrics"]
    names = {(metric["MetricName"], tuple((d["Name"], d["Value"]) for d in metric["Dimensions"])) for metric in listed}
    assert ("trans.rows_per_second", (("Stage", "ingest"), ("Partition", MONTH))) in names
    assert ("data_docs.delivered", (("Stage", "publish"),)) in names
    assert len(names) == len(EXPECTED_ROWS) - 5
    assert not [name for name, _ in names if name.startswith("hyperparameter.")]
    data = cloudwatch.get_metric_data(
        MetricDataQueries=[
            query("rate", "trans.rows_per_second", [("Stage", "ingest"), ("Partition", MONTH)]),
            query("recall", "recall", [("Stage", "canaries"), ("Partition", MONTH)]),
        ],
        StartTime=RECORDED - timedelta(minutes=1),
        EndTime=RECORDED + timedelta(minutes=1),
    )
    assert {result["Id"]: result["Values"] for result in data["MetricDataResults"]} == {
        "rate": [250.0],
        "recall": [0.5],
    }


def query(identifier: str, name: str, dimensions: list[tuple[str, str]]) -> dict[str, Any]:
    namespace = CloudWatchSink.from_env().namespace
    return {
        "Id": identifier,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions],
            },
            "Period": 60,
            "Stat": "Maximum",
        },
    }


def test_cloudwatch_gets_at_most_1000_data_points_per_call(cloudwatch: Any) -> None:
    sink = CloudWatchSink.from_env()
    calls: list[int] = []
    sink.client.meta.events.register(
        "provide-client-params.cloudwatch.PutMetricData", lambda params, **_: calls.append(len(params["MetricData"]))
    )
    metrics = [Metric(RUN, MONTH, "score", f"m{n:04}", float(n), "Count", recorded_at=RECORDED) for n in range(1001)]

    assert sink.send(metrics) == 1001

    assert calls == [1000, 1]
    pages = cloudwatch.get_paginator("list_metrics").paginate(Namespace=sink.namespace)
    assert sum(len(page["Metrics"]) for page in pages) == 1001


def test_cloudwatch_is_off_without_a_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADS_CLOUDWATCH_NAMESPACE", raising=False)

    assert CloudWatchSink.from_env() is None


def test_a_cloudwatch_failure_is_logged_and_the_rows_are_still_recorded(
    connection: psycopg.Connection, s3_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        closed = f"http://{LOOPBACK}:{probe.getsockname()[1]}"
    client = boto3.client(
        "cloudwatch", endpoint_url=closed, region_name=REGION, config=Config(retries={"total_max_attempts": 1})
    )
    caplog.set_level(logging.WARNING, logger="ads.test.metrics")
    metrics = flagged_metrics(RUN, MONTH, flagged=3, scored=1200)

    metadata = report(
        connection, metrics, CloudWatchSink("ADS/unreachable", client), logging.getLogger("ads.test.metrics")
    )

    assert metadata == {"score/scored": 1200.0, "score/flagged": 3.0, "score/flagged_rate": 0.0025}
    assert connection.execute("SELECT count(*) FROM ops.metrics").fetchone() == (3,)
    assert "CloudWatch put_metric_data to ADS/unreachable failed: EndpointConnectionError" in caplog.text
