"""The jobs the schedules and sensors start: the nightly data-quality report and the retrain of a month's model."""

import dagster as dg

from ads_assets.defs.keys import LABELS_KEY, MODELS_KEY, QUALITY_REPORT_KEY, SELECTION_KEY

nightly_quality_job = dg.define_asset_job(
    name="nightly_quality_report",
    selection=dg.AssetSelection.assets(QUALITY_REPORT_KEY),
    description="Rebuild the data-quality report (GX Data Docs and the check summary) from the latest validations.",
)

retrain_job = dg.define_asset_job(
    name="monthly_retrain",
    selection=dg.AssetSelection.assets(LABELS_KEY, MODELS_KEY, SELECTION_KEY),
    description=(
        "Apply the labels inbox, retrain the anomaly model of a month with the analyst labels, and select its "
        "champion on fresh canaries."
    ),
)
