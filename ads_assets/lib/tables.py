"""Bulk reads of mart tables into pandas and writes of anomaly tables, through Postgres COPY.

The score table's definitions live with detection (`ads_assets.lib.detection.tables`); `SCORES_TABLE` is
re-exported here for the readers of every anomaly table.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import date

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from ads_assets.lib.detection.tables import SCORES_TABLE as SCORES_TABLE
from ads_assets.lib.detection.tables import ensure_scores_table

FEATURES_TABLE = "marts.fct_transaction_features"
MISSING_PAYMENTS_TABLE = "marts.fct_missing_payments"
ANOMALY_SCHEMA = "anomaly"
MISSING_TABLE = f"{ANOMALY_SCHEMA}.missing_payments"
LABELS_TABLE = f"{ANOMALY_SCHEMA}.labels"
LABEL_FILES_TABLE = f"{ANOMALY_SCHEMA}.label_files"
LEGACY_CONFIRMED_TABLE = f"{ANOMALY_SCHEMA}.confirmed_anomalies"
"""Analyst-confirmed anomalies before `anomaly.labels`: migrated into it, then dropped."""
LABEL_VALUES = ("confirmed", "false_positive")
LABEL_LIST = ", ".join(f"'{value}'" for value in LABEL_VALUES)
LABELS_MIGRATION_LOCK = 0x4144534C4142454C
"""The advisory lock key that serializes the migration of the legacy table ("ADSLABEL")."""

ANOMALY_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {ANOMALY_SCHEMA};
CREATE TABLE IF NOT EXISTS {MISSING_TABLE} (
    account_id bigint NOT NULL,
    month text NOT NULL,
    expected_payee text,
    category text,
    expected_amount numeric(14, 2),
    last_seen text,
    expectation_source text,
    published_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS missing_payments_month_idx ON {MISSING_TABLE} (month);
CREATE TABLE IF NOT EXISTS {LABELS_TABLE} (
    trans_id bigint PRIMARY KEY,
    label text NOT NULL CHECK (label IN ({LABEL_LIST})),
    note text,
    by text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {LABEL_FILES_TABLE} (
    sha256 text PRIMARY KEY,
    file_name text NOT NULL,
    labels integer NOT NULL,
    by text,
    taken_at timestamptz NOT NULL DEFAULT now()
);
"""


MISSING_PARQUET_SCHEMA = pa.schema(
    [
        ("account_id", pa.int64()),
        ("expected_payee", pa.string()),
        ("category", pa.string()),
        ("expected_amount", pa.float64()),
        ("last_seen", pa.string()),
        ("expectation_source", pa.string()),
        ("published_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""`{output}/missing_payments/month=YYYY-MM/`: the columns of anomaly.missing_payments."""


def ensure_anomaly_schema(cursor: psycopg.Cursor) -> None:
    """Create the anomaly schema: transaction scores, missing payments, analyst labels and the label files taken."""
    cursor.execute(ANOMALY_DDL)
    ensure_scores_table(cursor)
    migrate_confirmed_anomalies(cursor)


def migrate_confirmed_anomalies(cursor: psycopg.Cursor) -> int:
    """Move the rows of the legacy `anomaly.confirmed_anomalies` into `anomaly.labels`, then drop it.

    Each row becomes label `confirmed` with by = confirmed_by, at = confirmed_at and its note; a transaction
    that already has a label keeps it. Without the legacy table this does nothing, so it is idempotent.
    Returns the rows moved.
    """
    if not _relation_exists(cursor, LEGACY_CONFIRMED_TABLE):
        return 0
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LABELS_MIGRATION_LOCK,))
    if not _relation_exists(cursor, LEGACY_CONFIRMED_TABLE):
        return 0
    cursor.execute(
        f"INSERT INTO {LABELS_TABLE} (trans_id, label, note, by, at) "  # noqa: S608 - module constants only
        f"SELECT trans_id, 'confirmed', note, confirmed_by, confirmed_at FROM {LEGACY_CONFIRMED_TABLE} "
        "ON CONFLICT (trans_id) DO NOTHING"
    )
    moved = cursor.rowcount
    cursor.execute(f"DROP TABLE {LEGACY_CONFIRMED_TABLE}")
    return moved


def _relation_exists(cursor: psycopg.Cursor, name: str) -> bool:
    row = cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


TEXT_TYPE_OIDS = frozenset({25, 1042, 1043})
"""Postgres text, char and varchar: read as strings, so account numbers keep their leading zeros."""


def read_query(connection: psycopg.Connection, query: str, params: Sequence[object] = ()) -> pd.DataFrame:
    """Run `query` and return its rows as a DataFrame, streamed through COPY as CSV and parsed by pyarrow."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        bound = psycopg.ClientCursor(connection).mogrify(query, params) if params else query
        cursor.execute(f"SELECT * FROM ({bound}) AS typed LIMIT 0")  # noqa: S608 - COPY takes no parameters: values bound client-side by psycopg's mogrify
        text_columns = {
            column.name: pa.string() for column in cursor.description or () if column.type_code in TEXT_TYPE_OIDS
        }
        with cursor.copy(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame()
    table = pa_csv.read_csv(
        buffer,
        convert_options=pa_csv.ConvertOptions(
            column_types=text_columns, true_values=["t"], false_values=["f"], strings_can_be_null=True
        ),
    )
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get, date_as_object=False)


def read_window(connection: psycopg.Connection, table: str, date_column: str, start: date, end: date) -> pd.DataFrame:
    """Rows of `table` whose `date_column` lies in [start, end)."""
    return read_query(
        connection,
        f"SELECT * FROM {table} WHERE {date_column} >= %s AND {date_column} < %s ORDER BY {date_column}",  # noqa: S608 - table and date column are callers' constants, values go as parameters
        (start, end),
    )


def confirmed_ids(connection: psycopg.Connection) -> set[int]:
    """The trans_ids that analysts labelled `confirmed` in `anomaly.labels` (the legacy table migrated first)."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        cursor.execute(f"SELECT trans_id FROM {LABELS_TABLE} WHERE label = 'confirmed'")  # noqa: S608 - LABELS_TABLE is a module constant
        return {int(row[0]) for row in cursor.fetchall()}


def read_labels(connection: psycopg.Connection) -> pd.DataFrame:
    """Every analyst label with its transaction: trans_id, label, note, by, at, and from the feature mart
    trans_date, account_id, counterparty_bank, counterparty_account (null where the mart lacks the row or is absent).
    """
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        with_features = _relation_exists(cursor, FEATURES_TABLE)
    transaction = (
        "f.trans_date, f.account_id, f.counterparty_bank, f.counterparty_account"
        if with_features
        else "NULL::date AS trans_date, NULL::bigint AS account_id, "
        "NULL::text AS counterparty_bank, NULL::text AS counterparty_account"
    )
    joined = f"LEFT JOIN {FEATURES_TABLE} AS f ON f.trans_id = l.trans_id" if with_features else ""
    return read_query(
        connection,
        f"SELECT l.trans_id, l.label, l.note, l.by, l.at, {transaction} "  # noqa: S608 - module constants only
        f"FROM {LABELS_TABLE} AS l {joined} ORDER BY l.trans_id",
    )


def replace_month(connection: psycopg.Connection, table: str, month: str, frame: pd.DataFrame) -> int:
    """Delete `month` from `table` and COPY `frame` in, in one transaction; returns rows written."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        cursor.execute(f"DELETE FROM {table} WHERE month = %s", (month,))  # noqa: S608 - table is a module constant, month goes as a parameter
        copy_frame(cursor, table, frame)
    return len(frame)


def copy_frame(cursor: psycopg.Cursor, table: str, frame: pd.DataFrame) -> None:
    """COPY `frame`'s rows into `table` as one CSV stream written by pyarrow.

    Every non-null value is quoted, so an empty string stays an empty string and a missing value (None,
    NaN, NaT) is NULL. List values become Postgres array literals, dict values JSON text.
    """
    if frame.empty:
        return
    columns = {name: _copyable(frame[name]) for name in frame.columns}
    buffer = io.BytesIO()
    pa_csv.write_csv(
        pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False),
        buffer,
        pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"),
    )
    with cursor.copy(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(buffer.getbuffer())


def _copyable(column: pd.Series) -> pd.Series:
    if column.dtype != object:
        return column
    present = column.dropna()
    if present.empty:
        return column.astype("string")
    sample = present.iloc[0]
    if isinstance(sample, list | tuple):
        return column.map(_array_literal, na_action="ignore").astype("string")
    if isinstance(sample, dict):
        return column.map(json.dumps, na_action="ignore").astype("string")
    if isinstance(sample, str):
        return column.astype("string")
    return column


def _array_literal(values: Sequence[object]) -> str:
    """A Postgres array literal of text elements, each quoted and escaped."""
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


ANALYST_LABEL_COLUMN = "analyst_label"
"""The column of feature frames that carries each transaction's analyst label (missing where there is none)."""


def label_map(connection: psycopg.Connection) -> dict[int, str]:
    """Every analyst label by trans_id: `confirmed` or `false_positive`."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        cursor.execute(f"SELECT trans_id, label FROM {LABELS_TABLE}")  # noqa: S608 - LABELS_TABLE is a module constant
        return {int(trans_id): str(label) for trans_id, label in cursor.fetchall()}


def with_analyst_labels(frame: pd.DataFrame, labels: Mapping[int, str]) -> pd.DataFrame:
    """`frame` with its rows' analyst labels in `analyst_label`, for the detectors that learn from them."""
    if "trans_id" not in frame.columns:
        return frame
    return frame.assign(**{ANALYST_LABEL_COLUMN: frame["trans_id"].map(labels).astype("string")})
