"""Asset checks: one multi-asset check per raw relation (its GX suite, volume, freshness) and one on the feature table.

Critical checks (schema, keys, codes, referential) are blocking: when one fails, Dagster does not run the
assets downstream of the checked asset (features, scoring). The rest warn. raw/fin_trans and the feature
table are validated month by month over the partitions of the run (a single-run backfill validates each
month of its range).
"""

from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import date

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError

from ads_assets.defs.ingest.assets import raw_asset_key
from ads_assets.defs.quality.report import data_docs_metadata
from ads_assets.defs.resources import AlertsResource, MetricsResource, OutputStoreResource, PostgresResource
from ads_assets.lib.alerting import data_quality
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.metrics import quality_metrics
from ads_assets.lib.quality.evaluate import (
    CHECK_DESCRIPTIONS,
    CheckEvaluation,
    evaluate_feature_table,
    evaluate_relation,
    feature_checks,
    relation_checks,
)
from ads_assets.lib.quality.parameters import Span, add_months, months_between
from ads_assets.lib.quality.report import publish_quality_report
from ads_assets.lib.quality.suites import Severity, feature_suite_spec, raw_suite_specs
from ads_assets.settings import Settings


def run_months(context: dg.AssetCheckExecutionContext, span: Span) -> list[date]:
    """The months a check validates: the run's partition range or partition, else the whole span."""
    if context.has_partition_key_range:
        key_range = context.partition_key_range
        return months_between(date.fromisoformat(key_range.start), date.fromisoformat(key_range.end))
    if context.has_partition_key:
        return [date.fromisoformat(context.partition_key)]
    return months_between(span.first, add_months(span.end, -1))


def check_metadata(evaluation: CheckEvaluation, run_id: str) -> dict[str, dg.MetadataValue]:
    return {
        "severity": dg.MetadataValue.text(evaluation.severity.value),
        "observed": dg.MetadataValue.json(evaluation.observed),
        "partitions_recorded": dg.MetadataValue.int(len(evaluation.records)),
        "check_results": dg.MetadataValue.text(
            f"SELECT * FROM quality.check_results WHERE run_id = '{run_id}' AND asset = '{evaluation.asset}' "  # noqa: S608 - display text for the UI, never executed
            f"AND check_name = '{evaluation.check}'"
        ),
    }


def check_result(
    asset_key: dg.AssetKey, evaluation: CheckEvaluation, run_id: str, extra: dict[str, dg.MetadataValue]
) -> dg.AssetCheckResult:
    """The Dagster result of an evaluation: ERROR severity for blocking checks, WARN for the rest."""
    blocking = evaluation.severity is Severity.BLOCKING
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=evaluation.check,
        passed=evaluation.success,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=evaluation.description,
        metadata=check_metadata(evaluation, run_id) | extra,
    )


def _publish_on_blocking_failure(
    context: dg.AssetCheckExecutionContext,
    postgres: PostgresResource,
    output_store: OutputStoreResource,
    evaluations: Iterable[CheckEvaluation],
) -> dict[str, dg.MetadataValue]:
    """Publish the Data Docs now when a blocking check failed, since the report asset downstream will not run."""
    if all(evaluation.success or evaluation.severity is not Severity.BLOCKING for evaluation in evaluations):
        return {}
    try:
        report = publish_quality_report(postgres.target(), context.run.run_id, output_store.store())
    except (OSError, ValueError, BotoCoreError, ClientError) as error:
        context.log.warning(f"Data Docs not published: {error}")
        return {}
    return data_docs_metadata(report)


def _report_outcome(
    context: dg.AssetCheckExecutionContext,
    postgres: PostgresResource,
    alerts: AlertsResource,
    metrics: MetricsResource,
    evaluations: Collection[CheckEvaluation],
    table: str,
) -> None:
    """Each failed check raises a `data_quality` alert (once per check and span of months); the pass rate is
    recorded in `ops.metrics` (stage `quality.<table>`)."""
    months = context.partition_key_range if context.has_partition_key_range else None
    span = f"{months.start[:7]}..{months.end[:7]}" if months else ""
    events = [
        data_quality(
            evaluation.asset,
            evaluation.check,
            span,
            evaluation.observed if isinstance(evaluation.observed, Mapping) else {"value": evaluation.observed},
            evaluation.severity is Severity.BLOCKING,
        )
        for evaluation in evaluations
        if not evaluation.success
    ]
    passed = [evaluation.success for evaluation in evaluations]
    with postgres.connect() as connection:
        alerts.raise_and_deliver(connection, events, context.log)
        metrics.report(
            connection, quality_metrics(context.run.run_id, "", passed, stage=f"quality.{table}"), context.log
        )


def build_relation_checks(relation_name: str) -> dg.AssetChecksDefinition:
    """The multi-asset check of one raw relation: every check of its suite, volume for fin_trans, and freshness."""
    relation = RELATIONS[relation_name]
    spec = raw_suite_specs()[relation_name]
    asset_key = raw_asset_key(relation_name)
    checks = relation_checks(relation_name, spec)
    parents = [raw_asset_key(parent) for _, parent in relation.parents]
    specs = [
        dg.AssetCheckSpec(
            name=check,
            asset=asset_key,
            blocking=severity is Severity.BLOCKING,
            description=f"{CHECK_DESCRIPTIONS.get(check, check)} ({severity.value}; suite {spec.name})",
            additional_deps=parents if check == "referential" else None,
            metadata={"severity": severity.value, "suite": spec.name},
        )
        for check, severity in checks.items()
    ]

    @dg.multi_asset_check(
        specs=specs,
        name=f"{relation.table}_quality",
        description=(
            f"Data quality of `raw.{relation.table}`: the GX suite `expectations/{spec.name}.json` validated "
            "inside Postgres"
            + (", month by month over the run's partitions, with volume anomalies" if relation.partition_column else "")
            + ", and freshness from raw.load_audit. Results go to quality.check_results."
        ),
        can_subset=True,
    )
    def relation_quality(
        context: dg.AssetCheckExecutionContext,
        postgres: PostgresResource,
        output_store: OutputStoreResource,
        alerts: AlertsResource,
        metrics: MetricsResource,
    ) -> Iterator[dg.AssetCheckResult]:
        span = Span.of_months(*Settings.from_env().months)
        selected = {key.name for key in context.selected_asset_check_keys}
        months = run_months(context, span) if relation.partition_column else None
        quality = evaluate_relation(postgres.target(), relation_name, context.run.run_id, span, months, selected)
        docs = _publish_on_blocking_failure(context, postgres, output_store, quality.checks.values())
        _report_outcome(context, postgres, alerts, metrics, list(quality.checks.values()), relation.table)
        for check, evaluation in quality.checks.items():
            if not evaluation.success:
                context.log.warning(f"{evaluation.asset} {check} failed: {evaluation.observed}")
            yield check_result(asset_key, evaluation, context.run.run_id, docs)

    return relation_quality


relation_quality_checks = [build_relation_checks(name) for name in LOAD_ORDER]


FEATURE_TABLE_KEY = dg.AssetKey(["marts", "fct_transaction_features"])


def build_feature_checks(asset_key: dg.AssetKey = FEATURE_TABLE_KEY) -> dg.AssetChecksDefinition:
    """The multi-asset check of the feature table (dbt `marts.fct_transaction_features`), month by month."""
    spec = feature_suite_spec()
    specs = [
        dg.AssetCheckSpec(
            name=check,
            asset=asset_key,
            blocking=severity is Severity.BLOCKING,
            description=f"{CHECK_DESCRIPTIONS.get(check, check)} ({severity.value}; suite {spec.name})",
            metadata={"severity": severity.value, "suite": spec.name},
        )
        for check, severity in feature_checks(spec).items()
    ]

    @dg.multi_asset_check(
        specs=specs,
        name="fct_transaction_features_quality",
        description=(
            f"Data quality of `{spec.qualified_table}`: the GX suite `expectations/{spec.name}.json` validated "
            "inside Postgres month by month over the run's partitions, including the share of rows whose "
            "ledger chains (ledger_gap = 0). Blocking failures stop scoring."
        ),
        can_subset=True,
    )
    def feature_quality(
        context: dg.AssetCheckExecutionContext,
        postgres: PostgresResource,
        output_store: OutputStoreResource,
        alerts: AlertsResource,
        metrics: MetricsResource,
    ) -> Iterator[dg.AssetCheckResult]:
        span = Span.of_months(*Settings.from_env().months)
        selected = {key.name for key in context.selected_asset_check_keys}
        evaluations = evaluate_feature_table(
            postgres.target(), asset_key.to_user_string(), context.run.run_id, span, run_months(context, span), selected
        )
        docs = _publish_on_blocking_failure(context, postgres, output_store, evaluations.values())
        _report_outcome(context, postgres, alerts, metrics, list(evaluations.values()), spec.table)
        for evaluation in evaluations.values():
            yield check_result(asset_key, evaluation, context.run.run_id, docs)

    return feature_quality
