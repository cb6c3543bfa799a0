"""The jobs the schedules start: the nightly data-quality report and the retrain of the latest month's model."""

import dagster as dg

QUALITY_REPORT_KEY = dg.AssetKey(["quality", "report"])
MODELS_KEY = dg.AssetKey(["detection", "anomaly_models"])
MODEL_SELECTION_KEY = dg.AssetKey(["detection", "model_selection"])

nightly_quality_job = dg.define_asset_job(
    name="nightly_quality_report",
    selection=dg.AssetSelection.assets(QUALITY_REPORT_KEY),
    description="Rebuild the data-quality report (GX Data Docs and the check summary) from the latest validations.",
)

retrain_job = dg.define_asset_job(
    name="monthly_retrain",
    selection=dg.AssetSelection.assets(MODELS_KEY, MODEL_SELECTION_KEY),
    description="Retrain the anomaly model of a month and select its champion on fresh canaries.",
)
