"""Sensors: a failed run raises an alert (`anomaly.alerts`, the log, and the webhook when configured)."""

import dagster as dg

from ads_assets.defs.resources import AlertsResource, PostgresResource
from ads_assets.lib.alerting import run_failure


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
