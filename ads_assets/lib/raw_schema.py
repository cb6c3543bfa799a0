"""DDL of the `raw` schema: one table per Berka relation, the quarantine and the load audit."""

from __future__ import annotations

import psycopg

from ads_assets.lib.berka.schema import RELATIONS, Relation

RAW_SCHEMA = "raw"
QUARANTINE_TABLE = f"{RAW_SCHEMA}.quarantine"
LOAD_AUDIT_TABLE = f"{RAW_SCHEMA}.load_audit"


def raw_table(relation: Relation) -> str:
    return f"{RAW_SCHEMA}.{relation.table}"


def relation_ddl(relation: Relation) -> str:
    columns = ",\n    ".join(
        f"{column.name} {column.type.value}{'' if column.nullable else ' NOT NULL'}" for column in relation.columns
    )
    table = raw_table(relation)
    statements = [f"CREATE TABLE IF NOT EXISTS {table} (\n    {columns}\n)"]
    if relation.partition_column:
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {relation.table}_{relation.partition_column}_idx "
            f"ON {table} ({relation.partition_column})"
        )
        statements.append(f"CREATE INDEX IF NOT EXISTS {relation.table}_{relation.key}_idx ON {table} ({relation.key})")
    else:
        statements.append(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {relation.table}_{relation.key}_key ON {table} ({relation.key})"
        )
    return ";\n".join(statements)


BOOKKEEPING_DDL = f"""
CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
    quarantine_id bigserial PRIMARY KEY,
    relation text NOT NULL,
    source_file text NOT NULL,
    source_sha256 text NOT NULL,
    line_number bigint NOT NULL,
    raw_line text NOT NULL,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (relation, source_sha256, line_number)
);
CREATE TABLE IF NOT EXISTS {LOAD_AUDIT_TABLE} (
    relation text NOT NULL,
    source_file text NOT NULL,
    source_sha256 text NOT NULL,
    partition_window text NOT NULL,
    rows_read bigint NOT NULL,
    rows_accepted bigint NOT NULL,
    rows_quarantined bigint NOT NULL,
    rows_outside_window bigint NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    PRIMARY KEY (relation, source_sha256, partition_window)
)
"""


def ensure_raw_schema(cursor: psycopg.Cursor) -> None:
    """Create the raw schema, its eight relation tables, the quarantine and the load audit if absent."""
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for relation in RELATIONS.values():
        cursor.execute(relation_ddl(relation))
    cursor.execute(BOOKKEEPING_DDL)
