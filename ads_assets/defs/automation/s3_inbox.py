"""The S3 inbox sensor: each new batch object under `ADS_INBOX_S3` is staged locally and scored by `inbox_batch`."""

import json

import dagster as dg

from ads_assets.defs.automation.inbox import inbox_batch_job
from ads_assets.lib.inbox_s3 import INBOX_S3_VARIABLE, inbox_prefix, staging_folder, take_new
from ads_assets.lib.storage import s3_client


@dg.sensor(
    name="transactions_s3_inbox",
    job=inbox_batch_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "When ADS_INBOX_S3 is set (s3://bucket/prefix), every 15 s each new batch object directly under the prefix "
        "(PKDD'99 trans *.asc or fin_trans *.tsv) is downloaded into ADS_INBOX/s3/ and starts one inbox_batch run; "
        "once scored, the object moves to <prefix>/processed/, or to <prefix>/failed/ with <name>.reason.txt."
    ),
)
def transactions_s3_inbox(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """One run request per new batch object; the cursor holds the version of each object taken and still listed."""
    location = inbox_prefix()
    if location is None:
        return dg.SkipReason(f"{INBOX_S3_VARIABLE} is not set: no S3 inbox to watch")
    bucket, prefix = location
    taken = json.loads(context.cursor) if context.cursor else {}
    staged, still_taken = take_new(s3_client(), bucket, prefix, taken, staging_folder())
    cursor = json.dumps(still_taken, sort_keys=True)
    if not staged:
        return dg.SensorResult(skip_reason=f"no new batch objects in s3://{bucket}/{prefix}", cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=item.batch.run_key,
                run_config={"ops": {"score_inbox_batch": {"config": {"path": str(item.path)}}}},
                tags={"ads/batch": item.batch.name},
            )
            for item in staged
        ],
        cursor=cursor,
    )
