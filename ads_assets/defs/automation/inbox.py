"""The transactions inbox: a sensor that takes each new batch file, and the job that scores it.

A batch goes through the same code as the monthly path: its rows are appended to `raw.fin_trans` (screened
and reconciled like any load, rows already loaded quarantined), dbt rebuilds the feature table for the months
the batch touches (with its tests), and those months are rescored by the model that `detection/anomaly_models`
recorded for them (the latest month's model for a month after the last trained one), its selected champion
and the rules, with reasons, then published to Postgres and Parquet; its high-severity rows raise alerts.
A batch that reaches a month the partitions do not have yet adds it, and each rescored month is recorded as a
materialization of that month of `anomaly/transaction_scores`.
"""

import os
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg

from ads_assets.defs.dbt.assets import PARTITIONED_MODELS, environment_variables, manifest
from ads_assets.defs.dbt.project import dbt_project, ensure_partial_parse, target_folder
from ads_assets.defs.dbt.resource import AdsDbtCliResource
from ads_assets.defs.detection.assets import ALERT_COLUMNS
from ads_assets.defs.detection.io_manager import ModelIOManager, recorded_partition_model
from ads_assets.defs.detection.selection import Champions
from ads_assets.defs.keys import MODELS_KEY, SCORES_KEY
from ads_assets.defs.partitions import add_months, month_key, month_keys, next_month
from ads_assets.defs.resources import AlertsResource, OutputStoreResource, PostgresResource
from ads_assets.lib.alerting import HIGH_SEVERITY_SCORE, high_severity_anomalies
from ads_assets.lib.berka.formats import SourceError, SourceFile, read_rows
from ads_assets.lib.berka.schema import RELATIONS
from ads_assets.lib.detection.ensemble import EnsembleDetector
from ads_assets.lib.detection.scoring import by_date, parquet_rows, postgres_rows
from ads_assets.lib.inbox import batch_files, batch_source, file_digest, inbox_folder, settle
from ads_assets.lib.ingest import LoadReport, load_relation
from ads_assets.lib.publish import SCORES_PUBLICATION, publish_month
from ads_assets.lib.raw_schema import QUARANTINE_TABLE
from ads_assets.lib.registry import ModelRegistry
from ads_assets.lib.tables import FEATURES_TABLE, label_map, read_window, with_analyst_labels

MODELS_NAME = MODELS_KEY.to_python_identifier()
SHOWN_REASONS = 10


class InboxBatchConfig(dg.Config):
    """The batch file to take: a PKDD'99 trans file (*.asc) or a fin_trans file (*.tsv)."""

    path: str


@dg.op(name="score_inbox_batch")
def score_inbox_batch(
    context: dg.OpExecutionContext,
    config: InboxBatchConfig,
    postgres: PostgresResource,
    dbt: AdsDbtCliResource,
    output_store: OutputStoreResource,
    models: dg.ResourceParam[ModelIOManager],
    alerts: AlertsResource,
) -> dg.Output[None]:
    """Load one batch file, rebuild the features of its months, rescore and publish them; settle the file."""
    started = time.perf_counter()
    path = Path(config.path)
    if not path.is_file():
        raise dg.Failure(f"{path} is not in the inbox any more (an earlier run took it)")
    try:
        source = batch_source(path)
        with postgres.connect() as connection:
            report = load_relation(connection, source, append=True)
            added = _added_rows(connection, source, report)
    except SourceError as error:
        settle(path, str(error))
        raise dg.Failure(f"{path.name}: {error} (moved to failed/)") from error
    months = sorted({day.replace(day=1) for day in added.values()})
    new_partitions = add_months(context.instance, [month.isoformat() for month in months])
    if months:
        _rebuild_features(postgres, dbt, months)
    scored = flagged = 0
    store = output_store.store()
    registry = models.registry()
    with postgres.connect() as connection:
        champions = Champions(context.instance, connection)
        labels = label_map(connection)
        for month in months:
            ensemble, version = _model_for(context.instance, registry, month)
            features = with_analyst_labels(
                by_date(read_window(connection, FEATURES_TABLE, "trans_date", month, next_month(month))), labels
            )
            history = (
                with_analyst_labels(
                    by_date(
                        read_window(
                            connection,
                            FEATURES_TABLE,
                            "trans_date",
                            month - timedelta(days=ensemble.lookback_days),
                            month,
                        )
                    ),
                    labels,
                )
                if ensemble.lookback_days
                else None
            )
            scores = champions.score(ensemble, features, month, version, history).scores
            publish_month(
                store, connection, SCORES_PUBLICATION, f"{month:%Y-%m}", postgres_rows(scores), parquet_rows(scores)
            )
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=SCORES_KEY,
                    partition=month_key(month),
                    description=f"rescored with the inbox batch {path.name}",
                    metadata={
                        "dagster/row_count": len(scores),
                        "flagged": int(scores["is_anomaly"].sum()),
                        "model_version": version,
                    },
                )
            )
            batch = scores.loc[scores["trans_id"].isin(list(added))]
            scored += len(batch)
            flagged += int(batch["is_anomaly"].sum())
            urgent = batch.loc[batch["score"] >= HIGH_SEVERITY_SCORE, list(ALERT_COLUMNS)]
            alerts.raise_and_deliver(connection, high_severity_anomalies(urgent.to_dict("records")), context.log)
        reasons = _quarantine_reasons(connection, report)
    moved = settle(path, reasons or None)
    context.log.info(
        f"{path.name}: {report.rows_accepted} rows added, {report.rows_quarantined} quarantined; "
        f"{scored} scored, {flagged} flagged; moved to {moved.parent.name}/"
    )
    return dg.Output(
        None,
        metadata={
            "file": dg.MetadataValue.path(str(moved)),
            "rows_read": report.rows_read,
            "rows_accepted": report.rows_accepted,
            "rows_quarantined": report.rows_quarantined,
            "months": dg.MetadataValue.json([f"{month:%Y-%m}" for month in months]),
            "new_month_partitions": dg.MetadataValue.json([key[:7] for key in new_partitions]),
            "scored": scored,
            "flagged": flagged,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


def _added_rows(connection: psycopg.Connection, source: SourceFile, report: LoadReport) -> dict[int, date]:
    """The trans_id and date of each row the batch added: its file's lines that were not quarantined."""
    quarantined = {
        int(line)
        for (line,) in connection.execute(
            f"SELECT line_number FROM {QUARANTINE_TABLE} WHERE source_sha256 = %s",  # noqa: S608 - module constant, values as parameters
            (report.sha256,),
        )
    }
    columns = RELATIONS["trans"].column_names
    key, day = columns.index("trans_id"), columns.index("date")
    return {
        int(row.values[key]): row.values[day]
        for row in read_rows(source)
        if row.values is not None and row.line_number not in quarantined
    }


def _rebuild_features(postgres: PostgresResource, dbt: AdsDbtCliResource, months: list[date]) -> None:
    """`dbt build` of the feature table over the months, with its tests, as a partition run does it."""
    os.environ.update(postgres.dbt_env())
    ensure_partial_parse(os.environ, dbt_project)
    window = {
        "ADS_FEATURES_MIN_DATE": months[0].isoformat(),
        "ADS_FEATURES_MAX_DATE": next_month(months[-1]).isoformat(),
        "DBT_TARGET_PATH": str(target_folder(dbt_project)),
        "DBT_USE_COLORS": "false",
    }
    with environment_variables(window):
        dbt.cli(["build", "--select", PARTITIONED_MODELS], manifest=manifest).wait()


def _model_for(instance: dg.DagsterInstance, registry: ModelRegistry, month: date) -> tuple[EnsembleDetector, str]:
    """The model recorded for `month`, else for the latest month before it that has one."""
    known = month_keys(instance)
    earlier = [key for key in known if key <= month.isoformat()]
    for key in reversed(earlier or known):
        recorded = recorded_partition_model(instance, MODELS_KEY, key)
        if recorded.get("model_version"):
            name = recorded.get("model_name", f"{MODELS_NAME}__{key}")
            model, _ = registry.load(name, recorded["model_version"], expected_sha256=recorded.get("model_sha256"))
            return model, recorded["model_version"]
    raise dg.Failure("no trained model yet: run ads run (or materialize detection/anomaly_models) first")


def _quarantine_reasons(connection, report: LoadReport) -> str:
    if not report.rows_quarantined:
        return ""
    rows = connection.execute(
        f"SELECT line_number, reason FROM {QUARANTINE_TABLE} WHERE source_sha256 = %s ORDER BY line_number LIMIT %s",  # noqa: S608 - module constant, values as parameters
        (report.sha256, SHOWN_REASONS),
    ).fetchall()
    lines = [f"line {line}: {reason}" for line, reason in rows]
    more = report.rows_quarantined - len(rows)
    header = (
        f"{report.rows_quarantined} of {report.rows_read} lines quarantined (raw.quarantine, source_sha256 "
        f"{report.sha256}); the other {report.rows_accepted} rows were loaded and scored"
    )
    return "\n".join([header, *lines, *([f"… and {more} more"] if more > 0 else [])])


@dg.job(
    name="inbox_batch",
    description="Score one batch file of the transactions inbox: load, rebuild its months' features, rescore, publish.",
)
def inbox_batch_job() -> None:
    score_inbox_batch()


@dg.sensor(
    name="transactions_inbox",
    job=inbox_batch_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every 15 s, each new batch file in ADS_INBOX (default ./ads_inbox: PKDD'99 trans *.asc with its header, "
        "or fin_trans *.tsv) starts one inbox_batch run, once per content (run key: the file's sha256)."
    ),
)
def transactions_inbox(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """One run request per batch file waiting in the inbox."""
    folder = inbox_folder()
    files = batch_files(folder)
    if not files:
        return dg.SkipReason(f"no batch files in {folder}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=file_digest(path),
                run_config={"ops": {"score_inbox_batch": {"config": {"path": str(path)}}}},
                tags={"ads/batch": path.name},
            )
            for path in files
        ]
    )
