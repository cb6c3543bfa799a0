"""The audit trail: `ops.audit`, one row per act on customer data, by whom and when.

Actions: `label` (analyst labels applied, from `ads label` or the labels inbox), `export` (`ads alerts --export`)
and `read_masked` (a session of the `ads_analyst` role reading an `analyst` view, once per session and view; see
`ads_assets.lib.security.analyst`). `by` is who acted: the OS user or `--by` for the CLI, the database role for
reads of the analyst views; `db_user` is the Postgres role of the session that wrote the row. Only the database
owner writes the table: the ADS roles have no privilege on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ads_assets.lib.metrics import OPS_SCHEMA

AUDIT_TABLE = (OPS_SCHEMA, "audit")
LABEL, EXPORT, READ_MASKED = "label", "export", "read_masked"
ACTIONS = (LABEL, EXPORT, READ_MASKED)

AUDIT_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action text NOT NULL CHECK (action IN ({actions})),
    by text NOT NULL,
    db_user text NOT NULL DEFAULT session_user,
    details jsonb NOT NULL DEFAULT '{{}}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_at_idx ON {table} (at);
"""
).format(
    schema=sql.Identifier(OPS_SCHEMA),
    table=sql.Identifier(*AUDIT_TABLE),
    actions=sql.SQL(", ").join(map(sql.Literal, ACTIONS)),
)


def ensure_audit_table(cursor: psycopg.Cursor) -> None:
    """Create `ops.audit` when it is missing."""
    cursor.execute(AUDIT_DDL)


def record(cursor: psycopg.Cursor, action: str, by: str, details: Mapping[str, Any]) -> None:
    """Add one row to `ops.audit`, in the cursor's transaction (so it commits or rolls back with the act)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: expected one of {', '.join(ACTIONS)}")
    ensure_audit_table(cursor)
    cursor.execute(
        sql.SQL("INSERT INTO {} (action, by, details) VALUES (%s, %s, %s)").format(sql.Identifier(*AUDIT_TABLE)),
        (action, by, Jsonb(dict(details))),
    )
