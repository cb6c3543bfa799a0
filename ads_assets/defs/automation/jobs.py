"""The jobs the schedules and sensors start: the nightly data-quality report and the retrain of a month's model."""

import dagster as dg

from ads_assets.defs.keys import (
    FEATURES_KEY,
    LABELS_KEY,
    MISSING_PAYMENTS_KEY,
    MODELS_KEY,
    QUALITY_REPORT_KEY,
    SELECTION_KEY,
)

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

score_months_job = dg.define_asset_job(
    name="score_months",
    selection=dg.AssetSelection.assets(FEATURES_KEY, MISSING_PAYMENTS_KEY).downstream(),
    description=(
        "Rebuild the features of some months from the rows already in raw.fin_trans, then their models, champions, "
        "scores and missing payments: what the new_months sensor runs when rows of a new month reach the raw table "
        "without coming from the source."
    ),
)
