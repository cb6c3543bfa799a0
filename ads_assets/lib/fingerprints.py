"""What a run was made from, so that a rerun with nothing new skips the months it already published.

A fingerprint holds the digest of the code and settings that shape the results (`settings`), the sha256
of each source relation (`files`) and, per month, a digest of that month's transaction lines (`months`).
`ads run` records the fingerprint of each successful run in `raw.run_fingerprint`; the next run compares:

- nothing differs: every month is unchanged, and there is nothing to run;
- only the transactions differ: the months from the first changed one to the end are rerun (features,
  models and scores of a month depend on the months before it, never on later ones);
- the code, the settings or another relation differ, or no run was recorded: every month is rerun.

Analyst labels (`anomaly.labels`) count as well: each month's digest folds in the labels of its
transactions (`with_labels`), so a new or changed label reruns the months from its transaction's month
on, as the models trained after it and the months they score may use it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ads_assets.bundled import PACKAGE_DIR, dbt_project_dir, expectations_dir
from ads_assets.lib.berka.formats import SourceFile, SourceFormat, parse_source_date, read_rows

FINGERPRINT_TABLE = "raw.run_fingerprint"
DBT_SUFFIXES = frozenset({".sql", ".yml", ".yaml", ".csv", ".md"})
TRANSACTIONS = "trans"
DATE_FIELD = 2
"""Position of the date among a transaction's fields and parsed values (trans_id, account_id, date, …)."""
UNDATED = "undated"
"""The `months` key of transaction lines that are quarantined (their month is not known)."""
UNIT_SEPARATOR = "\x1f"
"""A byte no Berka line holds: each line is read whole, as one field (a line holding it is kept apart)."""
LABELS = "labels"
"""The `files` key of the digest of every analyst label."""


@dataclass(frozen=True)
class Fingerprint:
    settings: str
    files: dict[str, str]
    months: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps({"settings": self.settings, "files": self.files, "months": self.months}, sort_keys=True)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Fingerprint:
        return cls(
            settings=str(document.get("settings", "")),
            files={str(name): str(value) for name, value in (document.get("files") or {}).items()},
            months={str(name): str(value) for name, value in (document.get("months") or {}).items()},
        )


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    finished_at: str
    fingerprint: Fingerprint


def code_digest() -> str:
    """Digest of the package's Python modules, its dbt project and its expectation suites."""
    digest = hashlib.sha256()
    files = [
        *sorted(PACKAGE_DIR.rglob("*.py")),
        *sorted(path for path in dbt_project_dir().rglob("*") if path.suffix in DBT_SUFFIXES),
        *sorted(expectations_dir().glob("*.json")),
    ]
    for path in files:
        if "target" in path.parts or "__pycache__" in path.parts:
            continue
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def settings_digest(code: str, settings: Mapping[str, object]) -> str:
    """Digest of the code and of the settings that change what a run publishes."""
    return hashlib.sha256((code + json.dumps(settings, sort_keys=True, default=str)).encode()).hexdigest()


def file_digests(sources: Mapping[str, SourceFile]) -> dict[str, str]:
    """The sha256 of each source relation."""
    return {name: source.sha256() for name, source in sorted(sources.items())}


def month_digests(source: SourceFile) -> dict[str, str]:
    """Per month (YYYY-MM), a digest of the month's transaction lines in file order; undated lines under UNDATED.

    A line's month comes from its third field (the date) as the loader reads it; a line without a
    readable date counts as UNDATED. A quoted field holding a line break splits its line in two here,
    which changes no digest between two reads of the same file.
    """
    if source.format == SourceFormat.DATABASE:
        return _parsed_month_digests(source)
    asc = source.format == SourceFormat.PKDD99
    split: list[bytes] = []

    def invalid(row: Any) -> str:
        split.append(row.text.encode("utf-8", "surrogateescape"))
        return "skip"

    lines = pa_csv.read_csv(
        source.location,
        read_options=pa_csv.ReadOptions(column_names=["line"], skip_rows=1 if asc else 0),
        parse_options=pa_csv.ParseOptions(delimiter=UNIT_SEPARATOR, quote_char=False, invalid_row_handler=invalid),
        convert_options=pa_csv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
    )["line"]
    lines = lines.combine_chunks().cast(pa.large_string())
    separator = ";" if asc else "\t"
    dates = pc.struct_field(
        pc.extract_regex(lines, rf"^(?:[^{separator}]*{separator}){{2}}(?P<date>[^{separator}]*)"), 0
    )
    encoded = dates.dictionary_encode()
    month_of = [_month_key(source.format, value) for value in encoded.dictionary.to_pylist()]
    names = sorted({*month_of, UNDATED})
    month_code = np.array([names.index(month) for month in month_of] + [names.index(UNDATED)], dtype=np.int64)
    indices = encoded.indices.fill_null(len(month_of)).to_numpy()
    row_month = month_code[indices]
    order = np.argsort(row_month, kind="stable")
    ordered = lines.take(pa.array(order))
    offsets = np.frombuffer(ordered.buffers()[1], dtype=np.int64)[: len(ordered) + 1]
    data = memoryview(ordered.buffers()[2]) if len(ordered) else memoryview(b"")
    bounds = np.searchsorted(row_month[order], np.arange(len(names) + 1))
    digests = {}
    for index, name in enumerate(names):
        first, last = bounds[index], bounds[index + 1]
        if first == last:
            continue
        digest = hashlib.sha256(data[offsets[first] : offsets[last]])
        digest.update(np.diff(offsets[first : last + 1]).tobytes())
        digests[name] = digest.hexdigest()
    if split:
        digests[UNDATED] = hashlib.sha256(digests.get(UNDATED, "").encode() + b"\n".join(split)).hexdigest()
    return dict(sorted(digests.items()))


def _month_key(fmt: SourceFormat, text: object) -> str:
    if not isinstance(text, str):
        return UNDATED
    try:
        return f"{parse_source_date(fmt, text.strip().strip(chr(34))):%Y-%m}"
    except ValueError:
        return UNDATED


def _parsed_month_digests(source: SourceFile) -> dict[str, str]:
    digests: dict[str, Any] = {}
    for row in read_rows(source):
        when = row.values[DATE_FIELD] if row.values is not None else None
        key = f"{when:%Y-%m}" if isinstance(when, date) else UNDATED
        digest = digests.get(key)
        if digest is None:
            digest = digests[key] = hashlib.sha256()
        digest.update(row.raw_line.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    return {key: digest.hexdigest() for key, digest in sorted(digests.items())}


def label_digests(labels: Iterable[tuple[str, int, str]]) -> dict[str, str]:
    """Per month (YYYY-MM, or UNDATED for a transaction without features), the digest of its labels.

    `labels`: (month, trans_id, label) rows, in any order.
    """
    lines: dict[str, list[str]] = {}
    for month, trans_id, label in labels:
        lines.setdefault(month or UNDATED, []).append(f"{trans_id}:{label}")
    return {
        month: hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest() for month, rows in sorted(lines.items())
    }


def with_labels(months: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, str]:
    """The month digests with each month's label digest folded in (months without labels are folded with '')."""
    return {
        month: hashlib.sha256(f"{months.get(month, '')}|{labels.get(month, '')}".encode()).hexdigest()
        for month in sorted(set(months) | set(labels))
    }


def months_to_run(current: Fingerprint, recorded: Fingerprint | None, months: Iterable[str]) -> list[str]:
    """The months (YYYY-MM, in order) a run must redo: from the first changed month to the last."""
    ordered = sorted(months)
    if recorded is None or current.settings != recorded.settings or not recorded.months:
        return ordered
    dated = (TRANSACTIONS, LABELS)
    if {name: value for name, value in current.files.items() if name not in dated} != {
        name: value for name, value in recorded.files.items() if name not in dated
    }:
        return ordered
    if all(current.files.get(name) == recorded.files.get(name) for name in dated):
        return []
    if current.months.get(UNDATED) != recorded.months.get(UNDATED):
        return ordered
    changed = [month for month in ordered if current.months.get(month) != recorded.months.get(month)]
    return ordered[ordered.index(changed[0]) :] if changed else []


def recorded_run(connection: psycopg.Connection) -> RecordedRun | None:
    """The fingerprint of the last successful `ads run` on this database, if any."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (FINGERPRINT_TABLE,))
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT run_id, finished_at, fingerprint FROM {FINGERPRINT_TABLE} WHERE id = 1")  # noqa: S608 - FINGERPRINT_TABLE is a module constant, values go as parameters
        row = cursor.fetchone()
    if row is None:
        return None
    run_id, finished_at, document = row
    return RecordedRun(str(run_id), f"{finished_at:%Y-%m-%d %H:%M}", Fingerprint.from_json(document))


def record_run(connection: psycopg.Connection, run_id: str, fingerprint: Fingerprint) -> None:
    """Remember `fingerprint` as what the successful run `run_id` was made from."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS raw")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {FINGERPRINT_TABLE} (id int PRIMARY KEY CHECK (id = 1), run_id text NOT NULL, "
            "finished_at timestamptz NOT NULL DEFAULT now(), fingerprint jsonb NOT NULL)"
        )
        cursor.execute(
            f"INSERT INTO {FINGERPRINT_TABLE} (id, run_id, fingerprint) VALUES (1, %s, %s) "  # noqa: S608 - FINGERPRINT_TABLE is a module constant, values go as parameters
            "ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id, finished_at = now(), "
            "fingerprint = EXCLUDED.fingerprint",
            (run_id, fingerprint.as_json()),
        )


def forget_runs(connection: psycopg.Connection) -> None:
    """Drop the recorded fingerprint, so the next run redoes every month."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {FINGERPRINT_TABLE}")
