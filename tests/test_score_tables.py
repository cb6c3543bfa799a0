"""The score table's per-detector map: written as a map, and tables of the columns era upgraded in place."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ads_assets.lib.db import connect
from ads_assets.lib.detection.scoring import parquet_rows, postgres_rows
from ads_assets.lib.detection.tables import (
    SCORES_PARQUET_SCHEMA,
    SCORES_TABLE,
    SCORES_TABLE_NAME,
    detector_score,
    ensure_scores_table,
    upgrade_scores_parquet,
)
from ads_assets.lib.storage import OutputStore
from ads_assets.lib.tables import read_query, replace_month

LEGACY_DDL = f"""
CREATE SCHEMA anomaly;
CREATE TABLE {SCORES_TABLE} (
    trans_id bigint NOT NULL, account_id bigint NOT NULL, trans_date date NOT NULL, month text NOT NULL,
    score double precision NOT NULL, is_anomaly boolean NOT NULL, iforest_score double precision,
    lof_score double precision, rule_hits text[] NOT NULL, reasons jsonb, model_version text NOT NULL,
    scored_at timestamptz NOT NULL
);
INSERT INTO {SCORES_TABLE} VALUES
    (1, 7, '1997-03-02', '1997-03', 0.91, true, 0.97, 0.42, ARRAY['burst'], '{{}}', 'v1', now()),
    (2, 7, '1997-03-05', '1997-03', 0.10, false, 0.31, NULL, ARRAY[]::text[], NULL, 'v1', now());
"""


def scores(month: str, ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trans_id": ids,
            "account_id": [7] * len(ids),
            "trans_date": [date.fromisoformat(f"{month}-0{i % 9 + 1}") for i in ids],
            "month": month,
            "score": [i / 10 for i in ids],
            "is_anomaly": [i == ids[0] for i in ids],
            "detector_scores": [{"iforest": 0.5 + i / 100, "lstm": 0.25, "ml": 0.4, "rules": 0.0} for i in ids],
            "rule_hits": [[] for _ in ids],
            "reasons": [None for _ in ids],
            "model_version": "v2",
            "scored_at": datetime(1998, 1, 1, tzinfo=UTC),
            "reason": [None for _ in ids],
            "amount": [100.0 * i for i in ids],
            "kind": "household",
            "district_id": [3 for _ in ids],
        }
    )


def test_a_table_with_per_detector_columns_is_upgraded_to_the_map(fresh_database) -> None:
    with connect(fresh_database) as connection:
        with connection.cursor() as cursor:
            cursor.execute(LEGACY_DDL)
            ensure_scores_table(cursor)
            ensure_scores_table(cursor)
        connection.commit()
        upgraded = read_query(connection, f"SELECT trans_id, detector_scores::text AS map FROM {SCORES_TABLE}")
        columns = read_query(connection, f"SELECT * FROM {SCORES_TABLE} LIMIT 0").columns
        replace_month(connection, SCORES_TABLE, "1997-04", postgres_rows(scores("1997-04", [3, 4])))
        added = read_query(
            connection, f"SELECT detector_scores::text AS map FROM {SCORES_TABLE} WHERE month = '1997-04'"
        )
    maps = {int(row.trans_id): json.loads(row.map) for row in upgraded.itertuples()}
    assert maps == {1: {"iforest": 0.97, "lof": 0.42}, 2: {"iforest": 0.31}}
    assert "iforest_score" not in columns and "lof_score" not in columns and "detector_scores" in columns
    assert [json.loads(value)["lstm"] for value in added["map"]] == [0.25, 0.25]


def test_stored_parquet_months_of_the_columns_era_are_rewritten_with_the_map(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path / "out"))
    legacy = pa.schema(
        [field for field in SCORES_PARQUET_SCHEMA if field.name != "detector_scores"]
        + [pa.field("iforest_score", pa.float64()), pa.field("lof_score", pa.float64())]
    )
    old = scores("1997-03", [1, 2]).drop(columns=["detector_scores", "month"])
    old = old.assign(iforest_score=[0.97, 0.31], lof_score=[0.42, None])
    store.write_partition(SCORES_TABLE_NAME, "1997-03", old, schema=legacy)

    assert store.migrate(SCORES_TABLE_NAME, SCORES_PARQUET_SCHEMA, upgrade_scores_parquet) == ["1997-03"]
    assert store.migrate(SCORES_TABLE_NAME, SCORES_PARQUET_SCHEMA, upgrade_scores_parquet) == []
    store.write_partition(
        SCORES_TABLE_NAME, "1997-04", parquet_rows(scores("1997-04", [3])), schema=SCORES_PARQUET_SCHEMA
    )

    table = store.read_table(SCORES_TABLE_NAME)
    assert store.schema(SCORES_TABLE_NAME).equals(SCORES_PARQUET_SCHEMA)
    assert detector_score(table, "iforest").to_pylist() == [0.97, 0.31, 0.53]
    assert detector_score(table, "lof").to_pylist() == [0.42, None, None]
    assert detector_score(table, "lstm").to_pylist() == [None, None, 0.25]
    rewritten = pq.read_table(tmp_path / "out" / SCORES_TABLE_NAME / "month=1997-03" / "part-0.parquet")
    assert "iforest_score" not in rewritten.column_names
