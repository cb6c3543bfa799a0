"""The ADS code location: every asset, check, job and resource, assembled in one `Definitions`."""

import dagster as dg

from ads_assets.defs.dbt.assets import dbt_models, dbt_partitioned_models
from ads_assets.defs.dbt.resource import dbt_resource
from ads_assets.defs.detection.assets import anomaly_models, missing_payments, transaction_scores
from ads_assets.defs.detection.checks import detection_checks
from ads_assets.defs.detection.io_manager import model_io_manager
from ads_assets.defs.executor import locked_executor
from ads_assets.defs.ingest.assets import raw_assets
from ads_assets.defs.jobs import ads_full_job
from ads_assets.defs.quality import feature_quality_checks, quality_assets, quality_checks
from ads_assets.defs.resources import output_store_resource, postgres_resource, source_resource
from ads_assets.settings import Settings

settings = Settings.from_env()

defs = dg.Definitions(
    assets=[
        *raw_assets,
        dbt_models,
        dbt_partitioned_models,
        *quality_assets,
        anomaly_models,
        transaction_scores,
        missing_payments,
    ],
    asset_checks=[*quality_checks, *feature_quality_checks, *detection_checks],
    jobs=[ads_full_job],
    executor=locked_executor,
    resources={
        "postgres": postgres_resource(settings),
        "berka_source": source_resource(settings),
        "dbt": dbt_resource(),
        "models": model_io_manager(settings),
        "output_store": output_store_resource(settings),
    },
)
