"""The ADS code location: every asset, check, job and resource, assembled in one `Definitions`."""

import dagster as dg

from ads_assets.defs.ingest.assets import raw_assets
from ads_assets.defs.jobs import ads_full_job
from ads_assets.defs.resources import postgres_resource, source_resource
from ads_assets.settings import Settings

settings = Settings.from_env()

defs = dg.Definitions(
    assets=[*raw_assets],
    jobs=[ads_full_job],
    resources={
        "postgres": postgres_resource(settings),
        "berka_source": source_resource(settings),
    },
)
