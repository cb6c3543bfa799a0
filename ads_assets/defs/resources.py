"""Resources: the ADS Postgres database (embedded or external), the Berka source and the published outputs."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

from ads_assets.lib.berka.formats import SourceFile, detect_source
from ads_assets.lib.db import PostgresTarget, connect, resolve_target
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
