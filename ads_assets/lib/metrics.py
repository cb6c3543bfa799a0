"""Operational metrics per run and partition: in `ops.metrics`, in asset metadata, and on CloudWatch when configured.

A `Metric` is one number a run measured for one stage and partition (a month `YYYY-MM`, or '' for the whole
run): ingest rows per second and rejected rows, the quality pass rate, feature build and training seconds,
the training hyperparameters, precision, recall and F1 on the canaries, the flagged count, and whether each
output was delivered. The helpers below turn what the pipeline already has (a `LoadReport`, check outcomes,
timings, canary truth and flags) into metrics; `record` upserts them into `ops.metrics` (one row per run,
partition, stage and name); `asset_metadata` gives the float values for `context.add_asset_metadata`, which the
Dagster UI plots over partitions.

`CloudWatchSink.from_env()` sends them with boto3 `put_metric_data` to the namespace `ADS_CLOUDWATCH_NAMESPACE`
(none when it is unset), with the dimensions Stage and Partition (Stage only for run-wide metrics), in calls of
at most `CLOUDWATCH_BATCH` data points. The endpoint is `ADS_CLOUDWATCH_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`,
else AWS; the region and credentials are those of the S3 output (`ads_assets.lib.storage`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sklearn.metrics import precision_recall_fscore_support

from ads_assets.lib.alerting import Log
from ads_assets.lib.ingest import LoadReport
from ads_assets.lib.storage import s3_region

OPS_SCHEMA = "ops"
METRICS_TABLE = (OPS_SCHEMA, "metrics")
NAMESPACE_VARIABLE = "ADS_CLOUDWATCH_NAMESPACE"
CLOUDWATCH_ENDPOINT_VARIABLES = ("ADS_CLOUDWATCH_ENDPOINT_URL", "AWS_ENDPOINT_URL")
CLOUDWATCH_BATCH = 1000
"""The most data points one `put_metric_data` call accepts."""
HYPERPARAMETER_PREFIX = "hyperparameter."
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)
"""CloudWatch's units, the only ones a metric may carry."""
_PARTITION = re.compile(r"^(\d{4}-(0[1-9]|1[0-2]))?$")

METRICS_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {table} (
    run_id text NOT NULL,
    partition text NOT NULL DEFAULT '',
    stage text NOT NULL,
    name text NOT NULL,
    value double precision NOT NULL,
    unit text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, partition, stage, name)
);
CREATE INDEX IF NOT EXISTS metrics_stage_name_idx ON {table} (stage, name, partition);
"""
).format(schema=sql.Identifier(OPS_SCHEMA), table=sql.Identifier(*METRICS_TABLE))


@dataclass(frozen=True)
class Metric:
    """One measurement of a run: `value` in `unit` (a CloudWatch unit) for `stage`, `name` and `partition`."""

    run_id: str
    partition: str
    stage: str
    name: str
    value: float
    unit: str = "None"
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not _PARTITION.match(self.partition):
            raise ValueError(f"bad partition {self.partition!r}: expected a month YYYY-MM or ''")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}: expected a CloudWatch unit")
        if not math.isfinite(self.value):
            raise ValueError(f"metric {self.stage}/{self.name} is not a finite number: {self.value!r}")


def ingest_metrics(run_id: str, partition: str, report: LoadReport, seconds: float | None = None) -> list[Metric]:
    """A load's rows read, accepted and rejected (quarantined), and rows read per second: over `seconds`, else
    from the report's start to its end (left out when the report has no end)."""
    relation = report.relation
    metrics = [
        Metric(run_id, partition, "ingest", f"{relation}.rows_read", report.rows_read, "Count"),
        Metric(run_id, partition, "ingest", f"{relation}.rows_accepted", report.rows_accepted, "Count"),
        Metric(run_id, partition, "ingest", f"{relation}.rows_rejected", report.rows_quarantined, "Count"),
    ]
    if seconds is None and report.finished_at is not None:
        seconds = (report.finished_at - report.started_at).total_seconds()
    if seconds is not None and seconds > 0:
        rate = report.rows_read / seconds
        metrics.append(Metric(run_id, partition, "ingest", f"{relation}.rows_per_second", rate, "Count/Second"))
    return metrics


def quality_metrics(run_id: str, partition: str, passed: Iterable[bool], stage: str = "quality") -> list[Metric]:
    """The checks run and failed, and the pass rate (passed / run, 0 to 1; left out when none ran)."""
    outcomes = [bool(outcome) for outcome in passed]
    if not outcomes:
        return []
    failed = outcomes.count(False)
    return [
        Metric(run_id, partition, stage, "checks_run", len(outcomes), "Count"),
        Metric(run_id, partition, stage, "checks_failed", failed, "Count"),
        Metric(run_id, partition, stage, "pass_rate", (len(outcomes) - failed) / len(outcomes)),
    ]


def seconds_metric(run_id: str, partition: str, stage: str, name: str, seconds: float) -> Metric:
    """A duration, e.g. `seconds_metric(run, month, "features", "build_seconds", elapsed)`."""
    return Metric(run_id, partition, stage, name, seconds, "Seconds")


def training_metrics(
    run_id: str, partition: str, seconds: float, hyperparameters: Mapping[str, Any], stage: str = "train"
) -> list[Metric]:
    """Training seconds, and the hyperparameters as `hyperparameter.<name>` rows.

    Nested mappings become dotted names (`hyperparameter.detectors.iforest`); numbers and booleans are the
    value; any other value becomes the row `hyperparameter.<name>=<value>` with value 1; None is left out.
    """
    metrics = [seconds_metric(run_id, partition, stage, "training_seconds", seconds)]
    for name, value in _flattened(hyperparameters):
        if isinstance(value, bool | int | float | np.number) and math.isfinite(float(value)):
            metrics.append(Metric(run_id, partition, stage, f"{HYPERPARAMETER_PREFIX}{name}", float(value)))
        elif value is not None:
            metrics.append(Metric(run_id, partition, stage, f"{HYPERPARAMETER_PREFIX}{name}={value}", 1.0))
    return metrics


def canary_metrics(
    run_id: str, partition: str, planted: Sequence[bool] | np.ndarray, flagged: Sequence[bool] | np.ndarray
) -> list[Metric]:
    """Precision, recall and F1 of the flags against the planted canaries (0 where undefined), and the count
    of canaries; `planted` and `flagged` are aligned per transaction."""
    truth = np.asarray(planted, dtype=bool)
    predicted = np.asarray(flagged, dtype=bool)
    precision, recall, f1, _ = precision_recall_fscore_support(truth, predicted, average="binary", zero_division=0.0)
    return [
        Metric(run_id, partition, "canaries", "canaries", int(truth.sum()), "Count"),
        Metric(run_id, partition, "canaries", "precision", float(precision)),
        Metric(run_id, partition, "canaries", "recall", float(recall)),
        Metric(run_id, partition, "canaries", "f1", float(f1)),
    ]


def flagged_metrics(run_id: str, partition: str, flagged: int, scored: int) -> list[Metric]:
    """Transactions scored and flagged, and the flagged rate (left out when none were scored)."""
    metrics = [
        Metric(run_id, partition, "score", "scored", scored, "Count"),
        Metric(run_id, partition, "score", "flagged", flagged, "Count"),
    ]
    if scored:
        metrics.append(Metric(run_id, partition, "score", "flagged_rate", flagged / scored))
    return metrics


def delivery_metric(run_id: str, partition: str, output: str, delivered: bool) -> Metric:
    """Whether an output (`transaction_scores`, `missing_payments`, `alerts`, …) was delivered: 1, else 0."""
    return Metric(run_id, partition, "publish", f"{output}.delivered", 1.0 if delivered else 0.0, "Count")


def asset_metadata(metrics: Iterable[Metric]) -> dict[str, float]:
    """`{stage/name: value}` as floats, for `context.add_asset_metadata(..., partition_key=...)`; the UI plots
    numeric metadata over partitions. Hyperparameters are left out (they are not series to plot)."""
    return {
        f"{metric.stage}/{metric.name}": float(metric.value)
        for metric in metrics
        if not metric.name.startswith(HYPERPARAMETER_PREFIX)
    }


def ensure_metrics_table(cursor: psycopg.Cursor) -> None:
    """Create `ops.metrics` when it is missing."""
    cursor.execute(METRICS_DDL)


def record(connection: psycopg.Connection, metrics: Iterable[Metric]) -> int:
    """Upsert `metrics` into `ops.metrics` (the last one wins per run, partition, stage and name); returns rows."""
    unique = {(m.run_id, m.partition, m.stage, m.name): m for m in metrics}
    if not unique:
        return 0
    rows = list(unique.values())
    with connection.transaction(), connection.cursor() as cursor:
        ensure_metrics_table(cursor)
        cursor.execute(
            sql.SQL(
                "INSERT INTO {table} (run_id, partition, stage, name, value, unit, recorded_at) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], "
                "%s::timestamptz[]) "
                "ON CONFLICT (run_id, partition, stage, name) DO UPDATE "
                "SET value = excluded.value, unit = excluded.unit, recorded_at = excluded.recorded_at"
            ).format(table=sql.Identifier(*METRICS_TABLE)),
            (
                [m.run_id for m in rows],
                [m.partition for m in rows],
                [m.stage for m in rows],
                [m.name for m in rows],
                [float(m.value) for m in rows],
                [m.unit for m in rows],
                [m.recorded_at for m in rows],
            ),
        )
    return len(rows)


def cloudwatch_endpoint_url() -> str | None:
    """The CloudWatch endpoint to use instead of AWS's: `ADS_CLOUDWATCH_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`."""
    return next((os.environ[name] for name in CLOUDWATCH_ENDPOINT_VARIABLES if os.environ.get(name)), None)


class CloudWatchSink:
    """Sends metrics to CloudWatch in `namespace` with boto3 `put_metric_data`.

    Hyperparameter rows are not sent: they are settings of a run, not series to watch.
    """

    def __init__(self, namespace: str, client: Any | None = None) -> None:
        if not namespace:
            raise ValueError("a CloudWatch namespace is required")
        self.namespace = namespace
        if client is None:
            import boto3

            client = boto3.client("cloudwatch", endpoint_url=cloudwatch_endpoint_url(), region_name=s3_region())
        self.client = client

    @classmethod
    def from_env(cls) -> CloudWatchSink | None:
        """The sink of `ADS_CLOUDWATCH_NAMESPACE`, or None when it is unset."""
        namespace = os.environ.get(NAMESPACE_VARIABLE, "").strip()
        return cls(namespace) if namespace else None

    def send(self, metrics: Iterable[Metric]) -> int:
        """Put every metric as one data point, `CLOUDWATCH_BATCH` per call; returns the data points sent."""
        sent = 0
        for batch in _batches(
            (datum(metric) for metric in metrics if not metric.name.startswith(HYPERPARAMETER_PREFIX)),
            CLOUDWATCH_BATCH,
        ):
            self.client.put_metric_data(Namespace=self.namespace, MetricData=batch)
            sent += len(batch)
        return sent


def datum(metric: Metric) -> dict[str, Any]:
    """A metric as one CloudWatch MetricDatum."""
    dimensions = [{"Name": "Stage", "Value": metric.stage}]
    if metric.partition:
        dimensions.append({"Name": "Partition", "Value": metric.partition})
    return {
        "MetricName": metric.name,
        "Dimensions": dimensions,
        "Timestamp": metric.recorded_at,
        "Value": float(metric.value),
        "Unit": metric.unit,
    }


def report(
    connection: psycopg.Connection, metrics: Sequence[Metric], sink: CloudWatchSink | None, log: Log
) -> dict[str, float]:
    """`record` the metrics, send them to `sink` when there is one (a CloudWatch failure is logged, never
    raised), and return `asset_metadata` of them."""
    record(connection, metrics)
    if sink is not None:
        try:
            sink.send(metrics)
        except Exception as error:
            log.warning(f"CloudWatch put_metric_data to {sink.namespace} failed: {type(error).__name__}: {error}")
    return asset_metadata(metrics)


def _flattened(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in values.items():
        if isinstance(value, Mapping):
            yield from _flattened(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
