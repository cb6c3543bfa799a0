"""Analyst labels: one verdict per transaction, `confirmed` or `false_positive`, kept in `anomaly.labels`.

Labels come one at a time (`ads label TRANS_ID LABEL`), as a CSV file with the columns `trans_id,label[,note]`
(`ads label --file F`), or as the CSV files of the labels inbox (`ADS_LABELS`, default `$ADS_HOME/labels/`)
that the `anomaly/labels` asset takes before training. A file is applied all or nothing, in one transaction:
a bad line (a malformed id, an unknown transaction, a label that is neither value, a transaction named twice)
refuses the whole file and is reported with its line number. A new label for a transaction replaces its old one.
A transaction is known when it is in the feature mart, or in the raw transactions before the mart is built.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import os
import re
import shutil
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ads_assets.lib.berka.schema import RELATIONS
from ads_assets.lib.raw_schema import raw_table
from ads_assets.lib.security import audit
from ads_assets.lib.tables import FEATURES_TABLE, LABEL_FILES_TABLE, LABEL_VALUES, LABELS_TABLE, ensure_anomaly_schema
from ads_assets.settings import Settings, SettingsError

LABELS_VARIABLE = "ADS_LABELS"
DEFAULT_INBOX = "labels"
PROCESSED = "processed"
FAILED = "failed"
REQUIRED_COLUMNS = ("trans_id", "label")
FILE_COLUMNS = (*REQUIRED_COLUMNS, "note")
TRANSACTIONS_TABLE = raw_table(RELATIONS["trans"])
NO_TRANSACTIONS = "no transactions loaded yet: run ads run first"
TRANS_ID = re.compile(r"[0-9]{1,18}")
"""A transaction id as a file writes it: ASCII digits, within Postgres bigint."""


@dataclass(frozen=True)
class Label:
    """One analyst verdict on a transaction, with the line of the file it came from (None from the command line)."""

    trans_id: int
    label: str
    note: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class BadLine:
    """A line of a labels file that cannot be applied, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class LabelsRefused(SettingsError):
    """Labels refused as a whole, nothing applied; `bad_lines` say why, line by line."""

    def __init__(self, source: str, bad_lines: Sequence[BadLine]) -> None:
        self.source = source
        self.bad_lines = list(bad_lines)
        count = len(self.bad_lines)
        super().__init__(f"{source}: {count} bad line{'' if count == 1 else 's'}, nothing applied")

    def lines(self) -> list[str]:
        """One `<source> line N: reason` per bad line."""
        return [f"{self.source} {bad}" for bad in self.bad_lines]


@dataclass(frozen=True)
class Applied:
    """How many labels a command or a file added (the transaction had none) and replaced."""

    added: int = 0
    replaced: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(self.added + other.added, self.replaced + other.replaced)


@dataclass
class InboxReport:
    """What one pass over the labels inbox did: files applied, failed and already taken, labels added and replaced."""

    folder: Path
    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    already_taken: list[str] = field(default_factory=list)
    labels: Applied = field(default_factory=Applied)
    total: int = 0
    """The labels in `anomaly.labels` after the pass."""


def labeller() -> str:
    """The OS user, who a label is by unless `--by` says otherwise."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def labels_inbox(settings: Settings | None = None) -> Path:
    """The folder of label files that the `anomaly/labels` asset takes: `ADS_LABELS`, else `$ADS_HOME/labels/`."""
    configured = os.environ.get(LABELS_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    return (settings or Settings.from_env()).home / DEFAULT_INBOX


def normalized_label(text: str) -> str | None:
    """`confirmed` or `false_positive` from the text (blanks and case ignored), else None."""
    value = text.strip().lower()
    return value if value in LABEL_VALUES else None


def parse_labels(text: str) -> tuple[list[Label], list[BadLine]]:
    """The labels of a CSV text with the columns `trans_id,label[,note]`, and the lines that are malformed."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in reader.fieldnames or ()]
    except csv.Error as error:
        return [], [BadLine(reader.line_num, f"not CSV: {error}")]
    known = all(name in FILE_COLUMNS for name in header) and len(set(header)) == len(header)
    if not known or any(name not in header for name in REQUIRED_COLUMNS):
        return [], [BadLine(1, f"expected the columns trans_id,label[,note], found {','.join(header) or 'nothing'}")]
    reader.fieldnames = header
    labels: list[Label] = []
    bad: list[BadLine] = []
    first_line: dict[int, int] = {}
    for line, row in _numbered_rows(reader, bad):
        parsed = _parse_row(row, line, len(header), first_line)
        if isinstance(parsed, BadLine):
            bad.append(parsed)
        else:
            first_line[parsed.trans_id] = line
            labels.append(parsed)
    return labels, bad


def _numbered_rows(reader: csv.DictReader, bad: list[BadLine]) -> Iterator[tuple[int, dict]]:
    """The rows of `reader` with the line each ends on; unreadable CSV ends them with a bad line."""
    rows = iter(reader)
    while True:
        previous = reader.line_num
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            bad.append(BadLine(previous + 1, f"not CSV: {error}"))
            return
        yield reader.line_num, row


def _parse_row(row: dict, line: int, columns: int, first_line: dict[int, int]) -> Label | BadLine:
    if None in row:
        return BadLine(line, f"{columns + len(row[None])} fields, the header has {columns}")
    trans_id_text = (row["trans_id"] or "").strip()
    trans_id = int(trans_id_text) if TRANS_ID.fullmatch(trans_id_text) else None
    label_text = (row["label"] or "").strip()
    label = normalized_label(label_text)
    if trans_id is None:
        return BadLine(line, f"trans_id {trans_id_text!r} is not a transaction id")
    if label is None:
        return BadLine(line, f"label {label_text!r} is neither {' nor '.join(LABEL_VALUES)}")
    if trans_id in first_line:
        return BadLine(line, f"transaction {trans_id} is labelled on line {first_line[trans_id]} too")
    return Label(trans_id, label, (row.get("note") or "").strip() or None, line)


def unknown_ids(connection: psycopg.Connection, trans_ids: Collection[int]) -> set[int]:
    """The ids among `trans_ids` that name no transaction of the feature mart (or of the raw transactions
    before the mart exists); SettingsError when neither table exists."""
    table = next((name for name in (FEATURES_TABLE, TRANSACTIONS_TABLE) if _exists(connection, name)), None)
    if table is None:
        raise SettingsError(NO_TRANSACTIONS)
    wanted = sorted(set(trans_ids))
    query = sql.SQL("SELECT trans_id FROM {} WHERE trans_id = ANY(%s)").format(_identifier(table))
    known = {int(row[0]) for row in connection.execute(query, (wanted,)).fetchall()}
    return set(wanted) - known


def check_labels(connection: psycopg.Connection, labels: Sequence[Label]) -> list[BadLine]:
    """A bad line for each label whose transaction is unknown."""
    unknown = unknown_ids(connection, [label.trans_id for label in labels]) if labels else set()
    return [
        BadLine(label.line or 0, f"unknown transaction {label.trans_id}")
        for label in labels
        if label.trans_id in unknown
    ]


def apply_labels(
    connection: psycopg.Connection, labels: Sequence[Label], by: str, source: str = "command line"
) -> Applied:
    """Write `labels` into `anomaly.labels` in one transaction, replacing earlier labels of the same transactions,
    and record it in `ops.audit` (action `label`: by, source, counts and transactions) in the same transaction."""
    trans_ids = [label.trans_id for label in labels]
    table = _identifier(LABELS_TABLE)
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        cursor.execute(
            sql.SQL("SELECT trans_id FROM {} WHERE trans_id = ANY(%s) FOR UPDATE").format(table), (trans_ids,)
        )
        replaced = len(cursor.fetchall())
        cursor.executemany(
            sql.SQL(
                "INSERT INTO {} (trans_id, label, note, by, at) VALUES (%s, %s, %s, %s, now()) "
                "ON CONFLICT (trans_id) DO UPDATE SET label = EXCLUDED.label, note = EXCLUDED.note, "
                "by = EXCLUDED.by, at = EXCLUDED.at"
            ).format(table),
            [(label.trans_id, label.label, label.note, by) for label in labels],
        )
        applied = Applied(added=len(set(trans_ids)) - replaced, replaced=replaced)
        audit.record(
            cursor,
            audit.LABEL,
            by,
            {
                "source": source,
                "added": applied.added,
                "replaced": applied.replaced,
                "trans_ids": sorted(set(trans_ids)),
            },
        )
    return applied


def label_transaction(connection: psycopg.Connection, trans_id: int, label: str, note: str | None, by: str) -> Applied:
    """Label one transaction; SettingsError when the label is neither value or the transaction is unknown."""
    value = normalized_label(label)
    if value is None:
        raise SettingsError(f"label {label!r} is neither {' nor '.join(LABEL_VALUES)}")
    if unknown_ids(connection, [trans_id]):
        raise SettingsError(f"unknown transaction {trans_id}")
    return apply_labels(connection, [Label(trans_id, value, (note or "").strip() or None)], by)


def label_file(connection: psycopg.Connection, path: Path, by: str) -> Applied:
    """Apply the labels file at `path` all or nothing; LabelsRefused, naming every bad line, when any line is bad."""
    return _apply_text(connection, _read_text(path), str(path), by)


def take_inbox(connection: psycopg.Connection, folder: Path, by: str) -> InboxReport:
    """Apply every `*.csv` of `folder` (in name order), each file all or nothing and each content once.

    An applied file is recorded by its sha256 in `anomaly.label_files` (in the labels' own transaction),
    committed, then moved to `processed/`; a file whose content was applied before goes there untouched. A
    refused file goes to `failed/` with `<name>.reason.txt` saying why, line by line; moved back into the
    folder, it is tried again.
    """
    report = InboxReport(folder)
    files = sorted(path for path in folder.glob("*.csv") if path.is_file()) if folder.is_dir() else []
    for path in files:
        content = path.read_bytes()
        sha256 = hashlib.sha256(content).hexdigest()
        if _taken(connection, sha256):
            report.already_taken.append(path.name)
            _move(path, folder / PROCESSED, sha256)
            continue
        try:
            applied = _apply_text(connection, _decoded(content, path.name), path.name, by, (sha256, path.name))
        except LabelsRefused as refused:
            reason = "\n".join([str(refused), *refused.lines()]) + "\n"
        except SettingsError as error:
            reason = f"{path.name}: {error}\n"
        else:
            connection.commit()
            report.applied.append(path.name)
            report.labels += applied
            _move(path, folder / PROCESSED, sha256)
            continue
        report.failed[path.name] = reason
        moved = _move(path, folder / FAILED, sha256)
        moved.with_name(f"{moved.name}.reason.txt").write_text(reason, encoding="utf-8")
    report.total = label_count(connection)
    return report


def label_count(connection: psycopg.Connection) -> int:
    """The labels in `anomaly.labels`."""
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        row = cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(_identifier(LABELS_TABLE))).fetchone()
    return int(row[0]) if row else 0


def _apply_text(
    connection: psycopg.Connection, text: str, source: str, by: str, taken: tuple[str, str] | None = None
) -> Applied:
    labels, bad = parse_labels(text)
    with connection.transaction():
        bad += check_labels(connection, labels)
        if bad:
            raise LabelsRefused(source, sorted(bad, key=lambda line: line.line))
        applied = apply_labels(connection, labels, by, source)
        if taken is not None:
            connection.execute(
                sql.SQL("INSERT INTO {} (sha256, file_name, labels, by) VALUES (%s, %s, %s, %s)").format(
                    _identifier(LABEL_FILES_TABLE)
                ),
                (*taken, len(labels), by),
            )
    return applied


def _read_text(path: Path) -> str:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror or error}") from None
    return _decoded(content, str(path))


def _decoded(content: bytes, source: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LabelsRefused(source, [BadLine(content[: error.start].count(b"\n") + 1, "not UTF-8 text")]) from None


def _taken(connection: psycopg.Connection, sha256: str) -> bool:
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        query = sql.SQL("SELECT 1 FROM {} WHERE sha256 = %s").format(_identifier(LABEL_FILES_TABLE))
        return cursor.execute(query, (sha256,)).fetchone() is not None


def _move(path: Path, folder: Path, sha256: str) -> Path:
    """Move `path` into `folder`, named `<stem>.<sha256 prefix><suffix>` when its name is taken there."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{sha256[:12]}{path.suffix}"
    return Path(shutil.move(path, target))


def _exists(connection: psycopg.Connection, name: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))
