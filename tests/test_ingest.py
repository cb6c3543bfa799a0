"""Ingestion into the real embedded Postgres: canonical rows from both formats, quarantine, audit, idempotency."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from ads_assets.lib.berka.formats import SourceError, SourceFile, SourceFormat, detect_source
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import connect, table_count
from ads_assets.lib.ingest import (
    MonthWindow,
    PlausibleWindow,
    ReconciliationError,
    load_relation,
    month_span,
    transaction_span,
)
from ads_assets.lib.raw_schema import LOAD_AUDIT_TABLE, QUARANTINE_TABLE, ensure_raw_schema, raw_table


def load_all(target, folder: Path | str) -> dict:
    reports = {}
    with connect(target) as connection:
        for name, source in sorted(detect_source(folder).items(), key=lambda item: LOAD_ORDER.index(item[0])):
            reports[name] = load_relation(connection, source)
    return reports


def table_rows(target, relation_name: str) -> list[tuple]:
    relation = RELATIONS[relation_name]
    with connect(target) as connection:
        return connection.execute(
            f"SELECT {', '.join(relation.column_names)} FROM {raw_table(relation)} ORDER BY {relation.key}"
        ).fetchall()


def test_both_real_formats_load_identical_canonical_rows(real_berka: Path, fresh_database) -> None:
    asc_reports = load_all(fresh_database, real_berka / "pkdd99")
    asc_rows = {name: table_rows(fresh_database, name) for name in LOAD_ORDER}
    fin_reports = load_all(fresh_database, real_berka / "teradata")
    fin_rows = {name: table_rows(fresh_database, name) for name in LOAD_ORDER}

    assert {name: len(rows) for name, rows in asc_rows.items()} == {
        "district": 77,
        "account": 4500,
        "client": 5369,
        "disp": 5369,
        "order": 6471,
        "loan": 682,
        "card": 892,
        "trans": 49102,
    }
    for name in LOAD_ORDER:
        assert asc_rows[name] == fin_rows[name], name
        assert asc_reports[name].rows_quarantined == 0 and fin_reports[name].rows_quarantined == 0
        assert asc_reports[name].reconciles and fin_reports[name].reconciles
    first = asc_rows["trans"][0]
    assert first[RELATIONS["trans"].column_names.index("date")].year in (1993, 1994)


CORRUPTIONS = {
    "truncated line": lambda line: line[: len(line) // 2],
    "bad date": lambda line: line.replace(";930", ";931341", 1) if ";930" in line else line,
    "unknown code": lambda line: line.replace('"PRIJEM"', '"PRIJMY"').replace('"VYDAJ"', '"VYDAJE"'),
    "non-UTF-8 byte": lambda line: line.replace('";"', '"\xff;"', 1) if '";"' in line else line + "\xff",
}


def corrupted_copy(real_folder: Path, destination: Path) -> dict[int, str]:
    """Copy the real .asc files, corrupting chosen trans lines; returns {line number: corruption}."""
    shutil.copytree(real_folder, destination)
    trans_path = destination / "trans_partial.asc"
    lines = trans_path.read_bytes().split(b"\r\n")
    corrupted: dict[int, str] = {}
    for offset, (name, corrupt) in enumerate(CORRUPTIONS.items()):
        index = 100 + offset * 37
        text = lines[index].decode("ascii")
        lines[index] = corrupt(text).encode("latin-1")
        assert lines[index].decode("latin-1") != text
        corrupted[index + 1] = name
    duplicate_of = lines[500]
    lines.insert(900, duplicate_of)
    corrupted[901] = "duplicate"
    orphan = lines[1200].split(b";")
    orphan[1] = b"999999"
    lines[1200] = b";".join(orphan)
    corrupted[1201] = "orphan"
    trans_path.write_bytes(b"\r\n".join(lines))
    return corrupted


def test_corrupted_copy_quarantines_exactly_the_bad_rows(real_berka: Path, fresh_database, tmp_path: Path) -> None:
    corrupted = corrupted_copy(real_berka / "pkdd99", tmp_path / "corrupt")
    reports = load_all(fresh_database, tmp_path / "corrupt")
    trans = reports["trans"]

    assert trans.rows_read == 49102 + 1
    assert trans.rows_quarantined == len(corrupted)
    assert trans.rows_accepted == 49102 + 1 - len(corrupted)
    assert trans.reconciles
    with connect(fresh_database) as connection:
        quarantined = dict(
            connection.execute(
                f"SELECT line_number, reason FROM {QUARANTINE_TABLE} WHERE relation = 'trans' ORDER BY line_number"
            ).fetchall()
        )
        raw_lines = connection.execute(f"SELECT raw_line FROM {QUARANTINE_TABLE}").fetchall()
    assert set(quarantined) == set(corrupted)
    reasons = {corrupted[line]: reason for line, reason in quarantined.items()}
    assert "field" in reasons["truncated line"]
    assert "date" in reasons["bad date"]
    assert "PRIJMY" in reasons["unknown code"] or "VYDAJE" in reasons["unknown code"]
    assert "UTF-8" in reasons["non-UTF-8 byte"]
    assert reasons["duplicate"].startswith("duplicate trans_id")
    assert reasons["orphan"] == "orphan: account_id 999999 not in account"
    assert all(line for (line,) in raw_lines)
    for name in LOAD_ORDER[:-1]:
        assert reports[name].rows_quarantined == 0


def test_reloading_the_same_files_adds_nothing(real_berka: Path, fresh_database, tmp_path: Path) -> None:
    corrupted_copy(real_berka / "pkdd99", tmp_path / "corrupt")

    def state() -> dict[str, int]:
        with connect(fresh_database) as connection, connection.cursor() as cursor:
            counts = {name: table_count(cursor, raw_table(RELATIONS[name])) for name in LOAD_ORDER}
            counts["quarantine"] = table_count(cursor, QUARANTINE_TABLE)
            counts["audit"] = table_count(cursor, LOAD_AUDIT_TABLE)
        return counts

    load_all(fresh_database, tmp_path / "corrupt")
    first = state()
    load_all(fresh_database, tmp_path / "corrupt")
    assert state() == first
    assert first["audit"] == len(LOAD_ORDER)
    assert first["quarantine"] == 6


def test_partitioned_load_replaces_only_its_window(real_berka: Path, fresh_database) -> None:
    sources = detect_source(real_berka / "pkdd99")
    assert month_span(sources["trans"]) == ("1993-01", "1994-03")
    with connect(fresh_database) as connection:
        for name in LOAD_ORDER[:-1]:
            load_relation(connection, sources[name])
        march = load_relation(connection, sources["trans"], MonthWindow(date(1993, 3, 1), date(1993, 4, 1)))
        april = load_relation(connection, sources["trans"], MonthWindow(date(1993, 4, 1), date(1993, 5, 1)))
        again = load_relation(connection, sources["trans"], MonthWindow(date(1993, 3, 1), date(1993, 4, 1)))
        months = connection.execute(
            "SELECT to_char(date, 'YYYY-MM'), count(*) FROM raw.fin_trans GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert months == [("1993-03", march.rows_accepted), ("1993-04", april.rows_accepted)]
    assert again.rows_accepted == march.rows_accepted
    assert march.rows_read + march.rows_outside_window == 49102
    assert march.reconciles and april.reconciles


def test_rows_dated_outside_a_given_plausible_window_are_quarantined(real_berka: Path, fresh_database) -> None:
    sources = detect_source(real_berka / "pkdd99")
    plausible = PlausibleWindow(date(1993, 2, 1), date(1994, 1, 31), "a test window")
    span = transaction_span(sources["trans"], plausible)
    assert month_span(sources["trans"], plausible) == span.months == ("1993-02", "1994-01")
    assert (span.earliest_outside, span.latest_outside) == (date(1993, 1, 1), date(1994, 3, 31))
    with connect(fresh_database) as connection:
        for name in LOAD_ORDER[:-1]:
            load_relation(connection, sources[name])
        report = load_relation(connection, sources["trans"], plausible=plausible)
        outside = connection.execute(
            f"SELECT count(*), min(reason), max(reason) FROM {QUARANTINE_TABLE} "
            "WHERE relation = 'trans' AND reason LIKE 'date %'"
        ).fetchone()
        dates = connection.execute("SELECT min(date), max(date) FROM raw.fin_trans").fetchone()
    assert outside == (
        span.rows_outside,
        "date 1993-01-01 in column date is before 1993-02-01, the start of the plausible window (a test window)",
        "date 1994-03-31 in column date is after 1994-01-31, the end of the plausible window",
    )
    assert report.rows_quarantined == span.rows_outside and report.reconciles
    assert report.rows_accepted == 49102 - span.rows_outside
    assert report.plausible_window == "1993-02-01..1994-01-31"
    assert dates == (date(1993, 2, 1), date(1994, 1, 31))


def test_failed_reconciliation_leaves_nothing_behind(real_berka: Path, fresh_database, monkeypatch) -> None:
    import ads_assets.lib.ingest as ingest

    sources = detect_source(real_berka / "pkdd99")
    with connect(fresh_database) as connection:
        ensure_raw_schema(connection.cursor())
    monkeypatch.setattr(ingest, "copy_rows", lambda cursor, table, columns, rows: sum(1 for _ in rows))
    with connect(fresh_database) as connection, pytest.raises(ReconciliationError, match="read 77 rows"):
        load_relation(connection, sources["district"])
    with connect(fresh_database) as connection:
        assert connection.execute(f"SELECT count(*) FROM {LOAD_AUDIT_TABLE}").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM raw.fin_district").fetchone() == (0,)


def test_missing_file_and_unknown_folder_give_one_line_errors(real_berka: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(real_berka / "pkdd99", partial)
    (partial / "loan.asc").unlink()
    with pytest.raises(SourceError) as missing:
        detect_source(partial)
    assert "loan.asc" in str(missing.value) and "\n" not in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError) as empty:
        detect_source(tmp_path / "empty")
    assert "\n" not in str(empty.value)


def test_an_appended_batch_adds_its_new_rows_and_quarantines_the_rest(
    real_berka: Path, fresh_database, tmp_path: Path
) -> None:
    """A batch of the inbox: new transactions are added, one already loaded and one unreadable are quarantined
    with their reasons, and nothing loaded before moves."""
    sources = detect_source(real_berka / "pkdd99")
    header, *lines = Path(sources["trans"].location).read_text(encoding="latin-1").splitlines()
    march = [line for line in lines if ";9303" in line][:1]
    april = [line for line in lines if ";9304" in line][:2]
    batch = tmp_path / "batch.asc"
    batch.write_text("\n".join([header, *april, *march, "1;2;not-a-date;x"]) + "\n", encoding="latin-1")
    with connect(fresh_database) as connection:
        for name in LOAD_ORDER[:-1]:
            load_relation(connection, sources[name])
        loaded = load_relation(connection, sources["trans"], MonthWindow(date(1993, 3, 1), date(1993, 4, 1)))
        appended = load_relation(connection, SourceFile("trans", str(batch), SourceFormat.PKDD99), append=True)
        months = dict(
            connection.execute("SELECT to_char(date, 'YYYY-MM'), count(*) FROM raw.fin_trans GROUP BY 1").fetchall()
        )
        reasons = [
            row[0]
            for row in connection.execute(
                f"SELECT reason FROM {QUARANTINE_TABLE} WHERE source_sha256 = %s ORDER BY line_number",
                (appended.sha256,),
            )
        ]
    assert (appended.rows_read, appended.rows_accepted, appended.rows_quarantined) == (4, 2, 2)
    assert appended.reconciles and appended.window == "append"
    assert months == {"1993-03": loaded.rows_accepted, "1993-04": 2}
    assert reasons[0].startswith("trans_id ") and reasons[0].endswith(" already loaded")
    assert reasons[1] == "expected 10 fields, found 4"
