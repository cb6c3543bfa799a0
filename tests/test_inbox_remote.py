"""The remote inboxes on moto's server: batch objects under an S3 prefix, and transactions on a Kinesis stream."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest

from ads_assets.defs.automation.inbox import transactions_inbox
from ads_assets.defs.automation.s3_inbox import transactions_s3_inbox
from ads_assets.defs.automation.stream import transactions_stream
from ads_assets.lib.berka.formats import SourceFormat, read_rows
from ads_assets.lib.inbox import batch_files, batch_source, origin_file, settle
from ads_assets.lib.inbox_s3 import staging_folder, take_new
from ads_assets.lib.stream import UnframableRecordError, frame, read_new_records
from tests.s3_server import REGION

GOOD_LINE = b"1001\t10\t2016-01-05\t700.0\t700.0\tC\tCIC\t\t\t"
JSON_RECORD = (
    b'{"trans_id": 1002, "account_id": 10, "date": "2016-01-06", "amount": 12.50, "balance": 687.50, '
    b'"type": "D", "operation": "WIC", "k_symbol": null}'
)
JSON_LINE = b"1002\t10\t2016-01-06\t12.50\t687.50\tD\tWIC\t\t\t"
BAD_DATE = b"1003\t10\tyesterday\t1.0\t1.0\tC\t\t\t\t"
SHARD_KEYS = ("0", str(2**127))
"""Explicit hash keys that land in the first and the second shard of a two-shard stream."""


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ads_inbox"
    monkeypatch.setenv("ADS_INBOX", str(folder))
    return folder


@pytest.fixture
def kinesis(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ADS_KINESIS_ENDPOINT_URL", s3_endpoint)
    return boto3.client("kinesis", endpoint_url=s3_endpoint, region_name=REGION)


def _body(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_the_remote_sensors_skip_until_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADS_INBOX_S3", raising=False)
    monkeypatch.delenv("ADS_KINESIS_STREAM", raising=False)
    s3_result = transactions_s3_inbox(dg.build_sensor_context())
    stream_result = transactions_stream(dg.build_sensor_context())
    assert isinstance(s3_result, dg.SkipReason) and "ADS_INBOX_S3 is not set" in s3_result.skip_message
    assert isinstance(stream_result, dg.SkipReason) and "ADS_KINESIS_STREAM is not set" in stream_result.skip_message
    assert transactions_s3_inbox.default_status == dg.DefaultSensorStatus.RUNNING
    assert transactions_stream.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_s3_sensor_stages_each_new_object_once(
    inbox: Path, s3: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADS_INBOX_S3", f"s3://{s3_bucket}/incoming")
    contents = {"incoming/a.asc": b"asc rows\n", "incoming/b.tsv": b"tsv rows\n"}
    others = {"incoming/notes.txt": b"no batch\n", "incoming/processed/old.tsv": b"taken\n", "elsewhere/c.tsv": b"x\n"}
    etags = {key: s3.put_object(Bucket=s3_bucket, Key=key, Body=body)["ETag"] for key, body in contents.items()}
    for key, body in others.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)

    first = transactions_s3_inbox(dg.build_sensor_context())
    staged = {request.tags["ads/batch"]: request for request in first.run_requests}
    assert sorted(staged) == ["a.asc", "b.tsv"]
    for name in staged:
        request, key = staged[name], f"incoming/{name}"
        path = Path(request.run_config["ops"]["score_inbox_batch"]["config"]["path"])
        assert path.parent == inbox / "s3"
        assert path.name == f"s3-{s3_bucket}-{etags[key].strip(chr(34))[:12]}-{name}"
        assert path.read_bytes() == contents[key]
        assert json.loads(origin_file(path).read_text())["key"] == key
        assert request.run_key.startswith(f"s3://{s3_bucket}/{key}#{etags[key]}@")
    assert batch_files(inbox) == []
    assert sorted(json.loads(first.cursor)) == ["incoming/a.asc", "incoming/b.tsv"]

    again = transactions_s3_inbox(dg.build_sensor_context(cursor=first.cursor))
    assert again.run_requests == [] and again.cursor == first.cursor

    s3.put_object(Bucket=s3_bucket, Key="incoming/a.asc", Body=b"asc rows, corrected\n")
    third = transactions_s3_inbox(dg.build_sensor_context(cursor=again.cursor))
    assert [request.tags["ads/batch"] for request in third.run_requests] == ["a.asc"]
    path = Path(third.run_requests[0].run_config["ops"]["score_inbox_batch"]["config"]["path"])
    assert path.read_bytes() == b"asc rows, corrected\n"


def test_a_staged_batch_settles_its_object_on_s3(inbox: Path, s3: Any, s3_bucket: str) -> None:
    for name in ("a.tsv", "b.asc", "c.tsv"):
        s3.put_object(Bucket=s3_bucket, Key=f"in/{name}", Body=f"{name} as taken\n".encode())
    staged, taken = take_new(s3, s3_bucket, "in", {}, staging_folder())
    paths = {item.batch.name: item.path for item in staged}
    s3.put_object(Bucket=s3_bucket, Key="in/c.tsv", Body=b"c.tsv uploaded again\n")

    assert settle(paths["a.tsv"]) == inbox / "s3" / "processed" / paths["a.tsv"].name
    settle(paths["b.asc"], "line 2: bad date 'yesterday' in column date")
    settle(paths["c.tsv"])
    assert _keys(s3, s3_bucket) == [
        "in/c.tsv",
        "in/failed/b.asc",
        "in/failed/b.asc.reason.txt",
        "in/processed/a.tsv",
        "in/processed/c.tsv",
    ]
    assert _body(s3, s3_bucket, "in/processed/a.tsv") == b"a.tsv as taken\n"
    assert s3.head_object(Bucket=s3_bucket, Key="in/processed/a.tsv")["ServerSideEncryption"] == "aws:kms"
    assert _body(s3, s3_bucket, "in/failed/b.asc.reason.txt") == b"line 2: bad date 'yesterday' in column date\n"
    assert _body(s3, s3_bucket, "in/processed/c.tsv") == b"c.tsv as taken\n"
    assert _body(s3, s3_bucket, "in/c.tsv") == b"c.tsv uploaded again\n"
    assert not any(path.name.endswith(".origin.json") for path in (inbox / "s3").iterdir())

    staged, _ = take_new(s3, s3_bucket, "in", taken, staging_folder())
    assert [item.batch.name for item in staged] == ["c.tsv"]
    settle(staged[0].path)
    renamed = [key for key in _keys(s3, s3_bucket) if key.startswith("in/processed/c.") and key.count(".") == 2]
    assert len(renamed) == 1 and _body(s3, s3_bucket, renamed[0]) == b"c.tsv uploaded again\n"
    assert _body(s3, s3_bucket, "in/processed/c.tsv") == b"c.tsv as taken\n"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (GOOD_LINE + b"\r\n", GOOD_LINE),
        (JSON_RECORD, JSON_LINE),
        (b'{"trans_id": 7, "type": true, "bank": "AB"}', b"7\t\t\t\t\ttrue\t\t\tAB\t"),
        (b'{"trans_id": 7, "trans_id": 8}', b'{"trans_id": 7, "trans_id": 8}'),
        (b"{not json", b"{not json"),
        (b"", b""),
    ],
)
def test_a_record_is_framed_as_one_fin_trans_line(data: bytes, line: bytes) -> None:
    assert frame(data) == line


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"1\t10\n2\t10", "a line break or NUL inside the record"),
        (b"1\t10\x00", "a line break or NUL inside the record"),
        (b'{"trans_id": 7, "memo": "x"}', "JSON keys that are not fin_trans columns: memo"),
        (b'{"trans_id": [7]}', "a nested JSON value in column trans_id"),
        (b'{"bank": "A\\tB"}', "a tab, line break or NUL in column bank"),
    ],
)
def test_a_record_that_cannot_be_one_line_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(UnframableRecordError, match=reason):
        frame(data)


def test_the_stream_sensor_writes_each_read_as_one_batch_file(
    inbox: Path, kinesis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = f"ads-test-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    monkeypatch.setenv("ADS_KINESIS_STREAM", stream)

    def put(data: bytes, shard: int) -> str:
        return kinesis.put_record(StreamName=stream, Data=data, PartitionKey="k", ExplicitHashKey=SHARD_KEYS[shard])[
            "SequenceNumber"
        ]

    put(GOOD_LINE + b"\n", 0)
    put(b"garbage", 0)
    put(JSON_RECORD, 1)
    broken = put(b"1004\t10\n2016-01-07", 1)
    last = put(BAD_DATE, 1)

    first = transactions_stream(dg.build_sensor_context())
    assert first.run_requests == []
    shards = sorted(json.loads(first.cursor))
    assert len(shards) == 2 and json.loads(first.cursor)[shards[1]] == last
    [batch] = batch_files(inbox)
    assert batch.name.startswith(f"kinesis-{stream}-{shards[0]}..{shards[1]}-")
    assert batch.read_bytes() == b"".join(line + b"\n" for line in (GOOD_LINE, b"garbage", JSON_LINE, BAD_DATE))
    refused = inbox / "failed" / f"kinesis-{stream}-{shards[1]}-{broken}.record"
    assert refused.read_bytes() == b"1004\t10\n2016-01-07"
    assert "line break" in refused.with_name(f"{refused.name}.reason.txt").read_text()

    source = batch_source(batch)
    assert source.format == SourceFormat.FIN
    assert [(row.values is not None, row.reason) for row in read_rows(source)] == [
        (True, None),
        (False, "expected 10 fields, found 1"),
        (True, None),
        (False, "bad date 'yesterday' in column date"),
    ]
    [request] = transactions_inbox(dg.build_sensor_context()).run_requests
    assert request.run_config["ops"]["score_inbox_batch"]["config"]["path"] == str(batch)

    again = transactions_stream(dg.build_sensor_context(cursor=first.cursor))
    assert isinstance(again, dg.SkipReason) and "no new records" in again.skip_message

    put(GOOD_LINE.replace(b"1001", b"1005"), 0)
    third = transactions_stream(dg.build_sensor_context(cursor=first.cursor))
    newest = [path for path in batch_files(inbox) if path != batch]
    assert len(newest) == 1 and newest[0].read_bytes() == GOOD_LINE.replace(b"1001", b"1005") + b"\n"
    assert json.loads(third.cursor)[shards[1]] == last
    assert json.loads(third.cursor)[shards[0]] != json.loads(first.cursor)[shards[0]]


def test_a_read_takes_at_most_its_bound_and_the_next_one_goes_on_from_there(kinesis: Any) -> None:
    stream = f"ads-test-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    for number in range(3):
        kinesis.put_record(StreamName=stream, Data=f"line {number}".encode(), PartitionKey="k")
    first = read_new_records(kinesis, stream, {}, limit=2)
    second = read_new_records(kinesis, stream, first.positions, limit=2)
    assert [record.data for record in first.records] == [b"line 0", b"line 1"]
    assert [record.data for record in second.records] == [b"line 2"]
    assert read_new_records(kinesis, stream, second.positions).records == []
