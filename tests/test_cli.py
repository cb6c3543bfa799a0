"""The `ads` command end to end on a small generated data set, in a fresh ADS_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import connect, embedded_postgres, table_count
from ads_assets.lib.raw_schema import QUARANTINE_TABLE, raw_table
from ads_assets.lib.storage import OutputStore, s3_endpoint_url, s3_region
from ads_assets.lib.tables import MISSING_TABLE, SCORES_TABLE, read_query


def ads(*args: str, home: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ADS_HOME": str(home)}
    environment.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "ads_assets.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    result = ads(
        "generate",
        "--out",
        str(folder),
        "--accounts",
        "60",
        "--start",
        "1993-01",
        "--end",
        "1993-06",
        "--format",
        "fin",
        "--seed",
        "11",
        "--anomaly-rate",
        "0.01",
        home=folder / "unused_home",
    )
    assert result.returncode == 0, result.stderr
    return folder


def test_generate_writes_eight_relations_and_labels(generated: Path) -> None:
    names = sorted(path.name for path in generated.glob("*.tsv"))
    assert names == sorted(f"fin_{name}.tsv" for name in LOAD_ORDER)
    labels = (generated / "labels.csv").read_text().splitlines()
    assert labels[0].split(",")[:2] == ["trans_id", "account_id"]
    assert len(labels) > 1


def test_run_twice_is_idempotent_and_reports(generated: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ads("run", "--source", str(generated), "--output", str(tmp_path / "out"), home=home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "succeeded" in first.stdout and "raw.fin_trans" in first.stdout

    def counts() -> dict[str, int]:
        with connect(embedded_postgres(home / "pgdata")) as connection, connection.cursor() as cursor:
            rows = {name: table_count(cursor, raw_table(RELATIONS[name])) for name in LOAD_ORDER}
            rows["quarantine"] = table_count(cursor, QUARANTINE_TABLE)
            rows["runs"] = table_count(cursor, "runs")
            return rows

    after_first = counts()
    trans_lines = sum(1 for _ in (generated / "fin_trans.tsv").open())
    assert after_first["trans"] + after_first["quarantine"] == trans_lines
    assert after_first["account"] == 60
    assert after_first["runs"] == 1

    assert_published_outputs(home, tmp_path / "out", after_first["trans"])

    second = ads("run", "--source", str(generated), "--output", str(tmp_path / "out"), home=home)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after_second = counts()
    assert after_second == {**after_first, "runs": 2}


def assert_published_outputs(home: Path, output: Path, transactions: int) -> None:
    """Scores for every transaction in Postgres and Parquet, reasons for every alert, missing payments by month."""
    with connect(embedded_postgres(home / "pgdata")) as connection:
        scores = read_query(connection, f"SELECT * FROM {SCORES_TABLE}")
        months = {row[0] for row in connection.execute("SELECT DISTINCT to_char(date, 'YYYY-MM') FROM raw.fin_trans")}
        missing = table_count(connection.cursor(), MISSING_TABLE)
    assert len(scores) == transactions
    assert set(scores["month"]) == months
    assert scores["score"].between(0, 1).all()
    flagged = scores[scores["is_anomaly"]]
    assert 0 < len(flagged) <= 0.05 * len(scores)
    for reasons in flagged["reasons"]:
        explanation = json.loads(reasons)
        assert explanation["sentence"].strip()
    parquet = OutputStore(str(output)).read_table("transaction_scores").to_pandas()
    assert len(parquet) == transactions
    assert sorted(parquet["month"].astype(str).unique()) == sorted(months)
    assert sorted(path.name for path in (output / "transaction_scores").glob("month=*")) == [
        f"month={month}" for month in sorted(months)
    ]
    assert sorted(path.name for path in (output / "missing_payments").glob("month=*")) == [
        f"month={month}" for month in sorted(months)
    ]
    assert len(OutputStore(str(output)).read_table("missing_payments")) == missing


def test_run_publishes_parquet_and_data_docs_to_s3(generated: Path, tmp_path: Path, s3: Any, s3_bucket: str) -> None:
    """`ads run --output s3://...` against moto: the endpoint and credentials reach it through the environment."""
    home = tmp_path / "home"
    output = f"s3://{s3_bucket}/runs/ads"
    result = ads("run", "--source", str(generated), "--output", output, home=home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"outputs: {output}" in result.stdout

    with connect(embedded_postgres(home / "pgdata")) as connection:
        months = sorted(row[0] for row in connection.execute("SELECT DISTINCT month FROM anomaly.transaction_scores"))
        scores = connection.execute(f"SELECT * FROM {SCORES_TABLE}")
        score_rows = [dict(zip([c.name for c in scores.description], row, strict=True)) for row in scores]
        missing = connection.execute(f"SELECT * FROM {MISSING_TABLE}")
        missing_rows = [dict(zip([c.name for c in missing.description], row, strict=True)) for row in missing]
    assert months and score_rows and missing_rows

    keys = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for item in page.get("Contents", [])
    }
    for table in ("transaction_scores", "missing_payments"):
        assert {f"runs/ads/{table}/month={month}/part-0.parquet" for month in months} <= keys
    assert "runs/ads/quality/index.html" in keys
    assert s3.head_object(Bucket=s3_bucket, Key="runs/ads/quality/index.html")["ContentType"].startswith("text/html")

    filesystem = pafs.S3FileSystem(endpoint_override=s3_endpoint_url(), region=s3_region())
    month_partitioning = ds.partitioning(pa.schema([("month", pa.string())]), flavor="hive")

    def parquet_rows(table: str) -> list[dict[str, Any]]:
        dataset = ds.dataset(
            f"{s3_bucket}/runs/ads/{table}", filesystem=filesystem, format="parquet", partitioning=month_partitioning
        )
        return dataset.to_table().to_pylist()

    assert comparable_rows(parquet_rows("transaction_scores")) == comparable_rows(score_rows)
    assert comparable_rows(parquet_rows("missing_payments")) == comparable_rows(missing_rows)


def comparable(column: str, value: Any) -> Any:
    """A value as both stores should hold it: JSON text parsed, numerics as float, instants in UTC."""
    if column == "reasons" and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def comparable_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted JSON documents of their comparable values, for comparing two stores."""
    return sorted(
        json.dumps({column: comparable(column, value) for column, value in row.items()}, sort_keys=True, default=str)
        for row in rows
    )


def test_run_on_a_folder_in_neither_format_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    result = ads("run", "--source", str(tmp_path / "nothing"), home=tmp_path / "home")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message.startswith("ads: error:") and "\n" not in message
