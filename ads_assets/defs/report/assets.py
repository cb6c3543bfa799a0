"""The anomaly report asset: the run's charts, top alerts, leaderboard and checks in `{output}/report/index.html`."""

import dagster as dg

from ads_assets.defs.keys import ANOMALY_REPORT_KEY, QUALITY_REPORT_KEY, SCORES_KEY, SELECTION_KEY
from ads_assets.defs.resources import OutputStoreResource, PostgresResource
from ads_assets.lib.report.publish import PublishedReport, publish_report


@dg.asset(
    key=ANOMALY_REPORT_KEY,
    deps=[SCORES_KEY, SELECTION_KEY, QUALITY_REPORT_KEY],
    group_name="detection",
    kinds={"html", "plotly", "postgres", "s3"},
    description=(
        "The anomaly report of the run: one self-contained HTML page (plotly.js inlined, no request to any "
        "network) at `{output}/report/index.html` with the transactions scored and flagged per day, each "
        "transaction's amount against its score coloured by the detector that contributed most, the flagged "
        "rate by district on a map of the Czech district towns, the top alerts with their reasons, the latest "
        "model leaderboard and the data-quality checks per asset. Rebuilt after scoring, from "
        "`anomaly.transaction_scores`, `marts.fct_transaction_features`, the district and account relations, "
        "`anomaly.model_leaderboard` and `quality.check_results`; its metadata links the page."
    ),
)
def anomaly_report(
    context: dg.AssetExecutionContext, postgres: PostgresResource, output_store: OutputStoreResource
) -> dg.MaterializeResult:
    report = publish_report(postgres.target(), context.run.run_id, output_store.store())
    context.log.info(
        f"anomaly report at {report.url}: {report.transactions:,} transactions, {report.flagged:,} flagged"
    )
    return dg.MaterializeResult(
        metadata={
            "report": report_link(report),
            "transactions": dg.MetadataValue.int(report.transactions),
            "flagged": dg.MetadataValue.int(report.flagged),
            "page_bytes": dg.MetadataValue.int(report.size),
        }
    )


def report_link(report: PublishedReport) -> dg.MetadataValue:
    """The page as a path for a local output, else as its s3:// (or http) URL."""
    return dg.MetadataValue.path(str(report.index)) if report.index is not None else dg.MetadataValue.url(report.url)
