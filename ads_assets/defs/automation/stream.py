"""The stream sensor: new Kinesis records of `ADS_KINESIS_STREAM` become one batch file of the transactions inbox."""

import dagster as dg

from ads_assets.lib.inbox import inbox_folder
from ads_assets.lib.stream import (
    STREAM_VARIABLE,
    cursor_of,
    kinesis_client,
    positions_from_cursor,
    read_new_records,
    stream_name,
    write_batch,
)


@dg.sensor(
    name="transactions_stream",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "When ADS_KINESIS_STREAM is set, every 15 s the new records of each shard (up to 10,000 a tick; each a "
        "fin_trans TSV line or a JSON object with its columns) are written as one fin_trans batch file into "
        "ADS_INBOX, which the transactions_inbox sensor scores; the cursor is the last sequence number per shard."
    ),
)
def transactions_stream(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Write the records that arrived since the cursor as one batch file of the inbox."""
    stream = stream_name()
    if stream is None:
        return dg.SkipReason(f"{STREAM_VARIABLE} is not set: no stream to read")
    read = read_new_records(kinesis_client(), stream, positions_from_cursor(context.cursor))
    if not read.records:
        return dg.SkipReason(f"no new records in stream {stream}")
    batch = write_batch(inbox_folder(), stream, read.records)
    done = []
    if batch.path:
        done.append(f"{batch.lines} records written to {batch.path} for the transactions_inbox sensor")
    if batch.refused:
        done.append(f"{len(batch.refused)} records that cannot be lines written to {batch.refused[0].parent}")
    message = f"stream {stream}: {'; '.join(done)}"
    context.log.info(message)
    return dg.SensorResult(skip_reason=message, cursor=cursor_of(read.positions))
