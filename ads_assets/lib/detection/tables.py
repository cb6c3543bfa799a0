"""The score table: `anomaly.transaction_scores` in Postgres and `{output}/transaction_scores/` in Parquet.

One row per scored transaction: its ensemble `score`, the alert flag `is_anomaly`, the rules that hit
it, the reasons of an alert (JSON) and the model version that scored it. Per-detector scores live in
one map column, `detector_scores` (jsonb in Postgres, `map<string, double>` in Parquet): each ML
detector's calibrated score under its registry name, plus `ml` (the combined ML part) and `rules`
(the rules' part). Adding a detector changes no table.

Tables written before the map column existed (with `iforest_score` and `lof_score` columns) are
upgraded in place: `ensure_scores_table` migrates Postgres, `upgrade_scores_parquet` rewrites a
stored Parquet month (see `OutputStore.migrate`).
"""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

SCORES_TABLE = "anomaly.transaction_scores"
SCORES_TABLE_NAME = "transaction_scores"
LEGACY_DETECTOR_COLUMNS = ("iforest_score", "lof_score")

SCORES_DDL = f"""
CREATE SCHEMA IF NOT EXISTS anomaly;
CREATE TABLE IF NOT EXISTS {SCORES_TABLE} (
    trans_id bigint NOT NULL,
    account_id bigint NOT NULL,
    trans_date date NOT NULL,
    month text NOT NULL,
    score double precision NOT NULL,
    is_anomaly boolean NOT NULL,
    detector_scores jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    rule_hits text[] NOT NULL,
    reasons jsonb,
    model_version text NOT NULL,
    scored_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS transaction_scores_month_idx ON {SCORES_TABLE} (month);
CREATE INDEX IF NOT EXISTS transaction_scores_trans_id_idx ON {SCORES_TABLE} (trans_id);
CREATE INDEX IF NOT EXISTS transaction_scores_flagged_idx ON {SCORES_TABLE} (month, score DESC) WHERE is_anomaly;
"""

SCORE_COLUMNS = [
    "trans_id",
    "account_id",
    "trans_date",
    "month",
    "score",
    "is_anomaly",
    "detector_scores",
    "rule_hits",
    "reasons",
    "model_version",
    "scored_at",
]

SCORES_PARQUET_SCHEMA = pa.schema(
    [
        ("trans_id", pa.int64()),
        ("account_id", pa.int64()),
        ("trans_date", pa.date32()),
        ("score", pa.float64()),
        ("is_anomaly", pa.bool_()),
        ("detector_scores", pa.map_(pa.string(), pa.float64())),
        ("rule_hits", pa.list_(pa.string())),
        ("reasons", pa.string()),
        ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""`{output}/transaction_scores/month=YYYY-MM/`: the columns of anomaly.transaction_scores; `reasons` is JSON text."""


def ensure_scores_table(cursor: psycopg.Cursor) -> None:
    """Create the score table, or upgrade one with per-detector columns to the `detector_scores` map."""
    cursor.execute(SCORES_DDL)
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'anomaly' "
        "AND table_name = %s AND column_name = ANY(%s)",
        (SCORES_TABLE_NAME, list(LEGACY_DETECTOR_COLUMNS)),
    )
    legacy = [row[0] for row in cursor.fetchall()]
    if not legacy:
        return
    pairs = ", ".join(f"%s::text, {column}" for column in legacy)
    cursor.execute(f"ALTER TABLE {SCORES_TABLE} ADD COLUMN IF NOT EXISTS detector_scores jsonb NOT NULL DEFAULT '{{}}'")
    cursor.execute(
        f"UPDATE {SCORES_TABLE} SET detector_scores = jsonb_strip_nulls(jsonb_build_object({pairs}))",  # noqa: S608 - columns are the LEGACY_DETECTOR_COLUMNS constants, keys go as parameters
        [column.removesuffix("_score") for column in legacy],
    )
    cursor.execute(f"ALTER TABLE {SCORES_TABLE} " + ", ".join(f"DROP COLUMN {column}" for column in legacy))


def upgrade_scores_parquet(table: pa.Table) -> pa.Table:
    """A Parquet month of the score table with its per-detector columns folded into `detector_scores`."""
    legacy = [column for column in LEGACY_DETECTOR_COLUMNS if column in table.column_names]
    if not legacy:
        return table
    names = [column.removesuffix("_score") for column in legacy]
    values = [table.column(column).to_pylist() for column in legacy]
    maps = [
        [(name, value) for name, value in zip(names, row, strict=True) if value is not None]
        for row in zip(*values, strict=True)
    ]
    upgraded = table.drop_columns(legacy)
    column = pa.array(maps, type=pa.map_(pa.string(), pa.float64()))
    return upgraded.append_column("detector_scores", column).select(
        [name for name in SCORES_PARQUET_SCHEMA.names if name in upgraded.column_names or name == "detector_scores"]
    )


def detector_score(table: pa.Table, name: str) -> pa.Array:
    """One key of the `detector_scores` map as a column (null where the key is absent)."""
    return pc.map_lookup(table.column("detector_scores").combine_chunks(), pa.scalar(name), "first")
