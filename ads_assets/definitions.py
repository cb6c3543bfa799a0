"""The ADS code location: every asset, check, job, schedule, sensor and resource, assembled in one `Definitions`."""

import dagster as dg

from ads_assets.defs.automation.inbox import inbox_batch_job, transactions_inbox
from ads_assets.defs.automation.jobs import nightly_quality_job, retrain_job, score_months_job
from ads_assets.defs.automation.months import new_months
from ads_assets.defs.automation.s3_inbox import transactions_s3_inbox
from ads_assets.defs.automation.schedules import monthly_retrain_schedule, nightly_quality_schedule
from ads_assets.defs.automation.sensors import drift_retrain, run_failure_alert
from ads_assets.defs.automation.stream import transactions_stream
from ads_assets.defs.dbt.assets import dbt_models, dbt_partitioned_models
from ads_assets.defs.dbt.resource import dbt_resource
from ads_assets.defs.detection.assets import anomaly_models, missing_payments, transaction_scores
from ads_assets.defs.detection.checks import detection_checks
from ads_assets.defs.detection.io_manager import model_io_manager
from ads_assets.defs.detection.selection import model_selection
from ads_assets.defs.executor import locked_executor
from ads_assets.defs.ingest.assets import raw_assets
from ads_assets.defs.jobs import ads_full_job
from ads_assets.defs.labels.assets import analyst_labels
from ads_assets.defs.quality import feature_quality_checks, quality_assets, quality_checks
from ads_assets.defs.report.assets import anomaly_report
from ads_assets.defs.resources import (
    alerts_resource,
    metrics_resource,
    output_store_resource,
    postgres_resource,
    source_resource,
)
from ads_assets.defs.security.assets import analyst_views
from ads_assets.defs.security.resource import analyst_access_resource
from ads_assets.settings import Settings

settings = Settings.from_env()

defs = dg.Definitions(
    assets=[
        *raw_assets,
        dbt_models,
        dbt_partitioned_models,
        *quality_assets,
        analyst_labels,
        anomaly_models,
        model_selection,
        transaction_scores,
        missing_payments,
        anomaly_report,
        analyst_views,
    ],
    asset_checks=[*quality_checks, *feature_quality_checks, *detection_checks],
    jobs=[ads_full_job, nightly_quality_job, retrain_job, score_months_job, inbox_batch_job],
    schedules=[nightly_quality_schedule, monthly_retrain_schedule],
    sensors=[
        run_failure_alert,
        drift_retrain,
        transactions_inbox,
        transactions_s3_inbox,
        transactions_stream,
        new_months,
    ],
    executor=locked_executor,
    resources={
        "postgres": postgres_resource(settings),
        "berka_source": source_resource(settings),
        "dbt": dbt_resource(),
        "models": model_io_manager(settings),
        "output_store": output_store_resource(settings),
        "alerts": alerts_resource(settings),
        "metrics": metrics_resource(settings),
        "analyst_access": analyst_access_resource(),
    },
)
