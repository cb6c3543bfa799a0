"""Run the whole code location in-process over every partition, and summarize what it produced."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ads_assets.environment import Environment
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import connect, table_count
from ads_assets.lib.raw_schema import QUARANTINE_TABLE, raw_table
from ads_assets.lib.tables import FEATURES_TABLE, MISSING_PAYMENTS_TABLE, MISSING_TABLE, SCORES_TABLE

DOWNSTREAM_TABLES = (FEATURES_TABLE, MISSING_PAYMENTS_TABLE, SCORES_TABLE, MISSING_TABLE)


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    blocking: bool


@dataclass
class RunSummary:
    success: bool
    run_id: str
    seconds: float
    table_rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    flagged: int = 0
    outputs: str = ""

    def render(self) -> str:
        lines = [f"ADS run {self.run_id}: {'succeeded' if self.success else 'FAILED'} in {self.seconds:.1f} s"]
        lines.append("tables:")
        lines += [f"  {table:<40} {rows:>10,} rows" for table, rows in self.table_rows.items()]
        total_quarantined = sum(self.quarantined.values())
        lines.append(f"quarantined rows: {total_quarantined:,}")
        lines += [f"  {relation:<40} {rows:>10,}" for relation, rows in self.quarantined.items() if rows]
        passed = sum(1 for check in self.checks if check.passed)
        lines.append(f"checks: {passed} passed, {len(self.checks) - passed} failed")
        lines += [
            f"  FAILED ({'blocking' if check.blocking else 'warning'}) {check.asset} {check.name}"
            for check in self.checks
            if not check.passed
        ]
        lines.append(f"flagged anomalies: {self.flagged:,} transactions")
        if self.failed_steps:
            lines.append("failed steps: " + ", ".join(self.failed_steps))
        lines.append(f"outputs: {self.outputs} (transaction_scores/, missing_payments/, quality/)")
        return "\n".join(lines)


def run_pipeline(environment: Environment) -> RunSummary:
    """Materialize every asset for all partitions in one in-process run recorded in Dagster's storage."""
    from ads_assets.definitions import defs
    from ads_assets.defs.partitions import monthly_partitions

    job = defs.resolve_job_def("ads_full")
    partition_keys = monthly_partitions.get_partition_keys()
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: partition_keys[0],
                ASSET_PARTITION_RANGE_END_TAG: partition_keys[-1],
            },
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )
    summary = RunSummary(
        success=result.success,
        run_id=result.run_id,
        seconds=time.monotonic() - started,
        outputs=environment.settings.output,
    )
    summary.failed_steps = [
        event.step_key or "" for event in result.all_events if event.event_type_value == "STEP_FAILURE"
    ]
    summary.checks = [
        CheckOutcome(
            asset=evaluation.asset_key.to_user_string(),
            name=evaluation.check_name,
            passed=evaluation.passed,
            blocking=bool(evaluation.blocking),
        )
        for evaluation in result.get_asset_check_evaluations()
    ]
    _count_tables(environment, summary)
    return summary


def _count_tables(environment: Environment, summary: RunSummary) -> None:
    with connect(environment.postgres) as connection, connection.cursor() as cursor:
        for name in LOAD_ORDER:
            summary.table_rows[raw_table(RELATIONS[name])] = table_count(cursor, raw_table(RELATIONS[name]))
            summary.quarantined[name] = table_count(cursor, QUARANTINE_TABLE, "WHERE relation = %s", (name,))
        for table in DOWNSTREAM_TABLES:
            cursor.execute("SELECT to_regclass(%s)", (table,))
            if cursor.fetchone()[0] is not None:
                summary.table_rows[table] = table_count(cursor, table)
        cursor.execute("SELECT to_regclass(%s)", (SCORES_TABLE,))
        if cursor.fetchone()[0] is not None:
            summary.flagged = table_count(cursor, SCORES_TABLE, "WHERE is_anomaly")
