"""Ingestion assets: one per Berka relation, each a table in the `raw` schema."""

import dagster as dg
import psycopg

from ads_assets.defs.partitions import monthly_partitions, partition_window
from ads_assets.defs.resources import BerkaSourceResource, MetricsResource, PostgresResource
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS, Relation
from ads_assets.lib.ingest import LoadReport, MonthWindow, load_relation
from ads_assets.lib.metrics import ingest_metrics
from ads_assets.lib.raw_schema import RAW_SCHEMA

RELATION_DESCRIPTIONS = {
    "district": "Demographics of the 77 Czech districts (A1..A16 of the PKDD'99 data).",
    "account": "Bank accounts: home district, statement frequency and opening date.",
    "client": "Clients: birth number (birth date and sex) and home district.",
    "disp": "Dispositions: which client may operate which account, as OWNER or DISPONENT.",
    "order": "Standing (permanent) payment orders: payee bank and account, amount and purpose.",
    "loan": "Loans granted on accounts: amount, duration, monthly payment and repayment status.",
    "card": "Credit cards issued to dispositions: type and issue date.",
    "trans": "Every settled transaction on every account, with the balance after it; partitioned by month.",
}


def raw_asset_key(relation_name: str) -> dg.AssetKey:
    return dg.AssetKey([RAW_SCHEMA, RELATIONS[relation_name].table])


def _load_metadata(report: LoadReport) -> dict[str, dg.MetadataValue | int | str]:
    return {
        "dagster/row_count": report.rows_accepted,
        "rows_read": report.rows_read,
        "rows_accepted": report.rows_accepted,
        "rows_quarantined": report.rows_quarantined,
        "rows_outside_window": report.rows_outside_window,
        "source": dg.MetadataValue.path(report.source_file),
        "sha256": report.sha256,
        "window": report.window,
        "plausible_window": report.plausible_window,
    }


def _partition_window(context: dg.AssetExecutionContext) -> MonthWindow:
    return MonthWindow(*partition_window(context))


def monthly_rows(connection: psycopg.Connection, relation: Relation, window: MonthWindow) -> dict[str, int]:
    """Rows of the relation's table per month of `window`, by partition key (YYYY-MM-01)."""
    column = relation.partition_column
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT to_char({column}, 'YYYY-MM-01'), count(*) FROM {RAW_SCHEMA}.{relation.table} "  # noqa: S608 - identifiers from the RELATIONS constants, values go as parameters
            f"WHERE {column} >= %s AND {column} < %s GROUP BY 1",
            (window.start, window.end),
        )
        return {str(month): int(rows) for month, rows in cursor.fetchall()}


def build_raw_asset(relation: Relation) -> dg.AssetsDefinition:
    """The ingestion asset of one relation: parsed, screened and COPYed into raw.<fin_table>."""
    partitioned = relation.partition_column is not None

    @dg.asset(
        key=raw_asset_key(relation.name),
        description=(
            f"{RELATION_DESCRIPTIONS[relation.name]}\n\nLoaded from the Berka source into "
            f"`{RAW_SCHEMA}.{relation.table}` in the canonical PKDD'99 units, dates and codes. Rows that "
            "fail parsing, duplicate a key or point at no parent go to `raw.quarantine` with their reason; "
            "each load writes `raw.load_audit` and fails unless rows read = accepted + quarantined. Its rows read, "
            "accepted and rejected and its rows per second go to `ops.metrics` and to this metadata."
        ),
        group_name="ingest",
        kinds={"postgres", "python"},
        deps=[raw_asset_key(parent) for _, parent in relation.parents],
        partitions_def=monthly_partitions if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
    )
    def raw_relation(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        berka_source: BerkaSourceResource,
        metrics: MetricsResource,
    ) -> dg.MaterializeResult:
        source = berka_source.sources()[relation.name]
        window = _partition_window(context) if partitioned else None
        with postgres.connect() as connection:
            report = load_relation(connection, source, window)
            connection.execute(f"ANALYZE {RAW_SCHEMA}.{relation.table}")
            connection.commit()
            monthly = monthly_rows(connection, relation, window) if window else {}
            operational = metrics.report(connection, ingest_metrics(context.run.run_id, "", report), context.log)
        for partition_key in context.partition_keys if window else ():
            context.add_asset_metadata(
                {"dagster/row_count": monthly.get(partition_key, 0)}, partition_key=partition_key
            )
        context.log.info(
            f"{relation.name}: read {report.rows_read}, accepted {report.rows_accepted}, "
            f"quarantined {report.rows_quarantined} from {report.source_file}"
        )
        return dg.MaterializeResult(metadata=_load_metadata(report) | operational)

    return raw_relation


raw_assets = [build_raw_asset(RELATIONS[name]) for name in LOAD_ORDER]
