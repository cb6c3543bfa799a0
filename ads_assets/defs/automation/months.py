"""The `new_months` sensor: month partitions that follow the data, and the runs that score a new month.

A month of transactions that the month partitions do not have yet, whether it came with a new source file, new
rows of a source database or rows put into `raw.fin_trans`, becomes a partition (with any month between it and
the last one), and one run is requested for the new months: the whole job when the source holds them (ingest,
features, checks, models, scores), `score_months` when only the raw table does (it would be replaced by the
source's rows otherwise). Inbox batches add their months themselves. Months are never removed.
"""

from __future__ import annotations

import json

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ads_assets.defs.automation.jobs import score_months_job
from ads_assets.defs.jobs import ads_full_job
from ads_assets.defs.partitions import missing_months, monthly_partitions
from ads_assets.defs.resources import BerkaSourceResource, PostgresResource
from ads_assets.lib.berka.formats import SourceError
from ads_assets.lib.months import raw_last_month, source_last_month, source_signature


def months_request(job: dg.UnresolvedAssetJobDefinition, keys: list[str], origin: str) -> dg.RunRequest:
    """One run of `job` over the months `keys` (a single-run backfill of the range)."""
    return dg.RunRequest(
        job_name=job.name,
        run_key=f"{origin}-{keys[0]}-{keys[-1]}",
        tags={
            ASSET_PARTITION_RANGE_START_TAG: keys[0],
            ASSET_PARTITION_RANGE_END_TAG: keys[-1],
            "ads/trigger": f"new months in the {origin}",
        },
    )


@dg.sensor(
    name="new_months",
    jobs=[ads_full_job, score_months_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every minute: a month of transactions in the source (ADS_SOURCE) or in raw.fin_trans that is not a month "
        "partition yet becomes one, and one run scores the new months (ads_full from the source, score_months from "
        "the raw table)."
    ),
)
def new_months(
    context: dg.SensorEvaluationContext, berka_source: BerkaSourceResource, postgres: PostgresResource
) -> dg.SensorResult | dg.SkipReason:
    """The month partitions the data grew by, and the run that scores them."""
    seen = json.loads(context.cursor) if context.cursor else {}
    try:
        sources = berka_source.sources()
        signature = source_signature(sources)
        source_last = seen.get("source_last") if signature and signature == seen.get("signature") else None
        source_last = source_last or source_last_month(sources)
    except SourceError as error:
        return dg.SkipReason(f"cannot read the source: {error}")
    with postgres.connect() as connection:
        raw_last = raw_last_month(connection)
    cursor = json.dumps({"signature": signature, "source_last": source_last})
    from_source = missing_months(context.instance, [source_last])
    from_raw = [
        key
        for key in missing_months(context.instance, [month for month in (source_last, raw_last) if month])
        if key not in from_source
    ]
    if not from_source and not from_raw:
        return dg.SensorResult(
            skip_reason=f"no new month: the data ends in {max(source_last, raw_last or '')}", cursor=cursor
        )
    requests = []
    if from_source:
        requests.append(months_request(ads_full_job, from_source, "source"))
    if from_raw:
        requests.append(months_request(score_months_job, from_raw, "raw table"))
    context.log.info(f"new months: {', '.join(key[:7] for key in from_source + from_raw)}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[monthly_partitions.build_add_request(from_source + from_raw)],
        cursor=cursor,
    )
