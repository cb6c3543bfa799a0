"""The data-quality report asset: GX Data Docs of the run's validations, published to `{output}/quality/`."""

import dagster as dg

from ads_assets.defs.ingest.assets import raw_asset_key
from ads_assets.defs.resources import OutputStoreResource, PostgresResource
from ads_assets.lib.berka.schema import LOAD_ORDER
from ads_assets.lib.quality.report import QualityReport, publish_quality_report

QUALITY_REPORT_KEY = dg.AssetKey(["quality", "report"])
FEATURE_TABLE_KEY = dg.AssetKey(["marts", "fct_transaction_features"])
"""The feature table: the report follows it, and so its blocking checks, to include the feature validations."""


@dg.asset(
    key=QUALITY_REPORT_KEY,
    deps=[*(raw_asset_key(name) for name in LOAD_ORDER), FEATURE_TABLE_KEY],
    group_name="quality",
    kinds={"great_expectations", "html", "postgres", "s3"},
    description=(
        "Data-quality report of the run: GX Data Docs (static HTML that works offline, its styles and scripts "
        "bundled) of every suite and of the validation results of this run and the runs before it (the raw "
        "relations and the feature table, each run under its name), rebuilt into `{output}/quality/` (a local "
        "folder, or uploaded to `s3://bucket/prefix/quality/` with each page's Content-Type) and linked from "
        "this asset's metadata, with a summary of `quality.check_results` (run, asset, partition, check, "
        "success, observed value, time) for dashboards. Runs after the blocking checks of the raw relations and "
        "of the feature table; when one fails, the failing check publishes the report itself."
    ),
)
def quality_report(
    context: dg.AssetExecutionContext, postgres: PostgresResource, output_store: OutputStoreResource
) -> dg.MaterializeResult:
    report = publish_quality_report(postgres.target(), context.run.run_id, output_store.store())
    context.log.info(f"Data Docs at {report.url}: {report.summary()}")
    return dg.MaterializeResult(
        metadata={
            **data_docs_metadata(report),
            "data_docs_files": dg.MetadataValue.int(report.files),
            "validations": dg.MetadataValue.int(report.validations),
            "check_results": dg.MetadataValue.json(report.summary()),
            "failed_checks": dg.MetadataValue.int(len(report.failed)),
            "results": dg.MetadataValue.md(report.markdown()),
        }
    )


def data_docs_metadata(report: QualityReport) -> dict[str, dg.MetadataValue]:
    """Links to the published Data Docs: the index's file:// or s3:// URL, and its path when on local disk."""
    metadata = {"data_docs": dg.MetadataValue.url(report.url)}
    if report.index is not None:
        metadata["data_docs_path"] = dg.MetadataValue.path(str(report.index))
    return metadata
