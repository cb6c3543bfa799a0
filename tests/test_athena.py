"""Athena/Tableau-ready publication: the analyst columns of the score table, the Athena DDL and Glue tables
generated from the published schemas, and an analyst's queries run with DuckDB over the published layout.

The DDL generator and the migration are tested on hand-built schemas and tables; the DDL against the real
files and the analyst queries use the session's `built` pipeline (and `s3_run` for an S3 location).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import botocore.session
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.validate import ParamValidator

from ads_assets.lib.athena import (
    GLUE_FILE,
    PUBLISHED_TABLES,
    AthenaTable,
    athena_tables,
    hive_type,
    write_athena,
)
from ads_assets.lib.db import connect, embedded_postgres
from ads_assets.lib.detection.scoring import parquet_rows, postgres_rows
from ads_assets.lib.detection.tables import (
    SCORES_PARQUET_SCHEMA,
    SCORES_TABLE,
    SCORES_TABLE_NAME,
    upgrade_scores_parquet,
)
from ads_assets.lib.publish import SCORES_PUBLICATION, migrate, postgres_month, publish_month
from ads_assets.lib.storage import OutputStore
from ads_assets.lib.tables import ensure_anomaly_schema, read_query
from tests.end_to_end import Built, S3Run

ANALYST_NAMES = ["reason", "amount", "kind", "district_id"]
EARLIER_SCHEMA = pa.schema([field for field in SCORES_PARQUET_SCHEMA if field.name not in ANALYST_NAMES])
"""The Parquet score table before the analyst columns."""
DDL_COLUMN = re.compile(r"^  `(\w+)` (.+?),?$", re.MULTILINE)
EVERY_TYPE = pa.schema(
    [
        ("id", pa.int64()),
        ("small", pa.int16()),
        ("count", pa.int32()),
        ("flag", pa.bool_()),
        ("ratio", pa.float32()),
        ("score", pa.float64()),
        ("name", pa.string()),
        ("day", pa.date32()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("price", pa.decimal128(14, 2)),
        ("hits", pa.list_(pa.string())),
        ("scores", pa.map_(pa.string(), pa.float64())),
        ("payee", pa.struct([("bank", pa.string()), ("account", pa.int64()), ("tags", pa.list_(pa.int32()))])),
    ]
)


def ddl_columns(ddl: str) -> dict[str, str]:
    """The columns of a CREATE EXTERNAL TABLE statement (not its partition key), with their types."""
    body = ddl[ddl.index("(\n") : ddl.index("\n)\nPARTITIONED BY")]
    return dict(DDL_COLUMN.findall(body))


def test_arrow_types_map_to_hive_types() -> None:
    table = AthenaTable("every_type", EVERY_TYPE, "s3://bank/ads/every_type/", "1996-01")

    assert ddl_columns(table.ddl()) == {
        "id": "bigint",
        "small": "smallint",
        "count": "int",
        "flag": "boolean",
        "ratio": "float",
        "score": "double",
        "name": "string",
        "day": "date",
        "at": "timestamp",
        "price": "decimal(14,2)",
        "hits": "array<string>",
        "scores": "map<string,double>",
        "payee": "struct<bank:string,account:bigint,tags:array<int>>",
    }
    with pytest.raises(TypeError, match="no Hive type"):
        hive_type(pa.duration("s"))
    with pytest.raises(ValueError, match="not an Athena column name"):
        AthenaTable("bad", pa.schema([("Trans ID", pa.int64())]), "s3://bank/ads/bad/", "1996-01").ddl()


def test_the_score_table_ddl_is_partitioned_by_month_with_projection() -> None:
    table = AthenaTable(SCORES_TABLE_NAME, SCORES_PARQUET_SCHEMA, "s3://bank/ads/transaction_scores/", "1993-01")
    ddl = table.ddl()

    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS ads.transaction_scores (\n  `trans_id` bigint,\n")
    assert list(ddl_columns(ddl))[-4:] == ANALYST_NAMES
    assert "month" not in ddl_columns(ddl)
    assert "\nPARTITIONED BY (`month` string)\nSTORED AS PARQUET\nLOCATION 's3://bank/ads/transaction_scores/'\n" in ddl
    for setting in (
        "'parquet.compression'='SNAPPY'",
        "'projection.enabled'='true'",
        "'projection.month.type'='date'",
        "'projection.month.format'='yyyy-MM'",
        "'projection.month.range'='1993-01,NOW'",
        "'projection.month.interval'='1'",
        "'projection.month.interval.unit'='MONTHS'",
        "'storage.location.template'='s3://bank/ads/transaction_scores/month=${month}/'",
    ):
        assert setting in ddl
    assert ddl.endswith(");\n")


def test_glue_table_inputs_are_valid_create_table_requests() -> None:
    tables = [
        AthenaTable(table.name, table.schema, f"s3://bank/ads/{table.name}/", "1993-01") for table in PUBLISHED_TABLES
    ]
    shape = botocore.session.get_session().get_service_model("glue").operation_model("CreateTable").input_shape

    for table in tables:
        report = ParamValidator().validate({"DatabaseName": "ads", "TableInput": table.table_input()}, shape)
        assert not report.has_errors(), report.generate_report()
    scores = tables[0].table_input()
    assert scores["PartitionKeys"] == [{"Name": "month", "Type": "string"}]
    assert scores["StorageDescriptor"]["Columns"][5] == {"Name": "detector_scores", "Type": "map<string,double>"}
    assert scores["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert scores["Parameters"]["projection.month.range"] == "1993-01,NOW"


def score_rows(month: str, ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trans_id": ids,
            "account_id": [7] * len(ids),
            "trans_date": [date.fromisoformat(f"{month}-0{i % 9 + 1}") for i in ids],
            "month": month,
            "score": [0.9 if i == ids[0] else 0.1 for i in ids],
            "is_anomaly": [i == ids[0] for i in ids],
            "detector_scores": [{"iforest": 0.5} for _ in ids],
            "rule_hits": [[] for _ in ids],
            "reasons": [json.dumps({"sentence": f"odd payment {i}"}) if i == ids[0] else None for i in ids],
            "model_version": "v1",
            "scored_at": datetime(1998, 1, 1, tzinfo=UTC),
            "reason": [f"odd payment {i}" if i == ids[0] else None for i in ids],
            "amount": [-12.5 * i for i in ids],
            "kind": "withdrawal",
            "district_id": [4] * len(ids),
        }
    )


def test_the_athena_files_cover_every_published_table_from_the_first_month(tmp_path: Path, fresh_database) -> None:
    store = OutputStore(str(tmp_path / "out"))
    assert write_athena(store) == []
    with connect(fresh_database) as connection:
        for month, ids in (("1997-02", [1, 2]), ("1997-03", [3])):
            frame = score_rows(month, ids)
            publish_month(store, connection, SCORES_PUBLICATION, month, postgres_rows(frame), parquet_rows(frame))

    written = write_athena(store)

    folder = tmp_path / "out" / "athena"
    assert sorted(path.name for path in folder.iterdir()) == [
        "glue_tables.json",
        "missing_payments.sql",
        "model_leaderboard.sql",
        "transaction_scores.sql",
    ]
    assert len(written) == 4
    ddl = (folder / "transaction_scores.sql").read_text()
    assert f"LOCATION '{(tmp_path / 'out' / 'transaction_scores').as_uri()}/'" in ddl
    assert "'projection.month.range'='1997-02,NOW'" in ddl
    glue = json.loads((tmp_path / "out" / GLUE_FILE).read_text())
    assert glue["DatabaseName"] == "ads"
    assert [table["Name"] for table in glue["TableInputs"]] == [table.name for table in PUBLISHED_TABLES]


OLD_SCORES_DDL = f"""
CREATE SCHEMA anomaly;
CREATE TABLE {SCORES_TABLE} (
    trans_id bigint NOT NULL, account_id bigint NOT NULL, trans_date date NOT NULL, month text NOT NULL,
    score double precision NOT NULL, is_anomaly boolean NOT NULL, detector_scores jsonb NOT NULL DEFAULT '{{}}',
    rule_hits text[] NOT NULL, reasons jsonb, model_version text NOT NULL, scored_at timestamptz NOT NULL
);
INSERT INTO {SCORES_TABLE} VALUES
    (1, 7, '1997-03-02', '1997-03', 0.91, true, '{{"iforest": 0.9}}', ARRAY['burst'],
     '{{"sentence": "3 withdrawals on one day"}}', 'v1', '1998-01-01T00:00:00Z'),
    (2, 7, '1997-03-05', '1997-03', 0.10, false, '{{}}', ARRAY[]::text[], NULL, 'v1', '1998-01-01T00:00:00Z'),
    (3, 8, '1997-03-06', '1997-03', 0.20, false, '{{}}', ARRAY[]::text[], NULL, 'v1', '1998-01-01T00:00:00Z');
CREATE SCHEMA marts;
CREATE TABLE marts.fct_transaction_features (
    trans_id bigint, signed_amount numeric(14, 2), transaction_kind text, account_district_id bigint
);
INSERT INTO marts.fct_transaction_features VALUES (1, -5200.00, 'withdrawal', 12), (2, 310.50, 'credit', 12);
"""


def test_an_earlier_score_table_gets_the_analyst_columns_in_postgres_and_parquet(
    tmp_path: Path, fresh_database
) -> None:
    store = OutputStore(str(tmp_path / "out"))
    old_month = score_rows("1997-03", [1, 2, 3]).drop(columns=["month", *ANALYST_NAMES])
    store.write_partition(
        SCORES_TABLE_NAME, "1997-03", parquet_rows(old_month.assign(month="1997-03")), schema=EARLIER_SCHEMA
    )
    with connect(fresh_database) as connection:
        connection.execute(OLD_SCORES_DDL)
        connection.commit()

        assert migrate(store, connection, SCORES_PUBLICATION, upgrade_scores_parquet) == ["1997-03"]
        assert migrate(store, connection, SCORES_PUBLICATION, upgrade_scores_parquet) == []
        with connection.transaction(), connection.cursor() as cursor:
            ensure_anomaly_schema(cursor)
        rows = connection.execute(
            f"SELECT trans_id, reason, amount, kind, district_id FROM {SCORES_TABLE} ORDER BY trans_id"
        ).fetchall()
        from_postgres = postgres_month(connection, SCORES_PUBLICATION, "1997-03")

    assert rows == [
        (1, "3 withdrawals on one day", Decimal("-5200.00"), "withdrawal", 12),
        (2, None, Decimal("310.50"), "credit", 12),
        (3, None, None, None, None),
    ]
    parquet = store.read_table(SCORES_TABLE_NAME)
    assert store.schema(SCORES_TABLE_NAME).equals(SCORES_PARQUET_SCHEMA)
    assert parquet.select(["trans_id", "reason", "amount", "kind", "district_id"]).to_pylist() == [
        {
            "trans_id": 1,
            "reason": "3 withdrawals on one day",
            "amount": -5200.0,
            "kind": "withdrawal",
            "district_id": 12,
        },
        {"trans_id": 2, "reason": None, "amount": 310.5, "kind": "credit", "district_id": 12},
        {"trans_id": 3, "reason": None, "amount": None, "kind": None, "district_id": None},
    ]
    assert from_postgres.schema.equals(SCORES_PARQUET_SCHEMA)


def test_a_parquet_month_of_an_earlier_version_gets_its_reason_from_the_reasons_json() -> None:
    earlier = score_rows("1997-03", [1, 2]).drop(columns=["month", *ANALYST_NAMES])
    table = pa.Table.from_pandas(parquet_rows(earlier.assign(month="1997-03")), schema=EARLIER_SCHEMA)

    upgraded = upgrade_scores_parquet(table)

    assert upgraded.column_names == SCORES_PARQUET_SCHEMA.names
    assert upgraded.column("reason").to_pylist() == ["odd payment 1", None]
    assert upgraded.column("amount").null_count == 2


def read_published(output: Path | str) -> str:
    """The DuckDB table expression of the published scores, read as Athena reads them: Hive partitions."""
    return f"read_parquet('{output}/transaction_scores/*/*.parquet', hive_partitioning = true)"


def test_the_athena_ddl_declares_the_published_files_columns(built: Built) -> None:
    assert built.result.returncode == 0
    folder = built.output / "athena"
    glue = {table["Name"]: table for table in json.loads((folder / "glue_tables.json").read_text())["TableInputs"]}
    first_month = min(
        path.name.removeprefix("month=") for path in (built.output / "transaction_scores").glob("month=*")
    )

    for table in ("transaction_scores", "missing_payments"):
        ddl = (folder / f"{table}.sql").read_text()
        declared = ddl_columns(ddl)
        part = next((built.output / table).glob("month=*/part-0.parquet"))
        files = pq.read_schema(part)
        assert declared == {field.name: hive_type(field.type) for field in files}
        assert "month" not in declared and "month" not in files.names
        assert f"LOCATION '{(built.output / table).resolve().as_uri()}/'" in ddl
        assert f"'projection.month.range'='{first_month},NOW'" in ddl
        assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "SNAPPY"
        glue_columns = glue[table]["StorageDescriptor"]["Columns"]
        assert {column["Name"]: column["Type"] for column in glue_columns} == declared
    scores = ddl_columns((folder / "transaction_scores.sql").read_text())
    assert scores["detector_scores"] == "map<string,double>" and scores["trans_date"] == "date"
    assert scores["amount"] == "double" and scores["district_id"] == "bigint" and scores["reason"] == "string"


def test_an_analysts_queries_over_the_published_layout_match_postgres(built: Built) -> None:
    assert built.result.returncode == 0
    scores = read_published(built.output)
    with connect(embedded_postgres(built.home / "pgdata")) as connection:
        month, account = connection.execute(
            f"SELECT month, account_id FROM {SCORES_TABLE} WHERE is_anomaly "  # noqa: S608 - constants only
            "GROUP BY month, account_id ORDER BY count(*) DESC, month, account_id LIMIT 1"
        ).fetchone()
        top_postgres = read_query(
            connection,
            "SELECT s.trans_id, s.score, s.reason, s.amount::float8 AS amount, s.kind, "
            "s.reasons->>'sentence' AS sentence, f.signed_amount::float8 AS signed_amount, f.transaction_kind "
            f"FROM {SCORES_TABLE} AS s JOIN marts.fct_transaction_features AS f USING (trans_id) "
            "WHERE s.month = %s AND s.is_anomaly ORDER BY s.score DESC, s.trans_id LIMIT 10",
            (month,),
        )
        by_district_postgres = connection.execute(
            "SELECT f.account_district_id, count(*), avg(s.is_anomaly::int)::float8 "
            f"FROM {SCORES_TABLE} AS s JOIN marts.fct_transaction_features AS f USING (trans_id) "
            "GROUP BY f.account_district_id ORDER BY f.account_district_id"
        ).fetchall()
        account_postgres = connection.execute(
            f"SELECT trans_id, trans_date, score, reason FROM {SCORES_TABLE} "  # noqa: S608 - constants only
            "WHERE account_id = %s AND is_anomaly ORDER BY trans_date, trans_id",
            (account,),
        ).fetchall()

    with duckdb.connect() as analyst:
        top = analyst.execute(
            f"SELECT trans_id, score, reason, amount, kind FROM {scores} "
            "WHERE month = ? AND is_anomaly ORDER BY score DESC, trans_id LIMIT 10",
            [month],
        ).fetchall()
        by_district = analyst.execute(
            f"SELECT district_id, count(*), avg(is_anomaly::int) FROM {scores} GROUP BY district_id ORDER BY district_id"
        ).fetchall()
        of_account = analyst.execute(
            f"SELECT trans_id, trans_date, score, reason FROM {scores} "
            "WHERE account_id = ? AND is_anomaly ORDER BY trans_date, trans_id",
            [account],
        ).fetchall()

    expected_top = list(
        top_postgres[["trans_id", "score", "reason", "amount", "kind"]].itertuples(index=False, name=None)
    )
    assert top == expected_top and top
    assert [row[2] for row in top] == list(top_postgres["sentence"])
    assert [row[3] for row in top] == list(top_postgres["signed_amount"])
    assert [row[4] for row in top] == list(top_postgres["transaction_kind"])
    assert all(row[2] and row[3] != 0 for row in top)
    assert [row[1] for row in top] == sorted((row[1] for row in top), reverse=True)

    assert [row[:2] for row in by_district] == [row[:2] for row in by_district_postgres]
    assert [row[2] for row in by_district] == pytest.approx([row[2] for row in by_district_postgres])
    assert len(by_district) > 1 and all(district is not None for district, _, _ in by_district)
    assert sum(rows for _, rows, _ in by_district) == sum(rows for _, rows, _ in by_district_postgres)
    assert any(rate > 0 for _, _, rate in by_district)

    assert of_account == account_postgres and len(of_account) >= 1
    assert all(isinstance(day, date) and reason for _, day, _, reason in of_account)


def test_on_s3_the_athena_tables_point_at_the_bucket(s3_run: S3Run) -> None:
    assert s3_run.result.returncode == 0, s3_run.result.stdout[-3000:] + s3_run.result.stderr[-3000:]
    store = OutputStore(s3_run.output)

    ddl = store.read_bytes("athena/transaction_scores.sql").decode()
    glue = json.loads(store.read_bytes(GLUE_FILE))

    location = f"s3://{s3_run.bucket}/runs/ads/transaction_scores/"
    assert f"LOCATION '{location}'" in ddl
    assert f"'storage.location.template'='{location}month=${{month}}/'" in ddl
    assert glue["TableInputs"][0]["StorageDescriptor"]["Location"] == location
    assert [table.location for table in athena_tables(store)][0] == location
