"""Every quality check of one raw relation, evaluated together: its GX suite, volume and freshness.

Plain Python over Postgres (no Dagster): the asset checks in `ads_assets.defs.quality` call this and
turn each `CheckEvaluation` into an asset check result; tests call it directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ads_assets.lib.berka.schema import RELATIONS
from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.quality.gx_bridge import GxValidator, SuiteOutcome, jsonable
from ads_assets.lib.quality.parameters import (
    Span,
    add_months,
    date_parameters,
    months_between,
    table_parameters,
    trans_month_parameters,
)
from ads_assets.lib.quality.store import (
    CheckRecord,
    ensure_quality_schema,
    write_check_results,
    write_validation_results,
)
from ads_assets.lib.quality.suites import Batch, Severity, SuiteSpec, feature_suite_spec, raw_suite_specs
from ads_assets.lib.quality.volume import Z_THRESHOLD, daily_volume, freshness, monthly_volume

FRESHNESS = "freshness"
VOLUME_MONTHLY = "volume_monthly"
VOLUME_DAILY = "volume_daily"
MAX_LISTED = 24
PARAMETERISED_CHECKS = frozenset({"values", "distribution"})

CHECK_DESCRIPTIONS = {
    "schema": "Columns, their Postgres types and NOT NULL columns as in the canonical schema.",
    "keys": "The key is never null and unique.",
    "codes": "Code columns hold only the allowed Czech codes.",
    "referential": "Every foreign key points at an existing parent row (e.g. every transaction's account exists).",
    "values": (
        "Value ranges, formats and date windows; amounts, balances and account numbers tolerate 1% of a batch "
        "outside (a few fraudulent rows are the detectors' job, a corrupted batch is this check's)."
    ),
    "ledger": "At least 98% of account-days (feature rows) chain their balances from the previous day (within 0.50).",
    "distribution": (
        "Amounts per transaction type against the reference period (the 12 months before): median and 90th "
        "percentile within a factor 3 of the reference's, and at least 85% inside its 1st..99th percentile."
    ),
    VOLUME_MONTHLY: f"Rows per month per open account against the trailing 12 months: |z| < {Z_THRESHOLD:g} and no empty month.",
    VOLUME_DAILY: f"Rows per day per open account against the same day of the trailing 12 months: |z| < {Z_THRESHOLD:g}, no gap.",
    FRESHNESS: "The relation was loaded successfully (raw.load_audit) within the last 26 hours.",
}


def asset_name(relation_name: str) -> str:
    """The Dagster asset key of a raw relation, as a user string."""
    return f"raw/{RELATIONS[relation_name].table}"


def partition_key(month: date) -> str:
    return month.isoformat()


@dataclass
class CheckEvaluation:
    """One check of one relation over the batches of a run: outcome, observed values, rows for the dashboard."""

    asset: str
    check: str
    severity: Severity
    success: bool
    observed: dict[str, Any]
    records: list[CheckRecord] = field(default_factory=list)

    @property
    def description(self) -> str:
        return CHECK_DESCRIPTIONS.get(self.check, self.check)


@dataclass
class RelationQuality:
    """All evaluated checks of one relation, and the GX outcomes behind them."""

    relation: str
    spec: SuiteSpec
    outcomes: list[SuiteOutcome]
    checks: dict[str, CheckEvaluation]

    @property
    def complete(self) -> bool:
        """Every GX validation evaluated every expectation written in the suite."""
        return all(outcome.complete for outcome in self.outcomes)


def relation_checks(relation_name: str, spec: SuiteSpec | None = None) -> dict[str, Severity]:
    """Every check of a relation and its severity: the suite's, then volume and freshness."""
    spec = spec or raw_suite_specs()[relation_name]
    checks = dict(spec.checks)
    if RELATIONS[relation_name].partition_column:
        checks |= {VOLUME_MONTHLY: Severity.WARN, VOLUME_DAILY: Severity.WARN}
    checks[FRESHNESS] = Severity.WARN
    return checks


def _gx_evaluation(
    asset: str, run_id: str, check: str, severity: Severity, outcomes: list[SuiteOutcome]
) -> CheckEvaluation:
    per_batch = {outcome.batch: outcome.check(check) for outcome in outcomes}
    failed = {batch: result for batch, result in per_batch.items() if not result.success}
    latest_batch = max(per_batch)
    observed: dict[str, Any] = {
        "batches": len(per_batch),
        "failed_batches": sorted(failed)[:MAX_LISTED],
        "expectations": len(per_batch[latest_batch].expectations),
        "observed": {batch: result.observed() for batch, result in list(failed.items())[:MAX_LISTED]}
        or {latest_batch: per_batch[latest_batch].observed()},
    }
    if check in PARAMETERISED_CHECKS:
        shown = sorted(failed)[:MAX_LISTED] or [latest_batch]
        parameters = {outcome.batch: outcome.parameters for outcome in outcomes}
        observed["parameters"] = {batch: parameters[batch] for batch in shown}
    failures = [
        {"batch": batch, **expectation.as_json()} for batch, result in failed.items() for expectation in result.failed
    ]
    if failures:
        observed["failures"] = failures[:MAX_LISTED]
    records = [
        CheckRecord(
            run_id=run_id,
            asset=asset,
            partition=None if batch == "all" else f"{batch}-01",
            check_name=check,
            severity=severity.value,
            success=result.success,
            observed={
                "observed": result.observed(),
                "failed": [expectation.as_json() for expectation in result.failed],
            },
        )
        for batch, result in per_batch.items()
    ]
    return CheckEvaluation(asset, check, severity, not failed, jsonable(observed), records)


def _volume_evaluation(asset: str, run_id: str, check: str, points: list[Any], monthly: bool) -> CheckEvaluation:
    flagged = [point for point in points if point.flag]
    scored = [point for point in points if point.z is not None]
    worst = min(scored, key=lambda point: -abs(point.z)) if scored else None
    observed = {
        "periods": len(points),
        "scored": len(scored),
        "flagged": [point.as_json() for point in flagged][:MAX_LISTED],
        "worst": worst.as_json() if worst else None,
    }
    by_month: dict[date, list[Any]] = {}
    for point in points:
        by_month.setdefault(point.period.replace(day=1), []).append(point)
    records = [
        CheckRecord(
            run_id=run_id,
            asset=asset,
            partition=partition_key(month),
            check_name=check,
            severity=Severity.WARN.value,
            success=not any(point.flag for point in month_points),
            observed=month_points[0].as_json()
            if monthly
            else {"days": len(month_points), "flagged": [point.as_json() for point in month_points if point.flag]},
        )
        for month, month_points in by_month.items()
    ]
    return CheckEvaluation(asset, check, Severity.WARN, not flagged, jsonable(observed), records)


def evaluate_relation(
    target: PostgresTarget,
    relation_name: str,
    run_id: str,
    span: Span,
    months: list[date] | None = None,
    selected: Collection[str] | None = None,
    validator: GxValidator | None = None,
    now: datetime | None = None,
) -> RelationQuality:
    """Evaluate the selected checks of a relation (all by default) and record them in `quality.*`.

    A monthly suite validates each of `months` (default: every month of the span) as its own batch.
    """
    spec = raw_suite_specs()[relation_name]
    wanted = set(selected) if selected is not None else set(relation_checks(relation_name, spec))
    asset = asset_name(relation_name)
    gx_checks = [check for check in spec.checks if check in wanted]
    months = sorted(months) if months is not None else _span_months(span)
    outcomes: list[SuiteOutcome] = []
    checks: dict[str, CheckEvaluation] = {}
    with connect(target, autocommit=True) as connection:
        ensure_quality_schema(connection)
        if gx_checks:
            if spec.batch is Batch.MONTH:
                parameters = {month: trans_month_parameters(connection, span, month) for month in months}
                outcomes = validate_months(target, spec, parameters, validator)
            else:
                outcomes = [(validator or GxValidator(target)).validate(spec, None, table_parameters(span))]
            for check in gx_checks:
                checks[check] = _gx_evaluation(asset, run_id, check, spec.checks[check], outcomes)
        if VOLUME_MONTHLY in wanted and spec.batch is Batch.MONTH:
            checks[VOLUME_MONTHLY] = _volume_evaluation(
                asset, run_id, VOLUME_MONTHLY, monthly_volume(connection, months), True
            )
        if VOLUME_DAILY in wanted and spec.batch is Batch.MONTH:
            checks[VOLUME_DAILY] = _volume_evaluation(
                asset, run_id, VOLUME_DAILY, daily_volume(connection, months), False
            )
        if FRESHNESS in wanted:
            state = freshness(connection, relation_name, now=now)
            checks[FRESHNESS] = CheckEvaluation(
                asset,
                FRESHNESS,
                Severity.WARN,
                state.fresh,
                jsonable(state.as_json()),
                [CheckRecord(run_id, asset, None, FRESHNESS, Severity.WARN.value, state.fresh, state.as_json())],
            )
        if outcomes:
            write_validation_results(connection, run_id, outcomes)
        write_check_results(connection, [record for evaluation in checks.values() for record in evaluation.records])
    return RelationQuality(relation_name, spec, outcomes, checks)


def validate_months(
    target: PostgresTarget,
    spec: SuiteSpec,
    parameters: Mapping[date, Mapping[str, Any]],
    validator: GxValidator | None = None,
) -> list[SuiteOutcome]:
    """Validate a monthly suite on each month of `parameters` (month -> suite parameters), in month order.

    With a `validator` the months go one after another through it; without, `VALIDATION_THREADS` threads
    validate them side by side, each with its own GX context: a month's validation is mostly Postgres
    evaluating the suite's metric queries, so the database's cores work while Python waits.
    """
    months = sorted(parameters)
    if validator is not None:
        return [validator.validate_month(spec, month, parameters[month]) for month in months]
    own = threading.local()

    def validate(month: date) -> SuiteOutcome:
        if not hasattr(own, "validator"):
            own.validator = GxValidator(target)
        return own.validator.validate_month(spec, month, parameters[month])

    with ThreadPoolExecutor(min(VALIDATION_THREADS, max(len(months), 1))) as pool:
        return list(pool.map(validate, months))


VALIDATION_THREADS = max(2, os.cpu_count() or 1)
"""Threads validating months side by side (each month's metric queries run in Postgres)."""


def _span_months(span: Span) -> list[date]:
    return months_between(span.first, add_months(span.end, -1))


def feature_checks(spec: SuiteSpec | None = None) -> dict[str, Severity]:
    """The checks of the feature table's suite and their severities."""
    return dict((spec or feature_suite_spec()).checks)


def evaluate_feature_table(
    target: PostgresTarget,
    asset: str,
    run_id: str,
    span: Span,
    months: list[date],
    selected: Collection[str] | None = None,
    validator: GxValidator | None = None,
) -> dict[str, CheckEvaluation]:
    """Validate the feature table's suite month by month and record the results in `quality.*`."""
    spec = feature_suite_spec()
    wanted = [check for check in spec.checks if selected is None or check in selected]
    if not wanted:
        return {}
    outcomes = validate_months(target, spec, {month: date_parameters(span, month) for month in months}, validator)
    checks = {check: _gx_evaluation(asset, run_id, check, spec.checks[check], outcomes) for check in wanted}
    with connect(target, autocommit=True) as connection:
        ensure_quality_schema(connection)
        write_validation_results(connection, run_id, outcomes)
        write_check_results(connection, [record for evaluation in checks.values() for record in evaluation.records])
    return checks
