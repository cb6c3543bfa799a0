"""Resources: the ADS Postgres database (embedded or external), the Berka source, the published outputs, and where
alerts and operational metrics go."""

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

from ads_assets.lib.alerting import DEFAULT_FLOOD_THRESHOLD, AlertEvent, Log, raise_and_deliver
from ads_assets.lib.berka.formats import SourceFile, detect_source
from ads_assets.lib.db import PostgresTarget, connect, resolve_target
from ads_assets.lib.metrics import CloudWatchSink, Metric, report
from ads_assets.lib.storage import OutputStore
from ads_assets.settings import Settings


class PostgresResource(dg.ConfigurableResource):
    """The one Postgres database every ADS step reads and writes.

    With `database_url` unset, an embedded Postgres (pgserver) is started, or reused, in `pgdata`.
    """

    pgdata: str
    database_url: str | None = None

    def target(self) -> PostgresTarget:
        return resolve_target(self.database_url, Path(self.pgdata))

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with connect(self.target()) as connection:
            yield connection

    def dbt_env(self) -> dict[str, str]:
        """The ADS_PG_* variables the dbt profile reads."""
        return self.target().dbt_profile_env()


class BerkaSourceResource(dg.ConfigurableResource):
    """Where the bank's Berka relations come from: a folder of .asc or fin_*.tsv files, or a database URL."""

    location: str

    def sources(self) -> dict[str, SourceFile]:
        return detect_source(self.location)


def postgres_resource(settings: Settings) -> PostgresResource:
    database_url = dg.EnvVar("ADS_DATABASE_URL") if os.environ.get("ADS_DATABASE_URL") else None
    return PostgresResource(pgdata=str(settings.pgdata), database_url=database_url)


def source_resource(settings: Settings) -> BerkaSourceResource:
    if os.environ.get("ADS_SOURCE"):
        return BerkaSourceResource(location=dg.EnvVar("ADS_SOURCE"))
    return BerkaSourceResource(location=str(settings.generated_data))


class OutputStoreResource(dg.ConfigurableResource):
    """Published outputs below `root` (a folder or `s3://bucket/prefix`): monthly Parquet tables, static files."""

    root: str

    def store(self) -> OutputStore:
        return OutputStore(self.root)


def output_store_resource(settings: Settings) -> OutputStoreResource:
    return OutputStoreResource(root=settings.output)


class AlertsResource(dg.ConfigurableResource):
    """Where alert events go besides `anomaly.alerts` and the log: the Slack-compatible `webhook_url`
    (ADS_ALERT_WEBHOOK, a secret; unset: logged only). More than `flood_threshold` new events at once go as one
    summary message."""

    webhook_url: str | None = None
    flood_threshold: int = DEFAULT_FLOOD_THRESHOLD

    def raise_and_deliver(
        self, connection: psycopg.Connection, events: Iterable[AlertEvent], log: Log
    ) -> dict[str, str]:
        """Store the events, deliver the new ones, record their delivery; the statuses of the new events."""
        return raise_and_deliver(connection, events, self.webhook_url, log, self.flood_threshold)


def alerts_resource(settings: Settings) -> AlertsResource:
    webhook_url = dg.EnvVar("ADS_ALERT_WEBHOOK") if settings.alert_webhook else None
    return AlertsResource(webhook_url=webhook_url)


class MetricsResource(dg.ConfigurableResource):
    """Where operational metrics go besides `ops.metrics`: CloudWatch's `cloudwatch_namespace`
    (ADS_CLOUDWATCH_NAMESPACE; unset: not sent)."""

    cloudwatch_namespace: str | None = None

    def sink(self) -> CloudWatchSink | None:
        return CloudWatchSink(self.cloudwatch_namespace) if self.cloudwatch_namespace else None

    def report(self, connection: psycopg.Connection, metrics: Sequence[Metric], log: Log) -> dict[str, float]:
        """Record the metrics, send them to CloudWatch when configured; their values for the asset metadata."""
        return report(connection, metrics, self.sink(), log)


def metrics_resource(settings: Settings) -> MetricsResource:
    return MetricsResource(cloudwatch_namespace=settings.cloudwatch_namespace)
