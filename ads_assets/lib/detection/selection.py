"""Model selection: candidates recombined from one fitted ensemble, their leaderboard, and the champion rule.

Candidates are cheap recombinations of the ensemble's fitted detectors, always with the rules as the
ensemble combines them: each detector alone, the configured weights (`default`), equal weights
(`equal`) and each detector left out (`without_<name>`); plus `baseline`, a plain Isolation Forest on the
raw columns (amount, balance, one-hot type / operation / category) fitted on a sample of the training
window, without rules. Candidates whose weights are the same up to a factor are listed once.

Each candidate's score of the validation rows gives its average precision, its recall within the top
`TOP_SHARE` (1 %) of the rows, overall and per kind (`per_kind`). The champion rule (`choose`): the
reference is the best single candidate (the highest AP among the detectors alone and the baseline); a
candidate meets the floor when its top-1 % recall of every kind is at least the reference's minus
`RECALL_MARGIN`; the champion is the highest AP among those that meet it. The reference meets its own
floor, so the champion's AP is never below the baseline's or any single candidate's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.pq import TransactionStatus
from sklearn.metrics import average_precision_score

from ads_assets.lib.publish import PublishedTable
from ads_assets.lib.tables import ANOMALY_SCHEMA, FEATURES_TABLE, read_query

from .calibration import TailCalibrator
from .ensemble import EnsembleDetector, Scored
from .raw_iforest import RawIsolationForestDetector

BASELINE = "baseline"
DEFAULT = "default"
EQUAL = "equal"
LEFT_OUT_PREFIX = "without_"
NORMAL = "normal"
TOP_SHARE = 0.01
"""The share of the validation rows an analyst would review: recall is counted within it."""
RECALL_MARGIN = 0.1
"""How far below the best single candidate's top-1 % recall of a kind a champion may fall."""
BASELINE_ROWS = 10_000
"""Training-window rows (about) the baseline forest is fitted on."""
RAW_COLUMNS = ("trans_id", "amount", "balance_after", "transaction_type", "operation", "category")
LEADERBOARD_COLUMNS = (
    "candidate",
    "average_precision",
    "recall_at_1pct",
    "per_kind",
    "meets_floor",
    "is_champion",
    "rank",
)


@dataclass(frozen=True)
class Candidate:
    """A way to score: detector weights over a fitted ensemble (with its rules), or the baseline (no weights)."""

    name: str
    weights: dict[str, float] | None

    @property
    def is_single(self) -> bool:
        """One detector alone, or the baseline: what the champion must never fall below."""
        return self.weights is None or sum(weight > 0 for weight in self.weights.values()) == 1


def candidates(weights: Mapping[str, float]) -> list[Candidate]:
    """The candidates of an ensemble with detector `weights`: the configured weights first, the baseline last, no two
    with proportional weights (the first listed is kept, so a tie in AP goes to the configured weights)."""
    names = list(weights)
    listed = [Candidate(DEFAULT, {name: float(weight) for name, weight in weights.items()})]
    listed += [Candidate(name, {other: float(other == name) for other in names}) for name in names]
    listed.append(Candidate(EQUAL, dict.fromkeys(names, 1.0)))
    for name in names:
        kept = {other: (0.0 if other == name else float(weights[other])) for other in names}
        listed.append(Candidate(f"{LEFT_OUT_PREFIX}{name}", kept))
    unique: list[Candidate] = []
    seen: set[tuple[float, ...]] = set()
    for candidate in listed:
        total = sum(candidate.weights.values()) if candidate.weights else 0.0
        if total <= 0:
            continue
        key = tuple(round(candidate.weights[name] / total, 9) for name in names)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return [*unique, Candidate(BASELINE, None)]


def candidate_weights(weights: Mapping[str, float], name: str) -> dict[str, float] | None:
    """The weights of the candidate `name` of an ensemble with `weights` (None for the baseline)."""
    for candidate in candidates(weights):
        if candidate.name == name:
            return candidate.weights
    raise ValueError(f"{name!r} is no candidate of an ensemble of {', '.join(weights)}")


def recall_at(scores: np.ndarray, positive: np.ndarray, share: float = TOP_SHARE) -> float:
    """The share of `positive` rows within the top `share` of `scores` (ties broken by row order)."""
    if not positive.any():
        return float("nan")
    top = max(1, int(np.floor(share * len(scores))))
    order = np.argsort(-scores, kind="stable")[:top]
    return float(positive[order].sum() / positive.sum())


def evaluate(scores: np.ndarray, kinds: np.ndarray) -> dict[str, object]:
    """AP and top-1 % recall of `scores` against `kinds` (NORMAL for negatives), overall and per kind."""
    kinds = np.asarray(kinds, dtype=object)
    positive = kinds != NORMAL
    top = max(1, int(np.floor(TOP_SHARE * len(scores))))
    in_top = np.zeros(len(scores), dtype=bool)
    in_top[np.argsort(-scores, kind="stable")[:top]] = True
    per_kind: dict[str, dict[str, float]] = {}
    for kind in sorted(set(kinds[positive])):
        rows = kinds == kind
        judged = rows | ~positive
        per_kind[str(kind)] = {
            "positives": int(rows.sum()),
            "recall_at_1pct": float(in_top[rows].mean()),
            "average_precision": float(average_precision_score(rows[judged], scores[judged])),
        }
    return {
        "average_precision": float(average_precision_score(positive, scores)) if positive.any() else float("nan"),
        "recall_at_1pct": float(in_top[positive].mean()) if positive.any() else float("nan"),
        "per_kind": per_kind,
    }


def leaderboard(scores: Mapping[str, np.ndarray], kinds: np.ndarray, singles: Sequence[str]) -> pd.DataFrame:
    """One row per candidate (in the order of `scores`), evaluated, with the champion rule applied (`choose`)."""
    rows = [{"candidate": name, **evaluate(values, kinds)} for name, values in scores.items()]
    board = pd.DataFrame(rows, columns=["candidate", "average_precision", "recall_at_1pct", "per_kind"])
    return choose(board, singles)


def floors(board: pd.DataFrame, singles: Sequence[str], margin: float = RECALL_MARGIN) -> dict[str, float]:
    """Per kind, the least top-1 % recall a champion needs: the best single candidate's, less `margin`."""
    single = board.loc[board["candidate"].isin(list(singles))]
    if single.empty:
        return {}
    reference = single.loc[single["average_precision"].fillna(-1.0).idxmax()]
    return {kind: metrics["recall_at_1pct"] - margin for kind, metrics in reference["per_kind"].items()}


def choose(board: pd.DataFrame, singles: Sequence[str], margin: float = RECALL_MARGIN) -> pd.DataFrame:
    """`board` with `meets_floor`, `is_champion` and `rank` (1 the champion, 2 the runner-up), ordered by rank.

    `board` has a row per candidate with `average_precision` and `per_kind` ({kind: {"recall_at_1pct": r}});
    `singles` names the single candidates. A candidate meets the floor when its recall of every kind is at
    least `floors`; the champion is the one with the highest AP among those (the earliest row on a tie), and
    the rest follow by AP, those that meet the floor first.
    """
    needed = floors(board, singles, margin)
    meets = [
        all(per_kind.get(kind, {}).get("recall_at_1pct", 0.0) >= floor - 1e-12 for kind, floor in needed.items())
        for per_kind in board["per_kind"]
    ]
    ranked = board.assign(meets_floor=meets, order=np.arange(len(board)))
    ranked = ranked.assign(ap=ranked["average_precision"].fillna(-1.0))
    ranked = ranked.sort_values(["meets_floor", "ap", "order"], ascending=[False, False, True], kind="stable")
    ranked = ranked.drop(columns=["ap", "order"]).reset_index(drop=True)
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    ranked["is_champion"] = ranked["rank"] == 1
    return ranked[list(LEADERBOARD_COLUMNS)]


def candidate_scores(
    ensemble: EnsembleDetector,
    scored: Scored,
    baseline: EnsembleDetector | None,
    frame: pd.DataFrame,
) -> dict[str, np.ndarray]:
    """Every candidate's score of the rows `scored` (the ensemble's verdict on `frame`), by candidate name.

    The ensemble candidates recombine `scored`'s evidence and rule report; `baseline` (see `baseline_ensemble`)
    scores the raw columns alone, without rules.
    """
    scores: dict[str, np.ndarray] = {}
    for candidate in candidates(ensemble.weights):
        if candidate.weights is not None:
            scores[candidate.name] = ensemble.reweighted(candidate.weights).score_evidence(
                scored.evidence, scored.rules
            )
        elif baseline is not None:
            scores[candidate.name] = baseline_evidence(baseline, frame)
    return scores


def baseline_ensemble(template: EnsembleDetector, training: pd.DataFrame, random_state: int = 0) -> EnsembleDetector:
    """`template`'s rules and settings with one detector, a plain Isolation Forest on the raw columns of `training`.

    What scores the months when the baseline is the champion (the rules stay on, as in every ensemble); its
    `baseline_evidence` alone is the baseline candidate.
    """
    forest = RawIsolationForestDetector(random_state=random_state, fit_rows=len(training)).fit(training)
    ensemble = copy.copy(template)
    ensemble.detectors = [forest]
    ensemble.weights = {forest.name: 1.0}
    ensemble.reference_evidence_ = {forest.name: forest.evidence(training)}
    ensemble.ml_calibrator_ = TailCalibrator().fit(ensemble.reference_evidence_[forest.name])
    ensemble.flagged_rate_ = None
    return ensemble


def baseline_evidence(baseline: EnsembleDetector, frame: pd.DataFrame) -> np.ndarray:
    """The baseline forest's evidence of `frame`'s rows (no rules)."""
    return baseline.detectors[0].evidence(frame)


def top_overlap(first: np.ndarray, second: np.ndarray, share: float = TOP_SHARE) -> float:
    """The share of the top `share` rows of `first` that are also in the top `share` rows of `second`."""
    if not len(first):
        return float("nan")
    top = max(1, int(np.floor(share * len(first))))
    ours = set(np.argsort(-first, kind="stable")[:top].tolist())
    theirs = set(np.argsort(-second, kind="stable")[:top].tolist())
    return len(ours & theirs) / top


def markdown(board: pd.DataFrame) -> str:
    """The leaderboard as a markdown table: candidate, AP, top-1 % recall, per-kind recall, floor and champion."""
    kinds = sorted({kind for per_kind in board["per_kind"] for kind in per_kind})
    header = ["rank", "candidate", "AP", "recall@1%", *kinds, "meets floor", "champion"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board.itertuples(index=False):
        recalls = [_number(row.per_kind.get(kind, {}).get("recall_at_1pct")) for kind in kinds]
        cells = [str(row.rank), row.candidate, _number(row.average_precision), _number(row.recall_at_1pct), *recalls]
        cells += ["yes" if row.meets_floor else "no", "**champion**" if row.is_champion else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_kind_json(per_kind: Mapping[str, Mapping[str, float]]) -> str:
    """`per_kind` as JSON text (NaN as null)."""
    return json.dumps(
        {kind: {key: _finite(value) for key, value in metrics.items()} for kind, metrics in per_kind.items()},
        sort_keys=True,
    )


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _number(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


LEADERBOARD_TABLE = f"{ANOMALY_SCHEMA}.model_leaderboard"
SHADOW_TABLE = f"{ANOMALY_SCHEMA}.shadow_comparison"
SELECTION_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {ANOMALY_SCHEMA};
CREATE TABLE IF NOT EXISTS {LEADERBOARD_TABLE} (
    month text NOT NULL,
    retrain_month date NOT NULL,
    validation_month date NOT NULL,
    model_version text NOT NULL,
    candidate text NOT NULL,
    rank bigint NOT NULL,
    average_precision double precision,
    recall_at_1pct double precision,
    per_kind jsonb NOT NULL,
    meets_floor boolean NOT NULL,
    is_champion boolean NOT NULL,
    evaluated_at timestamptz NOT NULL,
    PRIMARY KEY (month, candidate)
);
CREATE INDEX IF NOT EXISTS model_leaderboard_version_idx ON {LEADERBOARD_TABLE} (model_version, rank);
CREATE TABLE IF NOT EXISTS {SHADOW_TABLE} (
    month text PRIMARY KEY,
    model_version text NOT NULL,
    champion text NOT NULL,
    runner_up text NOT NULL,
    rows bigint NOT NULL,
    champion_flagged bigint NOT NULL,
    runner_up_flagged bigint NOT NULL,
    flagged_by_both bigint NOT NULL,
    top_overlap double precision,
    compared_at timestamptz NOT NULL DEFAULT now()
);
"""
LEADERBOARD_PARQUET_SCHEMA = pa.schema(
    [
        ("retrain_month", pa.date32()),
        ("validation_month", pa.date32()),
        ("model_version", pa.string()),
        ("candidate", pa.string()),
        ("rank", pa.int64()),
        ("average_precision", pa.float64()),
        ("recall_at_1pct", pa.float64()),
        ("per_kind", pa.string()),
        ("meets_floor", pa.bool_()),
        ("is_champion", pa.bool_()),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""`{output}/model_leaderboard/month=YYYY-MM/` (the retrain month): the columns of anomaly.model_leaderboard."""
LEADERBOARD_PUBLICATION = PublishedTable(
    name="model_leaderboard",
    postgres_table=LEADERBOARD_TABLE,
    schema=LEADERBOARD_PARQUET_SCHEMA,
    key="rank",
    select=(
        "retrain_month",
        "validation_month",
        "model_version",
        "candidate",
        "rank",
        "average_precision",
        "recall_at_1pct",
        "per_kind::text",
        "meets_floor",
        "is_champion",
        "evaluated_at",
    ),
)


def ensure_selection_tables(connection: psycopg.Connection) -> None:
    """Create `anomaly.model_leaderboard` and `anomaly.shadow_comparison` if absent (committed)."""
    _finish_implicit_transaction(connection)
    with connection.transaction():
        connection.execute(SELECTION_DDL)


def selected(connection: psycopg.Connection, model_version: str) -> tuple[str, str | None] | None:
    """The champion and runner-up that the latest leaderboard of `model_version` names; None without one."""
    if not _exists(connection, LEADERBOARD_TABLE):
        return None
    rows = connection.execute(
        sql.SQL(
            "SELECT candidate FROM {} WHERE model_version = %s AND month = "
            "(SELECT max(month) FROM {} WHERE model_version = %s) AND rank <= 2 ORDER BY rank"
        ).format(_identifier(LEADERBOARD_TABLE), _identifier(LEADERBOARD_TABLE)),
        (model_version, model_version),
    ).fetchall()
    if not rows:
        return None
    return str(rows[0][0]), (str(rows[1][0]) if len(rows) > 1 else None)


def record_shadow(connection: psycopg.Connection, month: str, comparison: Mapping[str, object]) -> None:
    """Replace `month`'s row of `anomaly.shadow_comparison` with `comparison` (its columns but month)."""
    columns = ["month", *comparison]
    _finish_implicit_transaction(connection)
    with connection.transaction():
        connection.execute(SELECTION_DDL)
        connection.execute(sql.SQL("DELETE FROM {} WHERE month = %s").format(_identifier(SHADOW_TABLE)), (month,))
        connection.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                _identifier(SHADOW_TABLE),
                sql.SQL(", ").join(sql.Identifier(column) for column in columns),
                sql.SQL(", ").join(sql.Placeholder() for _ in columns),
            ),
            [month, *comparison.values()],
        )


def flagged(
    scores: np.ndarray, threshold: float, alert_budget: float, evidence: np.ndarray | None = None
) -> np.ndarray:
    """The alerts of one month's scores as the ensemble raises them: at or above `threshold`, at most `alert_budget`;
    among equal scores the most `evidence` (the detectors' combined evidence) first, then the first rows."""
    above = np.flatnonzero(scores >= threshold)
    budget = max(1, int(np.floor(alert_budget * len(scores))))
    ties = -evidence[above] if evidence is not None else np.zeros(len(above))
    kept = above[np.lexsort((above, ties, -scores[above]))[:budget]]
    alerts = np.zeros(len(scores), dtype=bool)
    alerts[kept] = True
    return alerts


def _finish_implicit_transaction(connection: psycopg.Connection) -> None:
    """Commit what earlier reads left open, so that the next `connection.transaction()` block commits."""
    if connection.info.transaction_status == TransactionStatus.INTRANS:
        connection.commit()


def _identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))


def _exists(connection: psycopg.Connection, table: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def baseline_training(connection: psycopg.Connection, first: date, last: date) -> pd.DataFrame:
    """About BASELINE_ROWS rows of the raw columns dated first..last: every n-th trans_id, the same rows each time."""
    count = connection.execute(
        f"SELECT count(*) FROM {FEATURES_TABLE} WHERE trans_date >= %s AND trans_date <= %s",  # noqa: S608 - module constant, values as parameters
        (first, last),
    ).fetchone()
    step = max(1, int(np.ceil((count[0] if count else 0) / BASELINE_ROWS)))
    return read_query(
        connection,
        f"SELECT {', '.join(RAW_COLUMNS)} FROM {FEATURES_TABLE} "  # noqa: S608 - module constants, values as parameters
        "WHERE trans_date >= %s AND trans_date <= %s AND trans_id %% %s = 0 ORDER BY trans_id",
        (first, last, step),
    )
