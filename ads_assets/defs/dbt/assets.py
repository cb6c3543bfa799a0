"""dbt models as Dagster assets: one lineage from raw files to per-transaction features."""

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from ads_assets.defs.dbt.project import (
    dbt_project,
    ensure_manifest,
    ensure_partial_parse,
    prune_invocation_folders,
    target_folder,
)
from ads_assets.defs.partitions import monthly_partitions, partition_window
from ads_assets.defs.resources import MetricsResource, PostgresResource
from ads_assets.lib.metrics import seconds_metric

PARTITIONED_MODELS = "fct_transaction_features"
LAYER_OF_FOLDER = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}


class AdsDbtTranslator(DagsterDbtTranslator):
    """Models keyed by layer (`marts/fct_transaction_features`); sources keyed as the ingestion assets (`raw/fin_trans`)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([self._layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "features" if self._layer(dbt_resource_props) == "marts" else "dbt_" + self._layer(dbt_resource_props)

    @staticmethod
    def _layer(dbt_resource_props: Mapping[str, Any]) -> str:
        folders = dbt_resource_props.get("fqn", [])[1:-1]
        return next((LAYER_OF_FOLDER[folder] for folder in folders if folder in LAYER_OF_FOLDER), "models")


translator = AdsDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
manifest = ensure_manifest(dbt_project)


@contextmanager
def environment_variables(values: Mapping[str, str]) -> Iterator[None]:
    """`values` set in os.environ (which the dbt subprocess inherits) for the block, then restored."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    postgres: PostgresResource,
    window: Mapping[str, str] | None = None,
) -> Iterator:
    """`dbt build` of the asset's selection, starting from a saved parse made for this connection.

    `window` ({"min_date", "max_date"}) reaches the feature mart as ADS_FEATURES_MIN_DATE /
    ADS_FEATURES_MAX_DATE rather than --vars: dbt re-parses the whole project for any new --vars
    value, but reads these only at run time, so a partition run parses nothing.

    dbt's files go to the project's target folder in ADS_HOME (DBT_TARGET_PATH, which dagster-dbt reads for
    the saved parse and for each invocation's own folder); older invocation folders are pruned first. dbt's
    log lines carry no colour codes: they go to a log file unless `ads run --verbose` shows them.
    """
    os.environ.update(postgres.dbt_env())
    ensure_partial_parse(os.environ, dbt_project)
    prune_invocation_folders(dbt_project)
    window_env = {f"ADS_FEATURES_{name.upper()}": value for name, value in (window or {}).items()}
    dbt_env = {"DBT_TARGET_PATH": str(target_folder(dbt_project)), "DBT_USE_COLORS": "false"}
    with environment_variables({"ADS_FEATURES_MIN_DATE": "", "ADS_FEATURES_MAX_DATE": "", **window_env, **dbt_env}):
        invocation = dbt.cli(["build"], context=context)
    yield from invocation.stream()


@dbt_assets(
    manifest=manifest,
    exclude=PARTITIONED_MODELS,
    dagster_dbt_translator=translator,
    name="dbt_models",
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource) -> Iterator:
    """Staging views (renamed, decoded relations), intermediate models and the unpartitioned marts."""
    yield from _run_dbt(context, dbt, postgres)


@dbt_assets(
    manifest=manifest,
    select=PARTITIONED_MODELS,
    dagster_dbt_translator=translator,
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    name="dbt_partitioned_models",
)
def dbt_partitioned_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource, metrics: MetricsResource
) -> Iterator:
    """The monthly feature table, rebuilt for the run's window of months in one dbt invocation; the build's wall
    time goes to `ops.metrics` (stage `features`, `build_seconds`)."""
    first_day, end_day = partition_window(context)
    started = time.perf_counter()
    yield from _run_dbt(context, dbt, postgres, {"min_date": first_day.isoformat(), "max_date": end_day.isoformat()})
    build = seconds_metric(context.run.run_id, "", "features", "build_seconds", time.perf_counter() - started)
    with postgres.connect() as connection:
        metrics.report(connection, [build], context.log)
