"""`ads alerts`: the flagged transactions of `anomaly.transaction_scores`, with their reasons and triage status.

The rows are read with one parameterized query (values never become SQL text); the amount and kind come from
`marts.fct_transaction_features` when it exists. The status is the analyst's label in `anomaly.labels`
(`confirmed` or `false positive`), else `labelled <kind>` when the source's `labels.csv` names the
transaction, else `new`.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from ads_assets.lib.berka.writers import LABELS_FILE
from ads_assets.lib.tables import ensure_anomaly_schema
from ads_assets.settings import SettingsError

SCORES = ("anomaly", "transaction_scores")
FEATURES = ("marts", "fct_transaction_features")
ANALYST_LABELS = ("anomaly", "labels")
LABEL_STATUS = {"confirmed": "confirmed", "false_positive": "false positive"}
"""The status an analyst's label in `anomaly.labels` gives."""
DEFAULT_TOP = 50
NO_SCORES = "no scores yet: run ads run first"
INJECTION_PREFIXES = ("=", "+", "-", "@")
"""A spreadsheet reads a text cell that begins with one of these (after blanks) as a formula (OWASP CSV injection)."""
SHOWN_COLUMNS = ("month", "trans_id", "account", "date", "amount", "kind", "score", "status", "reason")
EXPORT_COLUMNS = (
    "month",
    "trans_id",
    "account_id",
    "trans_date",
    "amount",
    "kind",
    "score",
    "status",
    "sentence",
    "rule_hits",
    "detector_scores",
    "reasons",
    "model_version",
    "scored_at",
)


@dataclass(frozen=True)
class AlertFilter:
    """Which flagged transactions to show: one month and one account when given, the `top` highest scores."""

    month: str | None = None
    account_id: int | None = None
    top: int = DEFAULT_TOP

    def describe(self) -> str:
        """The filter in words, e.g. `in 1997-03 for account 7` (empty without month and account)."""
        parts = ([f"in {self.month}"] if self.month else []) + (
            [f"for account {self.account_id}"] if self.account_id is not None else []
        )
        return " ".join(parts)


@dataclass(frozen=True)
class Alert:
    """One flagged transaction: its score row, its amount and kind (None without features) and its status."""

    month: str
    trans_id: int
    account_id: int
    trans_date: date
    amount: Decimal | None
    kind: str | None
    score: float
    status: str
    sentence: str
    rule_hits: tuple[str, ...]
    detector_scores: str
    reasons: str | None
    model_version: str
    scored_at: datetime

    def shown(self) -> tuple[str, ...]:
        """The cells of the terminal line, in SHOWN_COLUMNS order."""
        return (
            self.month,
            str(self.trans_id),
            str(self.account_id),
            self.trans_date.isoformat(),
            "" if self.amount is None else f"{self.amount:,.2f}",
            self.kind or "",
            f"{self.score:.3f}",
            self.status,
            _one_line(self.sentence),
        )

    def exported(self) -> tuple[object, ...]:
        """The cells of the CSV row, in EXPORT_COLUMNS order; numbers stay numbers."""
        return (
            self.month,
            self.trans_id,
            self.account_id,
            self.trans_date.isoformat(),
            self.amount,
            self.kind,
            self.score,
            self.status,
            self.sentence,
            json.dumps(list(self.rule_hits)),
            self.detector_scores,
            self.reasons,
            self.model_version,
            self.scored_at.isoformat(),
        )


def _exists(connection: psycopg.Connection, table: tuple[str, str]) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (".".join(table),)).fetchone()
    return bool(row and row[0])


def alerts_query(selection: AlertFilter, with_features: bool, with_labels: bool) -> tuple[sql.Composed, list[object]]:
    """The query of the flagged rows and its parameters; the features and labels tables are joined when they exist."""
    features = (
        sql.SQL("f.signed_amount, f.transaction_kind")
        if with_features
        else sql.SQL("NULL::numeric AS signed_amount, NULL::text AS transaction_kind")
    )
    label = sql.SQL("l.label") if with_labels else sql.SQL("NULL::text")
    joins = []
    if with_features:
        joins.append(sql.SQL("LEFT JOIN {} AS f ON f.trans_id = s.trans_id").format(sql.Identifier(*FEATURES)))
    if with_labels:
        joins.append(sql.SQL("LEFT JOIN {} AS l ON l.trans_id = s.trans_id").format(sql.Identifier(*ANALYST_LABELS)))
    conditions = [sql.SQL("s.is_anomaly")]
    params: list[object] = []
    if selection.month is not None:
        conditions.append(sql.SQL("s.month = %s"))
        params.append(selection.month)
    if selection.account_id is not None:
        conditions.append(sql.SQL("s.account_id = %s"))
        params.append(selection.account_id)
    params.append(selection.top)
    query = sql.SQL(
        "SELECT s.month, s.trans_id, s.account_id, s.trans_date, {features}, s.score, {label}, "
        "s.rule_hits, s.detector_scores::text, s.reasons::text, s.model_version, s.scored_at "
        "FROM {scores} AS s {joins} WHERE {conditions} ORDER BY s.score DESC, s.trans_id LIMIT %s"
    ).format(
        features=features,
        label=label,
        scores=sql.Identifier(*SCORES),
        joins=sql.SQL(" ").join(joins),
        conditions=sql.SQL(" AND ").join(conditions),
    )
    return query, params


def read_labels(source: str | None) -> dict[int, str]:
    """trans_id → kind from `labels.csv` in the source folder (empty when the source is no folder or has none)."""
    if not source or "://" in source:
        return {}
    path = Path(source) / LABELS_FILE
    if not path.is_file():
        return {}
    labels: dict[int, str] = {}
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            trans_id = (row.get("trans_id") or "").strip()
            if trans_id.isdigit():
                labels[int(trans_id)] = (row.get("kind") or "").strip()
    return labels


def sentence(reasons: str | None) -> str:
    """The `sentence` of a reasons JSON document, or an empty string."""
    if not reasons:
        return ""
    try:
        document = json.loads(reasons)
    except ValueError:
        return ""
    value = document.get("sentence") if isinstance(document, dict) else None
    return value if isinstance(value, str) else ""


def fetch_alerts(connection: psycopg.Connection, selection: AlertFilter, labels: dict[int, str]) -> list[Alert]:
    """The flagged transactions that `selection` picks, highest score first; SettingsError when nothing is scored.

    The anomaly tables are brought up to date first, so labels of the legacy `anomaly.confirmed_anomalies` count.
    """
    if not _exists(connection, SCORES):
        raise SettingsError(NO_SCORES)
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
    query, params = alerts_query(selection, _exists(connection, FEATURES), _exists(connection, ANALYST_LABELS))
    alerts = []
    for row in connection.execute(query, params).fetchall():
        (month, trans_id, account_id, trans_date, amount, kind, score, label, hits, detectors, reasons) = row[:11]
        if label in LABEL_STATUS:
            status = LABEL_STATUS[label]
        elif trans_id in labels:
            status = f"labelled {labels[trans_id]}".rstrip()
        else:
            status = "new"
        alerts.append(
            Alert(
                month=month,
                trans_id=trans_id,
                account_id=account_id,
                trans_date=trans_date,
                amount=amount,
                kind=kind,
                score=score,
                status=status,
                sentence=sentence(reasons),
                rule_hits=tuple(hits or ()),
                detector_scores=detectors,
                reasons=reasons,
                model_version=row[11],
                scored_at=row[12],
            )
        )
    return alerts


def _one_line(text: str) -> str:
    return " ".join("".join(character if character.isprintable() else " " for character in text).split())


def render(alerts: Sequence[Alert], width: int | None = None) -> list[str]:
    """A header and one aligned line per alert; each line cut to `width` characters when given."""
    rows = [SHOWN_COLUMNS, *(alert.shown() for alert in alerts)]
    widths = [max(len(row[index]) for row in rows) for index in range(len(SHOWN_COLUMNS) - 1)]
    numeric = {"trans_id", "account", "amount", "score"}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(size) if name in numeric else cell.ljust(size)
            for name, cell, size in zip(SHOWN_COLUMNS, row, widths, strict=False)
        ]
        line = "  ".join([*cells, row[-1]]).rstrip()
        if width is not None and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line)
    return lines


def print_alerts(alerts: Sequence[Alert], out: TextIO) -> None:
    """Write the rendered alerts to `out`, cut to the terminal's width only when `out` is a terminal."""
    width = shutil.get_terminal_size().columns if out.isatty() else None
    for line in render(alerts, width):
        out.write(line + "\n")


def neutralized(cell: object) -> object:
    """`cell` for a spreadsheet: numbers unchanged, None empty, text starting with a formula character prefixed `'`."""
    if cell is None:
        return ""
    if isinstance(cell, int | float | Decimal) and not isinstance(cell, bool):
        return cell
    text = str(cell)
    if text.lstrip().startswith(INJECTION_PREFIXES) or text.startswith(("\t", "\r")):
        return "'" + text
    return text


def export_alerts(alerts: Iterable[Alert], path: Path) -> int:
    """Write the alerts with every column to the CSV file `path`, text cells neutralized; returns the rows written."""
    written = 0
    try:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(EXPORT_COLUMNS)
            for alert in alerts:
                writer.writerow([neutralized(cell) for cell in alert.exported()])
                written += 1
    except OSError as error:
        raise SettingsError(f"cannot write {path}: {error.strerror or error}") from None
    return written
