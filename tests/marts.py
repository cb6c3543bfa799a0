"""Building the dbt marts for tests: Berka files loaded into a database of the session's Postgres, and dbt
run in-process (as `dbt run` would, without starting another Python for each invocation).

`load_source` leaves the raw tables analyzed, as autovacuum leaves them a minute after a load: without
statistics the planner takes a freshly loaded table for a tiny one, and the feature mart of a 60-account
bank then takes about 17 s to build instead of under one. The rows the models return do not depend on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ads_assets.lib.berka.formats import detect_source
from ads_assets.lib.berka.schema import LOAD_ORDER
from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.ingest import load_relation

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


def analyze_raw(target: PostgresTarget) -> None:
    """Refresh the planner statistics of the raw schema's tables."""
    with connect(target, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'raw'"
        ).fetchall()
        for (table,) in tables:
            connection.execute(f"ANALYZE {table}")


def load_source(folder: Path, target: PostgresTarget) -> None:
    """Load the eight Berka relations in `folder` (either published format) into `target`, analyzed."""
    sources = detect_source(folder)
    with connect(target) as connection:
        for relation in LOAD_ORDER:
            load_relation(connection, sources[relation])
    analyze_raw(target)


def run_dbt(
    target: PostgresTarget,
    target_path: Path,
    *args: str,
    dbt_vars: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
) -> Any:
    """`dbt ARGS` on the project against `target`, in-process; fails the test unless every node succeeded."""
    from dbt.cli.main import dbtRunner

    command = [*args, "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT)]
    command += ["--target-path", str(target_path), "--log-path", str(target_path / "logs")]
    if dbt_vars:
        command += ["--vars", json.dumps(dbt_vars)]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**target.dbt_profile_env(), **(environment or {})}.items():
            patch.setenv(name, value)
        result = dbtRunner().invoke(command)
    failures = [
        f"{node.node.unique_id}: {node.status} {node.message}"
        for node in getattr(result.result, "results", None) or []
        if str(node.status) not in ("success", "pass")
    ]
    assert result.success, f"dbt {' '.join(args)} failed: {result.exception} {failures}"
    return result


def build_feature_mart(source: Path, target: PostgresTarget, work: Path, *models: str) -> None:
    """Load the Berka files in `source` into `target` and build the `models` (default: the transaction
    feature mart) with everything upstream of them."""
    load_source(source, target)
    selection = [f"+{model}" for model in models or ("fct_transaction_features",)]
    run_dbt(target, work / "target", "run", "--select", *selection)
