"""The output store: monthly Parquet in Hive layout on a local folder and on S3 (moto's server on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from ads_assets.lib.storage import (
    KMS_KEY_VARIABLE,
    PUBLICATION_METADATA_KEY,
    OutputStore,
    SchemaMismatchError,
    guess_content_type,
    s3_endpoint_url,
    s3_region,
)


def month_frame(month: str, ids: list[int]) -> pd.DataFrame:
    """Rows of every column type the published tables use."""
    return pd.DataFrame(
        {
            "trans_id": pd.array(ids, dtype="int64"),
            "account_id": pd.array([10 + i if i % 3 else None for i in ids], dtype="Int64"),
            "amount": [float(i) * 1.25 for i in ids],
            "kind": [f"k{i}" if i % 2 else None for i in ids],
            "date": pd.to_datetime([f"{month}-{1 + i % 28:02d}" for i in ids]),
            "is_anomaly": [i % 5 == 0 for i in ids],
            "score": pd.array([i / 100 for i in ids], dtype="float32"),
        }
    )


FRAMES = {"1994-01": month_frame("1994-01", [1, 2, 3, 4, 5]), "1994-02": month_frame("1994-02", [6, 7, 8])}


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> OutputStore:
    if request.param == "local":
        return OutputStore(str(tmp_path / "ads_output"))
    bucket = request.getfixturevalue("s3_bucket")
    return OutputStore(f"s3://{bucket}/runs/ads_output")


def stored_keys(store: OutputStore) -> set[str]:
    return set(store.location.list())


def test_two_months_read_back_with_identical_values_and_dtypes(store: OutputStore) -> None:
    for month, frame in FRAMES.items():
        store.write_partition("anomalies", month, frame)

    table = store.read_table("anomalies")
    back = table.to_pandas()

    expected = pd.concat(FRAMES.values(), ignore_index=True)
    pd.testing.assert_frame_equal(back.drop(columns="month"), expected, check_exact=True)
    assert back["month"].tolist() == ["1994-01"] * 5 + ["1994-02"] * 3
    assert table.schema.field("month").type == pa.string()
    assert store.months("anomalies") == ["1994-01", "1994-02"]
    only_february = store.read_table("anomalies", months=["1994-02"]).to_pandas()
    pd.testing.assert_frame_equal(only_february.drop(columns="month"), FRAMES["1994-02"])


def test_layout_is_hive_table_month_part_file(store: OutputStore) -> None:
    for month, frame in FRAMES.items():
        url = store.write_partition("anomalies", month, frame)
        assert url == store.url(f"anomalies/month={month}/part-0.parquet")

    assert stored_keys(store) == {
        "anomalies/_schema.arrow",
        "anomalies/month=1994-01/part-0.parquet",
        "anomalies/month=1994-02/part-0.parquet",
    }
    filesystem, base = store.location.arrow("anomalies")
    dataset = ds.dataset(base, filesystem=filesystem, format="parquet", partitioning="hive")
    assert sorted(dataset.to_table().column("month").to_pylist()) == ["1994-01"] * 5 + ["1994-02"] * 3


def test_rewriting_a_month_replaces_it(store: OutputStore) -> None:
    for month, frame in FRAMES.items():
        store.write_partition("anomalies", month, frame)
    stale = "anomalies/month=1994-01/part-1.parquet"
    pq_bytes = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(FRAMES["1994-01"], preserve_index=False), pq_bytes)
    store.location.write_bytes(stale, pq_bytes.getvalue().to_pybytes())

    rerun = month_frame("1994-01", [100, 101])
    store.write_partition("anomalies", "1994-01", rerun)
    store.write_partition("anomalies", "1994-01", rerun)

    back = store.read_table("anomalies").to_pandas()
    assert back["trans_id"].tolist() == [100, 101, 6, 7, 8]
    assert stale not in stored_keys(store)
    assert len(stored_keys(store)) == 3


def test_an_empty_month_keeps_the_types(store: OutputStore) -> None:
    store.write_partition("anomalies", "1994-01", FRAMES["1994-01"])
    untyped_empty = pd.DataFrame({column: pd.Series([], dtype=object) for column in FRAMES["1994-01"].columns})
    store.write_partition("anomalies", "1994-02", untyped_empty)

    empty = store.read_table("anomalies", months=["1994-02"])
    assert empty.num_rows == 0
    assert empty.schema.remove(empty.schema.get_field_index("month")).equals(
        store.schema("anomalies"), check_metadata=False
    )
    pd.testing.assert_series_equal(
        empty.to_pandas().drop(columns="month").dtypes, FRAMES["1994-01"].dtypes, check_index=True
    )
    assert store.read_table("anomalies", months=["1995-06"]).num_rows == 0


def test_an_explicit_schema_types_a_first_empty_month(store: OutputStore) -> None:
    schema = pa.schema([("trans_id", pa.int64()), ("label", pa.string())])
    store.write_partition("labels", "1994-01", pd.DataFrame({"trans_id": [], "label": []}), schema=schema)
    store.write_partition("labels", "1994-02", pa.table({"label": ["x"], "trans_id": pa.array([7], pa.int32())}))

    table = store.read_table("labels")
    assert table.schema.field("trans_id").type == pa.int64()
    assert table.to_pylist() == [{"trans_id": 7, "label": "x", "month": "1994-02"}]


def test_frames_that_do_not_fit_are_refused(store: OutputStore) -> None:
    store.write_partition("anomalies", "1994-01", FRAMES["1994-01"])

    with pytest.raises(SchemaMismatchError, match=r"missing \['score'\], extra \['extra'\]"):
        store.write_partition("anomalies", "1994-02", FRAMES["1994-02"].drop(columns="score").assign(extra=1))
    with pytest.raises(SchemaMismatchError, match="does not fit"):
        store.write_partition("anomalies", "1994-02", FRAMES["1994-02"].assign(amount="not a number"))
    with pytest.raises(SchemaMismatchError, match="drop_table"):
        store.write_partition("anomalies", "1994-02", FRAMES["1994-02"], schema=pa.schema([("x", pa.int8())]))
    with pytest.raises(ValueError, match="other months"):
        store.write_partition("anomalies", "1994-02", FRAMES["1994-02"].assign(month="1994-03"))
    with pytest.raises(ValueError, match="YYYY-MM"):
        store.write_partition("anomalies", "1994-13", FRAMES["1994-02"])
    with pytest.raises(SchemaMismatchError, match="without a type"):
        store.write_partition("other", "1994-01", pd.DataFrame({"x": pd.Series([], dtype=object)}))
    assert store.months("anomalies") == ["1994-01"]


def test_a_month_column_equal_to_the_partition_is_dropped(store: OutputStore) -> None:
    store.write_partition("anomalies", "1994-02", FRAMES["1994-02"].assign(month="1994-02"))
    assert store.read_table("anomalies").column_names == [*FRAMES["1994-02"].columns, "month"]


def dataset_ids(store: OutputStore, table: str) -> list[int]:
    """The trans_ids a Parquet reader that discovers files itself (pyarrow, Hive layout) finds."""
    filesystem, base = store.location.arrow(table)
    dataset = ds.dataset(base, filesystem=filesystem, format="parquet", partitioning="hive")
    return sorted(dataset.to_table(columns=["trans_id"]).column("trans_id").to_pylist())


def test_a_staged_month_is_invisible_until_committed(store: OutputStore) -> None:
    store.write_partition("anomalies", "1994-01", FRAMES["1994-01"])
    staged = store.stage_partition("anomalies", "1994-01", month_frame("1994-01", [100, 101]))
    first = store.stage_partition("anomalies", "1994-03", month_frame("1994-03", [300]))

    assert staged.key == f"anomalies/month=1994-01/_staged-{staged.token}.parquet.tmp"
    assert store.months("anomalies") == ["1994-01"]
    assert store.read_table("anomalies").column("trans_id").to_pylist() == [1, 2, 3, 4, 5]
    assert dataset_ids(store, "anomalies") == [1, 2, 3, 4, 5]
    assert {(found.month, found.token) for found in store.staged_partitions("anomalies")} == {
        ("1994-01", staged.token),
        ("1994-03", first.token),
    }

    assert staged.commit() == store.url("anomalies/month=1994-01/part-0.parquet")
    first.commit()

    assert store.read_table("anomalies").column("trans_id").to_pylist() == [100, 101, 300]
    assert dataset_ids(store, "anomalies") == [100, 101, 300]
    assert store.staged_partitions("anomalies") == []
    assert stored_keys(store) == {
        "anomalies/_schema.arrow",
        "anomalies/month=1994-01/part-0.parquet",
        "anomalies/month=1994-03/part-0.parquet",
    }
    filesystem, path = store.location.arrow("anomalies/month=1994-03/part-0.parquet")
    assert pq.read_schema(path, filesystem=filesystem).metadata[PUBLICATION_METADATA_KEY] == first.token.encode()


def test_a_discarded_stage_leaves_the_month_as_it_was(store: OutputStore) -> None:
    store.write_partition("anomalies", "1994-01", FRAMES["1994-01"])
    staged = store.stage_partition("anomalies", "1994-01", month_frame("1994-01", [100]), token="run7")

    staged.discard()

    assert staged.token == "run7"
    assert store.read_table("anomalies").column("trans_id").to_pylist() == [1, 2, 3, 4, 5]
    assert stored_keys(store) == {"anomalies/_schema.arrow", "anomalies/month=1994-01/part-0.parquet"}
    with pytest.raises(FileNotFoundError):
        staged.commit()
    with pytest.raises(ValueError, match="letters and digits"):
        store.stage_partition("anomalies", "1994-01", FRAMES["1994-01"], token="../x")
    with pytest.raises(SchemaMismatchError):
        store.stage_partition("anomalies", "1994-02", FRAMES["1994-02"].drop(columns="score"))


def test_delete_month_removes_the_month_and_nothing_else(store: OutputStore) -> None:
    for month, frame in FRAMES.items():
        store.write_partition("anomalies", month, frame)
    store.stage_partition("anomalies", "1994-02", month_frame("1994-02", [9]))

    store.delete_month("anomalies", "1994-02")

    assert store.months("anomalies") == ["1994-01"]
    assert store.month_keys("anomalies") == {"1994-01": ["anomalies/month=1994-01/part-0.parquet"]}


def test_static_files_and_urls(store: OutputStore) -> None:
    url = store.write_text("quality/index.html", "<html>ok</html>")
    store.write_text("quality/static/logo.bin", b"\x00\x01")

    assert url == store.url("quality/index.html")
    assert store.read_bytes("quality/index.html") == b"<html>ok</html>"
    assert store.read_bytes("quality/static/logo.bin") == b"\x00\x01"
    with pytest.raises(ValueError):
        store.write_text("../escape.html", "x")
    with pytest.raises(FileNotFoundError):
        store.read_table("missing")


def test_urls_name_the_root(tmp_path: Path) -> None:
    assert OutputStore(str(tmp_path)).url("a/b.html") == (tmp_path / "a" / "b.html").as_uri()
    assert OutputStore("s3://bucket/some/prefix/").url("a/b.html") == "s3://bucket/some/prefix/a/b.html"
    assert OutputStore("s3://bucket").url("a/b.html") == "s3://bucket/a/b.html"


def test_s3_objects_are_where_the_layout_says(s3: Any, s3_bucket: str) -> None:
    store = OutputStore(f"s3://{s3_bucket}/ads")
    store.write_partition("anomalies", "1994-01", FRAMES["1994-01"])
    store.write_text("quality/index.html", "<html/>")

    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert sorted(keys) == [
        "ads/anomalies/_schema.arrow",
        "ads/anomalies/month=1994-01/part-0.parquet",
        "ads/quality/index.html",
    ]
    assert s3.head_object(Bucket=s3_bucket, Key="ads/quality/index.html")["ContentType"] == "text/html; charset=utf-8"


def test_a_published_folder_replaces_the_last_one_with_browsable_content_types(
    store: OutputStore, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    (site / "static").mkdir(parents=True)
    (site / ".marker").write_text("ours")
    (site / "index.html").write_text('<a href="page.html">page</a>')
    (site / "page.html").write_text("<html/>")
    (site / "static" / "style.css").write_text("body {}")
    (site / "static" / "font.woff2").write_bytes(b"\x00")
    store.write_text("docs/stale.html", "<html/>")

    with pytest.raises(FileExistsError, match="not published there"):
        store.publish_folder(site, "docs", marker=".marker")
    store.location.delete("docs/stale.html")
    store.publish_folder(site, "docs", marker=".marker")
    store.write_text("docs/old/left-over.html", "<html/>")
    published = store.publish_folder(site, "docs", marker=".marker")

    assert published[-1] == "docs/index.html"
    assert (
        set(store.location.list("docs"))
        == set(published)
        == {
            "docs/.marker",
            "docs/index.html",
            "docs/page.html",
            "docs/static/style.css",
            "docs/static/font.woff2",
        }
    )
    assert store.read_bytes("docs/page.html") == b"<html/>"
    assert guess_content_type("index.html") == "text/html; charset=utf-8"
    assert guess_content_type("static/style.css") == "text/css; charset=utf-8"
    assert guess_content_type("font.woff2") == "font/woff2"
    assert guess_content_type("no-extension") == "application/octet-stream"
    with pytest.raises(ValueError, match="has no .marker"):
        store.publish_folder(site / "static", "docs", marker=".marker")


def test_published_files_carry_their_content_type_on_s3(s3: Any, s3_bucket: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for name in (".marker", "index.html", "style.css", "logo.png"):
        (site / name).write_bytes(b"x")
    OutputStore(f"s3://{s3_bucket}/ads").publish_folder(site, "quality", marker=".marker")

    types = {
        name: s3.head_object(Bucket=s3_bucket, Key=f"ads/quality/{name}")["ContentType"]
        for name in ("index.html", "style.css", "logo.png")
    }
    assert types == {
        "index.html": "text/html; charset=utf-8",
        "style.css": "text/css; charset=utf-8",
        "logo.png": "image/png",
    }


def encryption_of_every_object(s3: Any, bucket: str) -> dict[str, tuple[str | None, str | None]]:
    """(ServerSideEncryption, SSEKMSKeyId) of each object of `bucket`, by key, as S3 reports them."""
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    heads = {key: s3.head_object(Bucket=bucket, Key=key) for key in keys}
    return {key: (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) for key, head in heads.items()}


def test_every_object_written_on_s3_is_encrypted_with_the_configured_kms_key(
    s3: Any, s3_bucket: str, kms_key_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KMS_KEY_VARIABLE, kms_key_id)
    store = OutputStore(f"s3://{s3_bucket}/ads")
    site = tmp_path / "site"
    site.mkdir()
    (site / ".marker").write_text("ours")
    (site / "index.html").write_text("<html/>")
    s3.put_object(Bucket=s3_bucket, Key="ads/legacy/unencrypted.bin", Body=b"PAR1")

    store.write_partition("anomalies", "1994-01", FRAMES["1994-01"])
    store.stage_partition("anomalies", "1994-02", FRAMES["1994-02"], token="abc").commit()
    store.location.rename("legacy/unencrypted.bin", "legacy/renamed.bin")
    store.write_text("leaderboard.json", "{}")
    store.publish_folder(site, "quality", marker=".marker")

    encryption = encryption_of_every_object(s3, s3_bucket)
    assert sorted(encryption) == [
        "ads/anomalies/_schema.arrow",
        "ads/anomalies/month=1994-01/part-0.parquet",
        "ads/anomalies/month=1994-02/part-0.parquet",
        "ads/leaderboard.json",
        "ads/legacy/renamed.bin",
        "ads/quality/.marker",
        "ads/quality/index.html",
    ]
    for key, (algorithm, key_id) in encryption.items():
        assert algorithm == "aws:kms", key
        assert key_id is not None and key_id.endswith(kms_key_id), key
    assert store.read_table("anomalies").num_rows == len(FRAMES["1994-01"]) + len(FRAMES["1994-02"])
    assert OutputStore(f"s3://{s3_bucket}/ads").read_bytes("legacy/renamed.bin") == b"PAR1"


def test_without_a_key_id_s3_objects_use_the_default_kms_key(s3: Any, s3_bucket: str) -> None:
    store = OutputStore(f"s3://{s3_bucket}/ads")
    assert store.location.put_args == {"ServerSideEncryption": "aws:kms"}
    store.write_text("quality/index.html", "<html/>")
    assert s3.head_object(Bucket=s3_bucket, Key="ads/quality/index.html")["ServerSideEncryption"] == "aws:kms"
    assert OutputStore(f"s3://{s3_bucket}/ads", kms_key_id="alias/ads").location.put_args == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/ads",
    }


def test_endpoint_and_region_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ADS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    assert s3_endpoint_url() is None
    assert s3_region() == "us-east-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert s3_endpoint_url() == "http://127.0.0.1:1"
    assert s3_region() == "eu-central-1"
    monkeypatch.setenv("ADS_S3_ENDPOINT_URL", "http://127.0.0.1:2")
    assert s3_endpoint_url() == "http://127.0.0.1:2"
