"""Sensors: a failed run raises an alert (`anomaly.alerts`, the log, and the webhook when configured); a month
that drifted beyond the major band requests the retrain of the month after it."""

from datetime import UTC, datetime

import dagster as dg

from ads_assets.defs.automation.jobs import retrain_job
from ads_assets.defs.partitions import month_keys, month_start, next_month
from ads_assets.defs.resources import AlertsResource, PostgresResource
from ads_assets.lib.alerting import run_failure
from ads_assets.lib.detection.drift import major_drift_since


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every failed run of this code location raises one `run_failure` alert, delivered once.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, postgres: PostgresResource, alerts: AlertsResource) -> None:
    """Store and deliver the alert of the failed run: its job, the steps that failed and the error."""
    steps = sorted({event.step_key for event in context.get_step_failure_events() if event.step_key is not None})
    error = context.failure_event.message or "the run failed"
    event = run_failure(context.dagster_run.run_id, context.dagster_run.job_name, error, steps)
    with postgres.connect() as connection:
        alerts.raise_and_deliver(connection, [event], context.log)


@dg.sensor(
    name="drift_retrain",
    job=retrain_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "A month whose key features drifted beyond PSI 0.25 (anomaly.drift, band 'major') requests the retrain of "
        "the month after it, with model selection; each month once."
    ),
)
def drift_retrain(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """Retrain requests for the months after those that drifted beyond the major band since the last evaluation."""
    since = datetime.fromisoformat(context.cursor) if context.cursor else datetime.min.replace(tzinfo=UTC)
    with postgres.connect() as connection:
        drifted = major_drift_since(connection, since)
    known = set(month_keys(context.instance))
    requests = []
    for month in sorted({month for month, _ in drifted}):
        following = next_month(month_start(month)).isoformat()
        if following in known:
            requests.append(dg.RunRequest(run_key=f"drift-{month}", partition_key=following))
    newest = max((recorded for _, recorded in drifted), default=None)
    return dg.SensorResult(run_requests=requests, cursor=newest.isoformat() if newest else context.cursor)
