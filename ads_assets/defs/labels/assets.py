"""The labels asset: the CSV files of the labels inbox, applied to `anomaly.labels`."""

import dagster as dg

from ads_assets.defs.keys import FEATURES_KEY, LABELS_KEY
from ads_assets.defs.resources import PostgresResource
from ads_assets.lib.db import connect
from ads_assets.lib.labels import labeller, labels_inbox, take_inbox


@dg.asset(key=LABELS_KEY, deps=[FEATURES_KEY], group_name="labels", kinds={"postgres", "python"})
def analyst_labels(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """Analysts' verdicts on transactions, `confirmed` or `false_positive`, in Postgres `anomaly.labels`
    (trans_id, label, note, by, at), one per transaction, a newer one replacing the older.

    Takes every `*.csv` file (columns `trans_id,label[,note]`) of the labels inbox, `ADS_LABELS` (default
    `$ADS_HOME/labels/`), each applied all or nothing and each content once (its sha256 is recorded in
    `anomaly.label_files`), then moved to `processed/`; a file with a malformed line, an unknown transaction or
    a bad label is applied not at all and moved to `failed/` beside a `<name>.reason.txt`. It runs after the
    feature mart, against which the ids are checked. Labels given with `ads label` land in the same table;
    `detection/anomaly_models` runs after this asset and trains without the transactions labelled `confirmed`.
    """
    folder = labels_inbox()
    with connect(postgres.target(), autocommit=True) as connection:
        report = take_inbox(connection, folder, labeller())
    for name, reason in report.failed.items():
        context.log.warning(f"labels file {name} refused, moved to failed/: {' '.join(reason.split())}")
    if report.already_taken:
        context.log.info(f"already applied, moved to processed/: {', '.join(report.already_taken)}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.total,
            "inbox": dg.MetadataValue.path(str(folder)),
            "files_applied": len(report.applied),
            "labels_added": report.labels.added,
            "labels_replaced": report.labels.replaced,
            "files_failed": len(report.failed),
            "files_already_taken": len(report.already_taken),
        }
    )
