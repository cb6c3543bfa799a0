"""Schedules: the nightly data-quality report and the monthly retrain with model selection, both off by default.

Turn them on in the UI (Automation, or the job's page: the schedule's toggle) or with
`dagster schedule start -m ads_assets.definitions <name>`.
"""

import dagster as dg

from ads_assets.defs.automation.jobs import nightly_quality_job, retrain_job
from ads_assets.defs.partitions import month_keys

nightly_quality_schedule = dg.ScheduleDefinition(
    name="nightly_quality_report",
    job=nightly_quality_job,
    cron_schedule="0 2 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every night at 02:00: the data-quality report of the latest validations.",
)


@dg.schedule(
    name="monthly_retrain",
    job=retrain_job,
    cron_schedule="0 3 1 * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "On the 1st of every month at 03:00: retrain the model of the latest month partition and select its champion. "
        "One run per latest month: a month already retrained by this schedule is not run again."
    ),
)
def monthly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """The retrain run of the latest month partition, keyed by it so each month is retrained once."""
    known = month_keys(context.instance)
    if not known:
        return dg.SkipReason("no month partitions yet: load transactions first")
    latest = known[-1]
    return dg.RunRequest(run_key=f"retrain-{latest}", partition_key=latest, tags={"ads/trigger": "monthly_retrain"})
