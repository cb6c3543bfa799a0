"""Jobs: the main job that materializes the whole code location."""

import dagster as dg

ads_full_job = dg.define_asset_job(
    name="ads_full",
    selection=dg.AssetSelection.all(),
    description="Every ADS asset: ingest, features, checks, detection and published anomaly tables.",
)
