"""The score table: `anomaly.transaction_scores` in Postgres and `{output}/transaction_scores/` in Parquet.

One row per scored transaction: its ensemble `score`, the alert flag `is_anomaly`, the rules that hit
it, the reasons of an alert (JSON) and the model version that scored it. Per-detector scores live in
one map column, `detector_scores` (jsonb in Postgres, `map<string, double>` in Parquet): each ML
detector's calibrated score under its registry name, plus `ml` (the combined ML part) and `rules`
(the rules' part). Adding a detector changes no table.

For analysts and BI tools (Athena, Tableau) the transaction's signed `amount`, its `kind`, its
account's `district_id` and the alert's `reason` sentence are top-level columns beside the JSON
detail (`ANALYST_COLUMNS`, the last columns of both copies).

Tables written before the map column existed (with `iforest_score` and `lof_score` columns), or
before the analyst columns, are upgraded in place: `ensure_scores_table` migrates Postgres,
`upgrade_scores_parquet` rewrites a stored Parquet month (see `OutputStore.migrate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

SCORES_TABLE = "anomaly.transaction_scores"
SCORES_TABLE_NAME = "transaction_scores"
LEGACY_DETECTOR_COLUMNS = ("iforest_score", "lof_score")
FEATURES_TABLE = "marts.fct_transaction_features"


@dataclass(frozen=True)
class AnalystColumn:
    """A top-level column of the score table for analysts: its name, Postgres and Arrow types, and the column of
    `marts.fct_transaction_features` it copies (None for `reason`, the sentence of the row's reasons)."""

    name: str
    postgres_type: str
    arrow_type: pa.DataType
    feature: str | None


ANALYST_COLUMNS = (
    AnalystColumn("reason", "text", pa.string(), None),
    AnalystColumn("amount", "numeric", pa.float64(), "signed_amount"),
    AnalystColumn("kind", "text", pa.string(), "transaction_kind"),
    AnalystColumn("district_id", "bigint", pa.int64(), "account_district_id"),
)
"""The alert's reason sentence (null when not flagged), the signed amount, the transaction kind and the district
of the branch that holds the account, as the feature table has them; appended after the original columns."""
ANALYST_SELECT = tuple(
    f"{column.name}::float8" if pa.types.is_floating(column.arrow_type) else column.name for column in ANALYST_COLUMNS
)
"""The SQL expressions that read `ANALYST_COLUMNS` back from Postgres in their Arrow types (numeric as float8)."""

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
    scored_at timestamptz NOT NULL,
    {", ".join(f"{column.name} {column.postgres_type}" for column in ANALYST_COLUMNS)}
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
    *(column.name for column in ANALYST_COLUMNS),
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
        *((column.name, column.arrow_type) for column in ANALYST_COLUMNS),
    ]
)
"""`{output}/transaction_scores/month=YYYY-MM/`: the columns of anomaly.transaction_scores; `reasons` is JSON text."""


def ensure_scores_table(cursor: psycopg.Cursor) -> None:
    """Create the score table, or upgrade an older one: per-detector columns become the `detector_scores` map,
    and the analyst columns are added and filled (see `add_analyst_columns`)."""
    cursor.execute(SCORES_DDL)
    _fold_legacy_detector_columns(cursor)
    add_analyst_columns(cursor)


def _fold_legacy_detector_columns(cursor: psycopg.Cursor) -> None:
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


def add_analyst_columns(cursor: psycopg.Cursor) -> list[str]:
    """Add the analyst columns a score table of an earlier version lacks, filled from each row's reasons and
    feature row (where the feature table has it); returns the columns added, none when all are there."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'anomaly' AND table_name = %s",
        (SCORES_TABLE_NAME,),
    )
    present = {row[0] for row in cursor.fetchall()}
    missing = [column for column in ANALYST_COLUMNS if column.name not in present]
    if not missing:
        return []
    cursor.execute(
        f"ALTER TABLE {SCORES_TABLE} "
        + ", ".join(f"ADD COLUMN IF NOT EXISTS {column.name} {column.postgres_type}" for column in missing)
    )
    if any(column.feature is None for column in missing):
        cursor.execute(f"UPDATE {SCORES_TABLE} SET reason = reasons->>'sentence'")  # noqa: S608 - SCORES_TABLE is a module constant
    copied = [column for column in missing if column.feature is not None]
    features = cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (FEATURES_TABLE,)).fetchone()
    if copied and features and features[0]:
        assignments = ", ".join(f"{column.name} = f.{column.feature}" for column in copied)
        cursor.execute(
            f"UPDATE {SCORES_TABLE} AS s SET {assignments} FROM {FEATURES_TABLE} AS f WHERE f.trans_id = s.trans_id"  # noqa: S608 - ANALYST_COLUMNS and table constants only
        )
    return [column.name for column in missing]


def upgrade_scores_parquet(table: pa.Table) -> pa.Table:
    """A Parquet month of the score table in today's columns: per-detector columns folded into
    `detector_scores`, and the analyst columns it lacks added (`reason` from the reasons JSON, the others null
    until the month is rewritten from Postgres)."""
    legacy = [column for column in LEGACY_DETECTOR_COLUMNS if column in table.column_names]
    upgraded = table
    if legacy:
        names = [column.removesuffix("_score") for column in legacy]
        values = [table.column(column).to_pylist() for column in legacy]
        maps = [
            [(name, value) for name, value in zip(names, row, strict=True) if value is not None]
            for row in zip(*values, strict=True)
        ]
        upgraded = upgraded.drop_columns(legacy).append_column(
            "detector_scores", pa.array(maps, type=pa.map_(pa.string(), pa.float64()))
        )
    for column in ANALYST_COLUMNS:
        if column.name not in upgraded.column_names:
            values = _sentences(upgraded) if column.name == "reason" else pa.nulls(len(upgraded), column.arrow_type)
            upgraded = upgraded.append_column(pa.field(column.name, column.arrow_type), values)
    return upgraded.select(SCORES_PARQUET_SCHEMA.names)


def _sentences(table: pa.Table) -> pa.Array:
    """The `sentence` of each row's reasons JSON (null without reasons)."""
    documents = table.column("reasons").to_pylist() if "reasons" in table.column_names else [None] * len(table)
    parsed = [json.loads(text) if text else None for text in documents]
    return pa.array(
        [document.get("sentence") if isinstance(document, dict) else None for document in parsed], type=pa.string()
    )


def detector_score(table: pa.Table, name: str) -> pa.Array:
    """One key of the `detector_scores` map as a column (null where the key is absent)."""
    return pc.map_lookup(table.column("detector_scores").combine_chunks(), pa.scalar(name), "first")
