"""Publication of a month to Postgres and to Parquet, all or nothing as readers see it, and its repair.

A month is published in three steps (`publish_month`): its Parquet file is staged under a name readers
skip, its rows replace the month in Postgres in one committed transaction, which also records the
publication's token in `anomaly.publications`, and only then is the staged file renamed into place. A
failure before the Postgres commit discards the staged file, so both copies keep the old month; a crash
after it leaves the staged file behind, and Postgres already holds the new month.

`reconcile`, run before a table is published again, settles what a crash left: a staged file whose token
Postgres recorded and whose rows Postgres holds is committed, any other is discarded; then every month's
Parquet file is compared with Postgres, the committed truth (row count, sum of the key column, publication
token), and rewritten from Postgres where they differ, deleted where Postgres holds no rows of the month.
Runs on the same state exclude each other, so a staged file found at the start of a run is a crash's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg.pq import TransactionStatus

from ads_assets.lib.detection.tables import ANALYST_SELECT, SCORES_PARQUET_SCHEMA, SCORES_TABLE, SCORES_TABLE_NAME
from ads_assets.lib.storage import (
    PART_FILE,
    PUBLICATION_METADATA_KEY,
    STAGED_PREFIX,
    STAGED_SUFFIX,
    OutputStore,
    StagedPartition,
)
from ads_assets.lib.tables import (
    ANOMALY_SCHEMA,
    MISSING_PARQUET_SCHEMA,
    MISSING_TABLE,
    ensure_anomaly_schema,
    replace_month,
)

PUBLICATIONS_TABLE = f"{ANOMALY_SCHEMA}.publications"
PUBLICATIONS_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {ANOMALY_SCHEMA};
CREATE TABLE IF NOT EXISTS {PUBLICATIONS_TABLE} (
    table_name text NOT NULL,
    month text NOT NULL,
    token text NOT NULL,
    rows bigint NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, month)
);
"""
SUMMARY_READERS = 8
"""Parquet files whose footers and key columns `reconcile` reads at once (S3 round trips overlap)."""


@dataclass(frozen=True)
class PublishedTable:
    """A table published month by month to Postgres and to Parquet.

    `name` is the Parquet table below the output root, `postgres_table` the Postgres one (with a text
    `month` column, YYYY-MM), `schema` the Parquet schema, `key` the column whose count and sum compare
    the two copies, and `select` the SQL expressions that read the Parquet columns back from Postgres, in
    the schema's order (jsonb read as a dict becomes an Arrow map).
    """

    name: str
    postgres_table: str
    schema: pa.Schema
    key: str
    select: tuple[str, ...]


SCORES_PUBLICATION = PublishedTable(
    name=SCORES_TABLE_NAME,
    postgres_table=SCORES_TABLE,
    schema=SCORES_PARQUET_SCHEMA,
    key="trans_id",
    select=(
        "trans_id",
        "account_id",
        "trans_date",
        "score",
        "is_anomaly",
        "detector_scores",
        "rule_hits",
        "reasons::text",
        "model_version",
        "scored_at",
        *ANALYST_SELECT,
    ),
)
MISSING_PUBLICATION = PublishedTable(
    name="missing_payments",
    postgres_table=MISSING_TABLE,
    schema=MISSING_PARQUET_SCHEMA,
    key="account_id",
    select=(
        "account_id",
        "expected_payee",
        "category",
        "expected_amount::float8",
        "last_seen",
        "expectation_source",
        "published_at",
    ),
)


@dataclass(frozen=True)
class Contents:
    """What `reconcile` compares of a month: its rows and the sum of its key column."""

    rows: int
    key_sum: int


@dataclass(frozen=True)
class ParquetFile:
    """A Parquet file of a month as `reconcile` sees it; `contents` is None when the file cannot be read."""

    key: str
    contents: Contents | None
    token: str | None
    schema: pa.Schema | None


@dataclass
class Reconciliation:
    """What `reconcile` changed in one table's Parquet: per month, the steps taken, in order."""

    table: str
    fixes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, month: str, fix: str) -> None:
        self.fixes.setdefault(month, []).append(fix)

    @property
    def months(self) -> list[str]:
        """The months changed, sorted."""
        return sorted(self.fixes)

    def lines(self) -> list[str]:
        """One line per changed month, for the log."""
        return [f"{self.table} {month}: {'; '.join(self.fixes[month])}" for month in self.months]


def publish_month(
    store: OutputStore,
    connection: psycopg.Connection,
    table: PublishedTable,
    month: str,
    postgres_rows: pd.DataFrame,
    parquet_rows: pd.DataFrame | pa.Table,
) -> int:
    """Replace `month` of `table` in Postgres and in Parquet, all or nothing as readers see it; returns the rows.

    Steps: stage the Parquet file, commit the Postgres rows with the publication's token, commit the Parquet
    file. Until the Postgres commit an error discards the staged file and leaves both copies as they were;
    after it, an error (or a crash) leaves the staged file for `reconcile`. A transaction the connection has
    open from earlier reads is committed first, so the month's commit is a real one; inside an explicit
    `connection.transaction()` block publication is refused (psycopg's ProgrammingError).
    """
    staged = store.stage_partition(table.name, month, parquet_rows, schema=table.schema)
    try:
        _finish_implicit_transaction(connection)
        with connection.transaction():
            written = replace_month(connection, table.postgres_table, month, postgres_rows)
            _record_publication(connection, table, month, staged.token, written)
    except BaseException as error:
        try:
            staged.discard()
        except Exception as discard_error:
            error.add_note(f"the staged file {store.url(staged.key)} was not removed: {discard_error}")
        raise
    staged.commit()
    return written


def reconcile(
    store: OutputStore,
    connection: psycopg.Connection,
    table: PublishedTable,
    log: Callable[[str], Any] | None = None,
    months: Collection[str] | None = None,
) -> Reconciliation:
    """Make every month of `table`'s Parquet hold what Postgres holds, after a crash of `publish_month`; only
    the `months` (YYYY-MM) when given, those of a run confined to them, whose other months may be mid-publication.

    A staged file is committed when Postgres recorded its token as the month's last publication and holds
    the same rows (count and key sum) in the same schema; otherwise it is discarded. Then, per month: a
    Parquet file whose count, key sum or token differs from Postgres, or that cannot be read, is rewritten
    from Postgres; a month with rows in Parquet and none in Postgres is deleted; a month with rows in
    Postgres and no Parquet file is written. Other files in a month's folder (a killed write's temporary)
    are removed. Each change is passed to `log` and returned.
    """
    result = Reconciliation(table.name)
    _finish_implicit_transaction(connection)
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        cursor.execute(PUBLICATIONS_DDL)
        postgres = _postgres_contents(cursor, table)
        cursor.execute(f"SELECT month, token FROM {PUBLICATIONS_TABLE} WHERE table_name = %s", (table.postgres_table,))  # noqa: S608 - PublishedTable names are module constants, values go as parameters
        tokens: dict[str, str] = dict(cursor.fetchall())
    folders = store.month_keys(table.name)
    staged_by_month: dict[str, list[StagedPartition]] = {}
    for staged in store.staged_partitions(table.name):
        staged_by_month.setdefault(staged.month, []).append(staged)
    if months is not None:
        wanted = set(months)
        folders = {month: keys for month, keys in folders.items() if month in wanted}
        staged_by_month = {month: staged for month, staged in staged_by_month.items() if month in wanted}
        postgres = {month: contents for month, contents in postgres.items() if month in wanted}
    part_keys = {month: f"{store.month_folder(table.name, month)}/{PART_FILE}" for month in folders}
    readable = [key for month, keys in folders.items() for key in keys if _is_part_or_staged(key, part_keys[month])]
    with ThreadPoolExecutor(max_workers=SUMMARY_READERS) as pool:
        files = dict(zip(readable, pool.map(lambda key: _read_summary(store, key, table.key), readable), strict=True))

    for month in sorted(set(folders) | set(postgres)):
        truth = postgres.get(month, Contents(0, 0))
        token = tokens.get(month)
        for key in folders.get(month, []):
            if key not in files:
                store.location.delete(key)
                result.add(month, f"removed the leftover {key.rsplit('/', 1)[1]}")
        committed = files.get(part_keys.get(month, ""))
        for staged in staged_by_month.get(month, []):
            summary = files[staged.key]
            if staged.token == token and summary.contents == truth and _same_schema(summary.schema, table.schema):
                staged.commit()
                committed = summary
                result.add(month, f"committed the staged Parquet of publication {token}, which Postgres holds")
            else:
                staged.discard()
                result.add(month, "discarded a staged Parquet file that Postgres does not hold")
        if truth.rows == 0:
            if committed is not None and (committed.contents is None or committed.contents.rows > 0):
                store.delete_month(table.name, month)
                result.add(month, "deleted from Parquet: Postgres holds no rows of this month")
            continue
        if committed is None:
            _write_from_postgres(store, connection, table, month, token)
            result.add(month, f"written from Postgres ({truth.rows:,} rows), missing from Parquet")
        elif not _matches(committed, truth, token):
            _write_from_postgres(store, connection, table, month, token)
            result.add(month, f"rewritten from Postgres ({truth.rows:,} rows): {_difference(committed, truth, token)}")
    if log is not None:
        for line in result.lines():
            log(f"reconciled Parquet with Postgres: {line}")
    return result


def migrate(
    store: OutputStore, connection: psycopg.Connection, table: PublishedTable, upgrade: Callable[[pa.Table], pa.Table]
) -> list[str]:
    """Bring both copies of `table` to today's columns; returns the Parquet months rewritten.

    Postgres is migrated first (`ensure_anomaly_schema`, which fills the columns it adds from what Postgres
    holds); then each Parquet month stored in another schema is upgraded by `upgrade` (`OutputStore.migrate`) and,
    where Postgres holds the month, rewritten from it, so that both copies hold the same values in the new columns.
    """
    _finish_implicit_transaction(connection)
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        cursor.execute(PUBLICATIONS_DDL)
        held = _postgres_contents(cursor, table)
        cursor.execute(f"SELECT month, token FROM {PUBLICATIONS_TABLE} WHERE table_name = %s", (table.postgres_table,))  # noqa: S608 - PublishedTable names are module constants, values go as parameters
        tokens: dict[str, str] = dict(cursor.fetchall())
    rewritten = store.migrate(table.name, table.schema, upgrade)
    for month in rewritten:
        if month in held:
            _write_from_postgres(store, connection, table, month, tokens.get(month))
    return rewritten


def postgres_month(connection: psycopg.Connection, table: PublishedTable, month: str) -> pa.Table:
    """The month's rows of `table` in Postgres, in its Parquet schema, ordered by the key column."""
    _finish_implicit_transaction(connection)
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(table.select)} FROM {table.postgres_table} WHERE month = %s ORDER BY {table.key}",  # noqa: S608 - PublishedTable names are module constants, values go as parameters
            (month,),
        )
        rows = cursor.fetchall()
    columns: Sequence[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in table.schema]
    arrays = [
        pa.array(_arrow_values(values, column.type), type=column.type)
        for values, column in zip(columns, table.schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=table.schema)


def _finish_implicit_transaction(connection: psycopg.Connection) -> None:
    if connection.info.transaction_status == TransactionStatus.INTRANS:
        connection.commit()


def _record_publication(
    connection: psycopg.Connection, table: PublishedTable, month: str, token: str, rows: int
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(PUBLICATIONS_DDL)
        cursor.execute(
            f"INSERT INTO {PUBLICATIONS_TABLE} (table_name, month, token, rows) VALUES (%s, %s, %s, %s) "  # noqa: S608 - PublishedTable names are module constants, values go as parameters
            "ON CONFLICT (table_name, month) DO UPDATE "
            "SET token = EXCLUDED.token, rows = EXCLUDED.rows, published_at = now()",
            (table.postgres_table, month, token, rows),
        )


def _postgres_contents(cursor: psycopg.Cursor, table: PublishedTable) -> dict[str, Contents]:
    cursor.execute(f"SELECT month, count(*), coalesce(sum({table.key}), 0) FROM {table.postgres_table} GROUP BY month")  # noqa: S608 - PublishedTable names are module constants, values go as parameters
    return {month: Contents(int(rows), int(key_sum)) for month, rows, key_sum in cursor.fetchall()}


def _is_part_or_staged(key: str, part_key: str) -> bool:
    name = key.rsplit("/", 1)[1]
    return key == part_key or (name.startswith(STAGED_PREFIX) and name.endswith(STAGED_SUFFIX))


def _read_summary(store: OutputStore, key: str, column: str) -> ParquetFile:
    """The rows, key sum, token and schema of one Parquet file, reading only its footer and key column."""
    filesystem, path = store.location.arrow(key)
    try:
        with filesystem.open_input_file(path) as source:
            parquet = pq.ParquetFile(source)
            schema = parquet.schema_arrow
            values = parquet.read(columns=[column]).column(column)
    except (OSError, pa.ArrowException, KeyError):
        return ParquetFile(key, None, None, None)
    token = (schema.metadata or {}).get(PUBLICATION_METADATA_KEY)
    total = pc.sum(values).as_py() if len(values) else 0
    return ParquetFile(key, Contents(len(values), int(total or 0)), token.decode() if token else None, schema)


def _same_schema(found: pa.Schema | None, expected: pa.Schema) -> bool:
    return found is not None and found.remove_metadata().equals(expected.remove_metadata())


def _matches(committed: ParquetFile, truth: Contents, token: str | None) -> bool:
    if committed.contents != truth:
        return False
    return committed.token is None or token is None or committed.token == token


def _difference(committed: ParquetFile, truth: Contents, token: str | None) -> str:
    if committed.contents is None:
        return "the Parquet file cannot be read"
    if committed.contents != truth:
        return f"Parquet held {committed.contents.rows:,} rows, key sum {committed.contents.key_sum}"
    return f"Parquet held publication {committed.token}, Postgres {token}"


def _write_from_postgres(
    store: OutputStore, connection: psycopg.Connection, table: PublishedTable, month: str, token: str | None
) -> None:
    rows = postgres_month(connection, table, month)
    store.stage_partition(table.name, month, rows, schema=table.schema, token=token).commit()


def _arrow_values(values: Sequence[Any], data_type: pa.DataType) -> list[Any]:
    if pa.types.is_map(data_type):
        return [None if value is None else list(value.items()) for value in values]
    return list(values)
