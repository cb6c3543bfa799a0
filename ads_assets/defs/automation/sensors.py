"""Sensors: a failed run raises an alert (`anomaly.alerts`, the log, and the webhook when configured); a month
that drifted, flagged outside its band or lost canary recall requests the retrain of the month after it."""

from datetime import UTC, datetime

import dagster as dg

from ads_assets.defs.automation.jobs import retrain_job
from ads_assets.defs.partitions import month_keys, month_start, next_month
from ads_assets.defs.resources import AlertsResource, PostgresResource
from ads_assets.lib.alerting import run_failure
from ads_assets.lib.retrain_triggers import retrain_triggers


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
        "A month whose key features drifted beyond PSI 0.25 (anomaly.drift, band 'major'), whose flagged rate left "
        "the band of the 12 months before it (a third to three times their median), or whose champion caught fewer "
        "canaries than its floor (a model_performance alert) requests the retrain of the month after it, with model "
        "selection; each month once."
    ),
)
def drift_retrain(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """Retrain requests for the months after those with a reason to retrain recorded since the last evaluation."""
    since = datetime.fromisoformat(context.cursor) if context.cursor else datetime.min.replace(tzinfo=UTC)
    with postgres.connect() as connection:
        triggers = retrain_triggers(connection, since)
    known = set(month_keys(context.instance))
    reasons: dict[str, list[str]] = {}
    for trigger in triggers:
        reasons.setdefault(trigger.month, []).append(trigger.reason)
    requests = [
        dg.RunRequest(
            run_key=f"retrain-after-{month}",
            partition_key=following,
            tags={"ads/trigger": ", ".join(dict.fromkeys(why))},
        )
        for month, why in sorted(reasons.items())
        if (following := next_month(month_start(month)).isoformat()) in known
    ]
    newest = max((trigger.recorded_at for trigger in triggers), default=None)
    return dg.SensorResult(run_requests=requests, cursor=newest.isoformat() if newest else context.cursor)
