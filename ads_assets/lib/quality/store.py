"""The `quality` schema: every check result for dashboards, and every GX validation result for Data Docs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ads_assets.lib.quality.gx_bridge import SuiteOutcome, jsonable

QUALITY_SCHEMA = "quality"
CHECK_RESULTS_TABLE = f"{QUALITY_SCHEMA}.check_results"
VALIDATION_RESULTS_TABLE = f"{QUALITY_SCHEMA}.validation_results"
_DDL_LOCK = 0x0AD5_0A11

QUALITY_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {QUALITY_SCHEMA};
CREATE TABLE IF NOT EXISTS {CHECK_RESULTS_TABLE} (
    run_id text NOT NULL,
    asset text NOT NULL,
    partition text,
    check_name text NOT NULL,
    severity text NOT NULL,
    success boolean NOT NULL,
    observed jsonb,
    evaluated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS check_results_run_idx ON {CHECK_RESULTS_TABLE} (run_id);
CREATE INDEX IF NOT EXISTS check_results_asset_idx ON {CHECK_RESULTS_TABLE} (asset, check_name, evaluated_at);
CREATE TABLE IF NOT EXISTS {VALIDATION_RESULTS_TABLE} (
    run_id text NOT NULL,
    suite text NOT NULL,
    batch text NOT NULL,
    success boolean NOT NULL,
    evaluated integer NOT NULL,
    written integer NOT NULL,
    result jsonb NOT NULL,
    evaluated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, suite, batch)
)
"""


@dataclass(frozen=True)
class CheckRecord:
    """One row of `quality.check_results`: a check on an asset (and partition) in a run."""

    run_id: str
    asset: str
    partition: str | None
    check_name: str
    severity: str
    success: bool
    observed: Any


def ensure_quality_schema(connection: psycopg.Connection) -> None:
    """Create the quality schema and its tables if absent; serialized so concurrent steps do not race."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        connection.execute(QUALITY_DDL)


def write_check_results(connection: psycopg.Connection, records: Iterable[CheckRecord]) -> int:
    """Append check results; returns how many rows were written."""
    rows = [
        (
            record.run_id,
            record.asset,
            record.partition,
            record.check_name,
            record.severity,
            record.success,
            json.dumps(jsonable(record.observed)),
        )
        for record in records
    ]
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {CHECK_RESULTS_TABLE} (run_id, asset, partition, check_name, severity, success, observed) "  # noqa: S608 - table names are module constants, values go as parameters
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
            rows,
        )
    return len(rows)


def write_validation_results(connection: psycopg.Connection, run_id: str, outcomes: Iterable[SuiteOutcome]) -> None:
    """Keep each GX validation result document of the run, replacing a re-run of the same suite and batch."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {VALIDATION_RESULTS_TABLE} (run_id, suite, batch, success, evaluated, written, result) "  # noqa: S608 - table names are module constants, values go as parameters
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (run_id, suite, batch) DO UPDATE SET "
            "success = EXCLUDED.success, evaluated = EXCLUDED.evaluated, written = EXCLUDED.written, "
            "result = EXCLUDED.result, evaluated_at = now()",
            [
                (
                    run_id,
                    outcome.suite,
                    outcome.batch,
                    outcome.success,
                    outcome.evaluated,
                    outcome.written,
                    json.dumps(outcome.result),
                )
                for outcome in outcomes
            ],
        )


@dataclass(frozen=True)
class StoredValidation:
    run_id: str
    suite: str
    batch: str
    success: bool
    result: dict[str, Any]
    evaluated_at: datetime


def validations_for_report(connection: psycopg.Connection, run_id: str, history: int = 1) -> list[StoredValidation]:
    """The run's validation results and those of the `history` - 1 runs before it, newest run first.

    Without any for the run, the latest result of every suite and batch and those of the runs before.
    """
    columns = "run_id, suite, batch, success, result, evaluated_at"
    earlier = (
        f"SELECT run_id FROM {VALIDATION_RESULTS_TABLE} WHERE run_id <> %(run)s GROUP BY run_id "  # noqa: S608 - table names are module constants, values go as parameters
        "ORDER BY max(evaluated_at) DESC LIMIT %(earlier)s"
    )
    rows = connection.execute(
        f"SELECT {columns} FROM {VALIDATION_RESULTS_TABLE} WHERE run_id = %(run)s OR run_id IN ({earlier}) "  # noqa: S608 - table names are module constants, values go as parameters
        "ORDER BY evaluated_at DESC, suite, batch",
        {"run": run_id, "earlier": max(history - 1, 0)},
    ).fetchall()
    if not any(row[0] == run_id for row in rows):
        latest = connection.execute(
            f"SELECT DISTINCT ON (suite, batch) {columns} "  # noqa: S608 - table names are module constants, values go as parameters
            f"FROM {VALIDATION_RESULTS_TABLE} ORDER BY suite, batch, evaluated_at DESC"
        ).fetchall()
        rows = list({(row[0], row[1], row[2]): row for row in [*latest, *rows]}.values())
    return [StoredValidation(*row) for row in rows]


def check_results_for_run(connection: psycopg.Connection, run_id: str) -> list[CheckRecord]:
    rows = connection.execute(
        f"SELECT run_id, asset, partition, check_name, severity, success, observed FROM {CHECK_RESULTS_TABLE} "  # noqa: S608 - table names are module constants, values go as parameters
        "WHERE run_id = %s ORDER BY asset, check_name, partition NULLS FIRST",
        (run_id,),
    ).fetchall()
    return [CheckRecord(*row) for row in rows]
