"""Load one Berka relation from a source into `raw`: COPY the good rows, quarantine the bad, audit, reconcile.

Besides what the reader rejects, a row is quarantined when a date of it lies outside the plausible window
(before ADS_PLAUSIBLE_FROM, by default the earliest account's opening, or after today), when it repeats a
key, or when it points at no parent row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from ads_assets.lib.berka.formats import ParsedRow, SourceError, SourceFile, read_rows
from ads_assets.lib.berka.schema import RELATIONS, ColumnType, Relation
from ads_assets.lib.db import copy_rows, table_count
from ads_assets.lib.raw_schema import LOAD_AUDIT_TABLE, QUARANTINE_TABLE, ensure_raw_schema, raw_table
from ads_assets.settings import PLAUSIBLE_FROM_VARIABLE, plausible_from_env

FULL_LOAD = "all"
APPEND = "append"
"""The `window` of a load that adds a batch of rows to those loaded."""


class ReconciliationError(RuntimeError):
    """Rows read differ from rows accepted plus rows quarantined."""


@dataclass(frozen=True)
class MonthWindow:
    """Months [start, end) of a partitioned load."""

    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"

    def __contains__(self, day: date) -> bool:
        return self.start <= day < self.end


@dataclass(frozen=True)
class PlausibleWindow:
    """The dates a row may carry, both ends included: from `start` (None: no lower bound) to `end` (today).

    `origin` says where `start` comes from: ADS_PLAUSIBLE_FROM, the earliest account's opening, or nowhere.
    """

    start: date | None
    end: date
    origin: str

    @property
    def label(self) -> str:
        return f"{self.start or '…'}..{self.end}"

    def reason(self, day: date, column: str) -> str:
        """Why `day`, a value of `column` outside the window, is not plausible."""
        if day > self.end:
            if self.end >= date.today():
                return f"date {day} in column {column} is in the future (after {self.end})"
            return f"date {day} in column {column} is after {self.end}, the end of the plausible window"
        return (
            f"date {day} in column {column} is before {self.start}, the start of the plausible window ({self.origin})"
        )


ORIGIN_SETTING = f"set by {PLAUSIBLE_FROM_VARIABLE}"
ORIGIN_ACCOUNTS = "the earliest account's opening"
ORIGIN_NONE = "no account to start from"


def plausible_window(accounts: SourceFile | None = None, today: date | None = None) -> PlausibleWindow:
    """The plausible window: from ADS_PLAUSIBLE_FROM when set, else from the earliest opening date of the
    readable `accounts` rows up to today (no start without them), to `today` (the current date)."""
    end = today or date.today()
    start = plausible_from_env()
    if start is not None:
        return PlausibleWindow(start, end, ORIGIN_SETTING)
    if accounts is None:
        return PlausibleWindow(None, end, ORIGIN_NONE)
    index = RELATIONS["account"].column_names.index("date")
    openings = [row.values[index] for row in read_rows(accounts) if row.values is not None]
    earliest = min((day for day in openings if day <= end), default=None)
    return PlausibleWindow(earliest, end, ORIGIN_ACCOUNTS if earliest else ORIGIN_NONE)


@dataclass(frozen=True)
class TransactionSpan:
    """The first and last month (YYYY-MM) of a source's readable transactions inside the plausible window,
    and the readable transactions left out as outside it (their count and their earliest and latest date)."""

    first: str
    last: str
    plausible: PlausibleWindow
    rows_outside: int = 0
    earliest_outside: date | None = None
    latest_outside: date | None = None

    @property
    def months(self) -> tuple[str, str]:
        return self.first, self.last


@dataclass
class LoadReport:
    """What one load read, accepted, quarantined and skipped as outside its window."""

    relation: str
    source_file: str
    sha256: str
    window: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    rows_outside_window: int = 0
    plausible_window: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_quarantined


@dataclass(frozen=True)
class Quarantined:
    line_number: int
    raw_line: str
    reason: str


class _RowScreen:
    """Checks beyond one field: dates outside the plausible window, duplicate keys within the source and keys
    that point at no parent row."""

    def __init__(
        self,
        relation: Relation,
        parent_keys: dict[str, set[Any]],
        plausible: PlausibleWindow,
        loaded_keys: frozenset[Any] | set[Any] = frozenset(),
    ):
        self.relation = relation
        self.loaded_keys = loaded_keys
        self.plausible = plausible
        self.first_day = plausible.start or date.min
        self.last_day = plausible.end
        self.dates = [
            (index, column.name) for index, column in enumerate(relation.columns) if column.type == ColumnType.DATE
        ]
        self.key_index = relation.column_names.index(relation.key)
        self.parent_checks = [
            (relation.column_names.index(column), column, parent, parent_keys[parent])
            for column, parent in relation.parents
        ]
        self.first_line_of: dict[Any, int] = {}

    def reason(self, row: ParsedRow) -> str | None:
        values = row.values
        assert values is not None  # noqa: S101 - narrows the type: _accepted_rows calls this only for rows with values
        for index, column in self.dates:
            day = values[index]
            if day is not None and not self.first_day <= day <= self.last_day:
                return self.plausible.reason(day, column)
        key = values[self.key_index]
        if key in self.loaded_keys:
            return f"{self.relation.key} {key} already loaded"
        first_line = self.first_line_of.setdefault(key, row.line_number)
        if first_line != row.line_number:
            return f"duplicate {self.relation.key} {key} (first at line {first_line})"
        for index, column, parent, known in self.parent_checks:
            if values[index] not in known:
                return f"orphan: {column} {values[index]} not in {parent}"
        return None


def load_relation(
    connection: psycopg.Connection,
    source: SourceFile,
    window: MonthWindow | None = None,
    plausible: PlausibleWindow | None = None,
    append: bool = False,
) -> LoadReport:
    """Replace the relation's rows (or the window's, for a partitioned relation) with the source's.

    With `append`, the source's rows are added to those loaded and nothing is replaced: a row whose key is
    already loaded is quarantined ("already loaded"), as a batch of new transactions from the inbox is.

    Rows dated outside `plausible` are quarantined; by default the window starts at ADS_PLAUSIBLE_FROM, else
    at the earliest opening in `raw.fin_account` (accounts themselves get no start), and ends today.
    Runs in one transaction: the load either reconciles and commits, or raises and leaves nothing.
    """
    relation = RELATIONS[source.relation]
    if window is not None and relation.partition_column is None:
        raise ValueError(f"{relation.name} is not partitioned; it loads whole")
    report = LoadReport(
        relation=relation.name,
        source_file=source.location,
        sha256=source.sha256(),
        window=APPEND if append else (window.label if window else FULL_LOAD),
    )
    quarantined: list[Quarantined] = []
    with connection.transaction(), connection.cursor() as cursor:
        ensure_raw_schema(cursor)
        plausible = plausible or _loaded_plausible_window(cursor, relation)
        report.plausible_window = plausible.label
        loaded = _loaded_keys(cursor, relation) if append else frozenset()
        screen = _RowScreen(relation, _parent_keys(cursor, relation), plausible, loaded)
        if not append:
            _delete_window(cursor, relation, window)
        accepted = _accepted_rows(read_rows(source), relation, screen, window, report, quarantined)
        written = copy_rows(cursor, raw_table(relation), relation.column_names, accepted)
        _write_quarantine(cursor, report, quarantined)
        report.rows_accepted = written if append else _window_count(cursor, relation, window)
        report.rows_quarantined = table_count(
            cursor, QUARANTINE_TABLE, "WHERE relation = %s AND source_sha256 = %s", (relation.name, report.sha256)
        )
        report.finished_at = datetime.now(UTC)
        if not report.reconciles:
            raise ReconciliationError(
                f"{relation.name} from {source.location}: read {report.rows_read} rows but accepted "
                f"{report.rows_accepted} and quarantined {report.rows_quarantined}"
            )
        _write_audit(cursor, report)
    return report


def _accepted_rows(
    rows: Iterator[ParsedRow],
    relation: Relation,
    screen: _RowScreen,
    window: MonthWindow | None,
    report: LoadReport,
    quarantined: list[Quarantined],
) -> Iterator[tuple]:
    partition_index = relation.column_names.index(relation.partition_column) if window else -1
    for row in rows:
        report.rows_read += 1
        reason = row.reason if row.values is None else screen.reason(row)
        if reason is not None:
            quarantined.append(Quarantined(row.line_number, row.raw_line, reason))
        elif window is not None and row.values[partition_index] not in window:
            report.rows_read -= 1
            report.rows_outside_window += 1
        else:
            yield row.values


def _loaded_plausible_window(cursor: psycopg.Cursor, relation: Relation) -> PlausibleWindow:
    end = date.today()
    start = plausible_from_env()
    if start is not None:
        return PlausibleWindow(start, end, ORIGIN_SETTING)
    if relation.name == "account" or all(column.type != ColumnType.DATE for column in relation.columns):
        return PlausibleWindow(None, end, ORIGIN_NONE)
    cursor.execute(f"SELECT min(date) FROM {raw_table(RELATIONS['account'])} WHERE date <= %s", (end,))  # noqa: S608 - table names are module constants, values go as parameters
    earliest = cursor.fetchone()[0]
    return PlausibleWindow(earliest, end, ORIGIN_ACCOUNTS if earliest else ORIGIN_NONE)


def _parent_keys(cursor: psycopg.Cursor, relation: Relation) -> dict[str, set[Any]]:
    keys: dict[str, set[Any]] = {}
    for _, parent_name in relation.parents:
        parent = RELATIONS[parent_name]
        cursor.execute(f"SELECT {parent.key} FROM {raw_table(parent)}")  # noqa: S608 - table names are module constants, values go as parameters
        keys[parent_name] = {row[0] for row in cursor.fetchall()}
    return keys


def _loaded_keys(cursor: psycopg.Cursor, relation: Relation) -> set[Any]:
    cursor.execute(f"SELECT {relation.key} FROM {raw_table(relation)}")  # noqa: S608 - identifiers from the RELATIONS constants
    return {row[0] for row in cursor.fetchall()}


def _window_filter(relation: Relation, window: MonthWindow | None) -> tuple[str, tuple]:
    if window is None:
        return "", ()
    column = relation.partition_column
    return f"WHERE {column} >= %s AND {column} < %s", (window.start, window.end)


def _window_count(cursor: psycopg.Cursor, relation: Relation, window: MonthWindow | None) -> int:
    where, params = _window_filter(relation, window)
    return table_count(cursor, raw_table(relation), where, params)


def _delete_window(cursor: psycopg.Cursor, relation: Relation, window: MonthWindow | None) -> None:
    where, params = _window_filter(relation, window)
    cursor.execute(f"DELETE FROM {raw_table(relation)} {where}", params)  # noqa: S608 - table names are module constants, values go as parameters


def _write_quarantine(cursor: psycopg.Cursor, report: LoadReport, rows: list[Quarantined]) -> None:
    cursor.executemany(
        f"INSERT INTO {QUARANTINE_TABLE} (relation, source_file, source_sha256, line_number, raw_line, reason) "  # noqa: S608 - table names are module constants, values go as parameters
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (relation, source_sha256, line_number) DO NOTHING",
        [
            (
                report.relation,
                report.source_file,
                report.sha256,
                row.line_number,
                row.raw_line.replace("\x00", "\\x00"),
                row.reason,
            )
            for row in rows
        ],
    )


def _write_audit(cursor: psycopg.Cursor, report: LoadReport) -> None:
    cursor.execute(
        f"INSERT INTO {LOAD_AUDIT_TABLE} (relation, source_file, source_sha256, partition_window, rows_read, "  # noqa: S608 - table names are module constants, values go as parameters
        "rows_accepted, rows_quarantined, rows_outside_window, started_at, finished_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (relation, source_sha256, partition_window) DO UPDATE SET "
        "source_file = EXCLUDED.source_file, rows_read = EXCLUDED.rows_read, "
        "rows_accepted = EXCLUDED.rows_accepted, rows_quarantined = EXCLUDED.rows_quarantined, "
        "rows_outside_window = EXCLUDED.rows_outside_window, started_at = EXCLUDED.started_at, "
        "finished_at = EXCLUDED.finished_at",
        (
            report.relation,
            report.source_file,
            report.sha256,
            report.window,
            report.rows_read,
            report.rows_accepted,
            report.rows_quarantined,
            report.rows_outside_window,
            report.started_at,
            report.finished_at,
        ),
    )


def transaction_span(source: SourceFile, plausible: PlausibleWindow) -> TransactionSpan:
    """The months of the partitioned relation's readable rows dated inside `plausible`, and the rows outside it.

    Raises SourceError (one line naming the file) when no readable row is dated inside the window.
    """
    relation = RELATIONS[source.relation]
    if relation.partition_column is None:
        raise ValueError(f"{relation.name} has no months")
    index = relation.column_names.index(relation.partition_column)
    days = [row.values[index] for row in read_rows(source) if row.values is not None]
    low, high = plausible.start or date.min, plausible.end
    inside = [day for day in days if low <= day <= high]
    if not inside:
        if days:
            raise SourceError(
                f"{source.location}: all {len(days):,} readable {relation.name} rows are dated outside the plausible "
                f"window {plausible.label} (start: {plausible.origin}); {PLAUSIBLE_FROM_VARIABLE} sets its start"
            )
        raise SourceError(f"{source.location} holds no readable {relation.name} rows")
    outside = [day for day in days if not low <= day <= high] if len(inside) < len(days) else []
    return TransactionSpan(
        first=f"{min(inside):%Y-%m}",
        last=f"{max(inside):%Y-%m}",
        plausible=plausible,
        rows_outside=len(outside),
        earliest_outside=min(outside, default=None),
        latest_outside=max(outside, default=None),
    )


def month_span(source: SourceFile, plausible: PlausibleWindow | None = None) -> tuple[str, str]:
    """First and last month (YYYY-MM) of the partitioned relation's readable rows inside the plausible window
    (by default `plausible_window()`: from ADS_PLAUSIBLE_FROM, when set, to today)."""
    return transaction_span(source, plausible or plausible_window()).months
