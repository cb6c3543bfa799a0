"""The transactions stream: Kinesis records of new transactions, framed into batch files of the local inbox.

`ADS_KINESIS_STREAM` names the stream (unset: no stream); the endpoint is `ADS_KINESIS_ENDPOINT_URL`, else
`AWS_ENDPOINT_URL` (unset: AWS), the region and credentials those of `ads_assets.lib.storage`. A record's Data is
one transaction, either

- one line of the `fin_trans` TSV layout: the ten tab-separated fields trans_id, account_id, date, amount,
  balance, type, operation, k_symbol, bank, account (`FIN_COLUMN_ORDER["trans"]`) in the fin_* conventions
  (ISO dates shifted +20 years, amounts divided by 10, English codes), with or without a line end; or
- a JSON object with those column names as keys and the same values (a missing key or null is an empty field,
  numbers are taken as written).

The records one read takes from every shard are written as one fin_trans batch file into the inbox
(`ADS_INBOX`), named by stream, shard range and first and last sequence numbers, under a temporary name that is
renamed once complete, so the inbox sensor scores them like any batch file. A record that is not a valid
transaction still goes into the file, and the loader quarantines its line with the reason. A record that cannot
be one line (a line break or NUL inside it; a JSON object with other keys, a nested value, or a tab in a value)
is written to the inbox's `failed/` as `<stream>-<shard>-<sequence>.record` beside its `.reason.txt`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ads_assets.lib.berka.schema import FIN_COLUMN_ORDER
from ads_assets.lib.inbox import FAILED
from ads_assets.lib.storage import s3_region

STREAM_VARIABLE = "ADS_KINESIS_STREAM"
KINESIS_ENDPOINT_VARIABLES = ("ADS_KINESIS_ENDPOINT_URL", "AWS_ENDPOINT_URL")
COLUMNS = FIN_COLUMN_ORDER["trans"]
MAX_RECORDS_PER_READ = 10_000
"""How many records one read takes at most, shared among the shards; the rest wait for the next read."""
MAX_CALLS_PER_SHARD = 5
"""How many `get_records` calls one read makes on a shard at most, while it is behind the shard's newest record."""
THROTTLED = "ProvisionedThroughputExceededException"
STREAM_NAME_CHARACTERS = 64
"""How much of the stream's name a batch file's name keeps, so that it stays within file-name limits."""

_UNFRAMABLE = re.compile(rb"[\n\r\x00]")
_FIELD_BREAKS = re.compile(r"[\t\n\r\x00]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class UnframableRecordError(ValueError):
    """A record that cannot be one line of a batch file; the message says why."""


@dataclass(frozen=True)
class StreamRecord:
    """One Kinesis record: its shard, sequence number and Data."""

    shard_id: str
    sequence_number: str
    data: bytes


@dataclass(frozen=True)
class StreamRead:
    """The records one read took, in shard then sequence order, and each shard's last sequence number after it."""

    records: list[StreamRecord]
    positions: dict[str, str]


@dataclass(frozen=True)
class StreamBatch:
    """Where one read's records went: the batch file (None when no record made a line) and the refused records."""

    path: Path | None
    lines: int
    refused: list[Path]


def stream_name() -> str | None:
    """`ADS_KINESIS_STREAM`, None when unset."""
    return os.environ.get(STREAM_VARIABLE, "").strip() or None


def kinesis_endpoint_url() -> str | None:
    """The Kinesis endpoint to use instead of AWS's: `ADS_KINESIS_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`."""
    return next((os.environ[name] for name in KINESIS_ENDPOINT_VARIABLES if os.environ.get(name)), None)


def kinesis_client() -> Any:
    """A boto3 Kinesis client on the configured endpoint and region, with short timeouts for a sensor's tick."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kinesis",
        endpoint_url=kinesis_endpoint_url(),
        region_name=s3_region(),
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
    )


def positions_from_cursor(cursor: str | None) -> dict[str, str]:
    """The last sequence number read of each shard, from a sensor cursor (empty for none)."""
    return {str(shard): str(sequence) for shard, sequence in json.loads(cursor).items()} if cursor else {}


def cursor_of(positions: dict[str, str]) -> str:
    """A sensor cursor holding the last sequence number read of each shard."""
    return json.dumps(positions, sort_keys=True)


def read_new_records(
    client: Any, stream: str, positions: dict[str, str], limit: int = MAX_RECORDS_PER_READ
) -> StreamRead:
    """The records of every shard after its position (from its oldest record for a shard not read yet).

    At most `limit` records in all, shared evenly among the shards. Shards the stream no longer lists are dropped
    from the positions.
    """
    shards = _shard_ids(client, stream)
    share = max(1, math.ceil(limit / max(1, len(shards))))
    records: list[StreamRecord] = []
    after = {shard: positions[shard] for shard in shards if shard in positions}
    for shard in shards:
        taken = _read_shard(client, stream, shard, after.get(shard), share)
        records += taken
        if taken:
            after[shard] = taken[-1].sequence_number
    return StreamRead(records, after)


def frame(data: bytes) -> bytes:
    """The batch-file line of a record's Data (without its line end); UnframableRecordError when it cannot be one."""
    line = data.removesuffix(b"\n").removesuffix(b"\r")
    if _UNFRAMABLE.search(line):
        raise UnframableRecordError("a line break or NUL inside the record: it cannot be one line of a batch file")
    if line.lstrip().startswith(b"{"):
        fields = _json_object(line)
        if fields is not None:
            return _json_line(fields)
    return line


def write_batch(folder: Path, stream: str, records: list[StreamRecord]) -> StreamBatch:
    """Write the records as one fin_trans batch file into `folder`, and those that cannot be lines to `failed/`."""
    lines: list[bytes] = []
    refused: list[Path] = []
    for record in records:
        try:
            lines.append(frame(record.data))
        except UnframableRecordError as error:
            refused.append(_refuse(folder, stream, record, str(error)))
    if not lines:
        return StreamBatch(None, 0, refused)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / batch_name(stream, records)
    partial = path.with_name(f".{path.name}.part")
    with partial.open("wb") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return StreamBatch(path, len(lines), refused)


def batch_name(stream: str, records: list[StreamRecord]) -> str:
    """`kinesis-<stream>-<first shard>..<last shard>-<first sequence>..<last sequence>.tsv`."""
    first, last = records[0], records[-1]
    return _UNSAFE.sub(
        "_",
        f"kinesis-{stream[:STREAM_NAME_CHARACTERS]}-{first.shard_id}..{last.shard_id}-"
        f"{first.sequence_number}..{last.sequence_number}.tsv",
    )


def _shard_ids(client: Any, stream: str) -> list[str]:
    shards: list[str] = []
    page = client.list_shards(StreamName=stream)
    while True:
        shards += [shard["ShardId"] for shard in page["Shards"]]
        if not page.get("NextToken"):
            return sorted(shards)
        page = client.list_shards(NextToken=page["NextToken"])


def _read_shard(client: Any, stream: str, shard: str, after: str | None, limit: int) -> list[StreamRecord]:
    start = (
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        if after
        else {"ShardIteratorType": "TRIM_HORIZON"}
    )
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard, **start)["ShardIterator"]
    taken: list[StreamRecord] = []
    for _ in range(MAX_CALLS_PER_SHARD):
        if not iterator or len(taken) >= limit:
            break
        try:
            response = client.get_records(ShardIterator=iterator, Limit=min(limit - len(taken), MAX_RECORDS_PER_READ))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == THROTTLED:
                break
            raise
        taken += [StreamRecord(shard, item["SequenceNumber"], item["Data"]) for item in response["Records"]]
        iterator = response.get("NextShardIterator")
        if not response.get("MillisBehindLatest"):
            break
    return taken


def _json_object(line: bytes) -> dict[str, Any] | None:
    """The record as a JSON object with unique keys, numbers as written; None when it is not one."""
    try:
        value = json.loads(line, parse_float=str, parse_int=str, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a key given twice")
    return dict(pairs)


def _json_line(fields: dict[str, Any]) -> bytes:
    unknown = sorted(set(fields) - set(COLUMNS))
    if unknown:
        raise UnframableRecordError(f"JSON keys that are not fin_trans columns: {', '.join(unknown)}")
    return "\t".join(_field(column, fields.get(column)) for column in COLUMNS).encode("utf-8")


def _field(column: str, value: Any) -> str:
    """A JSON value as a TSV field: null empty, true/false and numbers as written in JSON, strings as they are."""
    if isinstance(value, dict | list):
        raise UnframableRecordError(f"a nested JSON value in column {column}")
    if value is None:
        return ""
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    if _FIELD_BREAKS.search(text):
        raise UnframableRecordError(f"a tab, line break or NUL in column {column}")
    return text


def _refuse(folder: Path, stream: str, record: StreamRecord, reason: str) -> Path:
    failed = folder / FAILED
    failed.mkdir(parents=True, exist_ok=True)
    path = failed / _UNSAFE.sub(
        "_", f"kinesis-{stream[:STREAM_NAME_CHARACTERS]}-{record.shard_id}-{record.sequence_number}.record"
    )
    path.write_bytes(record.data)
    path.with_name(f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    return path
