"""Hostile source files, in both published formats, loaded through the real loader into the embedded Postgres.

Every bad row is quarantined with its reason and never fails the load: control characters, over-long lines,
numbers in other digits, dates outside the plausible window. Quoted `.asc` fields may hold the separator and
line breaks, line-end noise is normalized, and an empty or header-only file is one clear SourceError. Text that
looks like SQL is stored as given and touches no table: values reach Postgres only through COPY and parameters,
and the columns a file names are checked against the schema's, never used as identifiers.
"""

from __future__ import annotations

import shutil
import tracemalloc
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ads_assets.environment import check_source, source_months, source_span
from ads_assets.lib.berka.formats import (
    MAX_LINE_BYTES,
    SHOWN_BYTES,
    SourceError,
    SourceFile,
    SourceFormat,
    detect_source,
    read_rows,
)
from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.berka.schema import FIN_COLUMN_ORDER, LOAD_ORDER, RELATIONS
from ads_assets.lib.db import connect
from ads_assets.lib.ingest import ORIGIN_ACCOUNTS, ORIGIN_SETTING, LoadReport, load_relation
from ads_assets.lib.raw_schema import LOAD_AUDIT_TABLE, QUARANTINE_TABLE, raw_table
from ads_assets.settings import SettingsError
from tests.test_ingest import table_rows

FORMATS = ("asc", "fin")
TRANS_FILE = {"asc": "trans.asc", "fin": "fin_trans.tsv"}
SEPARATOR = {"asc": b";", "fin": b"\t"}
ENDING = {"asc": b"\r\n", "fin": b"\n"}
FIRST_LINE = {"asc": 2, "fin": 1}
FIRST_OPENING = date(1996, 1, 6)
"""The earliest account opening of the generated bank, and so the start of its plausible window."""
TRANS_ROWS = 136
TEXT_COLUMNS = ("bank", "account")


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small generated bank (30 accounts, 1996-01..1996-03, 136 transactions) in both formats."""
    data = generate(GeneratorConfig(accounts=30, start="1996-01", end="1996-03", seed=7, anomaly_rate=0.0))
    assert len(data.relations["trans"]) == TRANS_ROWS
    root = tmp_path_factory.mktemp("bank")
    for fmt in FORMATS:
        write_dataset(data, root / fmt, fmt)
    return {fmt: root / fmt for fmt in FORMATS}


def copy_of(bank: dict[str, Path], fmt: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bank[fmt], tmp_path / fmt))


def trans_rows(folder: Path, fmt: str) -> tuple[list[bytes], list[bytes]]:
    """The header lines and the row lines of the transaction file."""
    lines = (folder / TRANS_FILE[fmt]).read_bytes().split(ENDING[fmt])
    assert lines[-1] == b""
    header = lines[:1] if fmt == "asc" else []
    return header, lines[len(header) : -1]


def write_trans(folder: Path, fmt: str, header: list[bytes], rows: list[bytes], ending: bytes | None = None) -> None:
    end = ending or ENDING[fmt]
    (folder / TRANS_FILE[fmt]).write_bytes(b"".join(line + end for line in [*header, *rows]))


def with_field(line: bytes, fmt: str, column: str, value: bytes, relation: str = "trans") -> bytes:
    """`line` of `relation` with the field of `column` replaced by `value` (raw bytes, quotes included)."""
    return with_fields(line, fmt, {column: value}, relation)


def with_fields(line: bytes, fmt: str, values: dict[str, bytes], relation: str = "trans") -> bytes:
    """`line` of `relation`, whose fields hold no separator, with the field of each column in `values` replaced."""
    order = RELATIONS[relation].column_names if fmt == "asc" else FIN_COLUMN_ORDER[relation]
    fields = line.split(SEPARATOR[fmt])
    for column, value in values.items():
        fields[order.index(column)] = value
    return SEPARATOR[fmt].join(fields)


def text(fmt: str, value: bytes) -> bytes:
    """A text field as each format writes it: quoted in `.asc`, bare in `fin_*.tsv`."""
    return b'"' + value + b'"' if fmt == "asc" else value


def load_all(target, folder: Path) -> dict[str, LoadReport]:
    sources = detect_source(folder)
    with connect(target) as connection:
        return {name: load_relation(connection, sources[name]) for name in LOAD_ORDER}


def quarantine(target, relation: str = "trans") -> dict[int, tuple[str, str]]:
    """{line number: (reason, raw line)} of the relation's quarantined rows."""
    with connect(target) as connection:
        rows = connection.execute(
            f"SELECT line_number, reason, raw_line FROM {QUARANTINE_TABLE} WHERE relation = %s ORDER BY 1",
            (relation,),
        ).fetchall()
    return {line: (reason, raw) for line, reason, raw in rows}


def loaded(target, columns: str = "trans_id") -> list[tuple]:
    with connect(target) as connection:
        return connection.execute(f"SELECT {columns} FROM raw.fin_trans ORDER BY trans_id").fetchall()


def audit(target) -> tuple[int, int, int]:
    with connect(target) as connection:
        return connection.execute(
            f"SELECT rows_read, rows_accepted, rows_quarantined FROM {LOAD_AUDIT_TABLE} WHERE relation = 'trans'"
        ).fetchone()


def assert_reconciled(report: LoadReport, read: int, quarantined: int) -> None:
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (read, read - quarantined, quarantined)
    assert report.reconciles


CONTROL_CASES = [
    ("bank", b"A\x00B", "control character 0x00 in column bank"),
    ("account", b"12\x01", "control character 0x01 in column account"),
    ("bank", b"A\x7fB", "control character 0x7f in column bank"),
    ("bank", b"A\xc2\x85B", "control character 0x85 in column bank"),
    ("bank", b"A\rB", "control character 0x0d in column bank"),
    ("amount", b"50.00\x1f", "control character 0x1f in column amount"),
    ("trans_id", b"\x0c77", "control character 0x0c in column trans_id"),
]
"""(column, field, reason): the amount and the key would pass Python's int() and Decimal(), which strip them."""


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_characters_quarantine_their_row_not_the_load(bank, fresh_database, tmp_path: Path, fmt: str) -> None:
    folder = copy_of(bank, fmt, tmp_path)
    header, rows = trans_rows(folder, fmt)
    cases = (
        [*CONTROL_CASES, ("bank", b"A\tB", "control character 0x09 in column bank")] if fmt == "asc" else CONTROL_CASES
    )
    expected: dict[int, str] = {}
    for offset, (column, value, reason) in enumerate(cases):
        index = 10 + 7 * offset
        rows[index] = with_field(rows[index], fmt, column, text(fmt, value) if column in TEXT_COLUMNS else value)
        expected[index + FIRST_LINE[fmt]] = reason
    write_trans(folder, fmt, header, rows)

    reports = load_all(fresh_database, folder)

    assert_reconciled(reports["trans"], TRANS_ROWS, len(cases))
    assert audit(fresh_database) == (TRANS_ROWS, TRANS_ROWS - len(cases), len(cases))
    found = quarantine(fresh_database)
    assert {line: reason for line, (reason, _) in found.items()} == expected
    nul_line = next(line for line, reason in expected.items() if "0x00" in reason)
    assert "A\\x00B" in found[nul_line][1]
    assert len(loaded(fresh_database)) == TRANS_ROWS - len(cases)
    assert all(reports[name].rows_quarantined == 0 for name in LOAD_ORDER[:-1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_over_long_lines_quarantine_their_row_not_the_file(bank, fresh_database, tmp_path: Path, fmt: str) -> None:
    folder = copy_of(bank, fmt, tmp_path)
    header, rows = trans_rows(folder, fmt)
    huge = with_field(with_field(rows[20], fmt, "trans_id", b"900001"), fmt, "bank", text(fmt, b"x" * (10 << 20)))
    large = with_field(with_field(rows[40], fmt, "trans_id", b"900002"), fmt, "bank", text(fmt, b"y" * (2 << 20)))
    rows[21:21] = [huge]
    rows[42:42] = [large]
    write_trans(folder, fmt, header, rows)

    reports = load_all(fresh_database, folder)

    assert_reconciled(reports["trans"], TRANS_ROWS + 2, 2)
    found = quarantine(fresh_database)
    assert sorted(found) == [21 + FIRST_LINE[fmt], 42 + FIRST_LINE[fmt]]
    for line, size in zip(sorted(found), (len(huge), len(large)), strict=True):
        reason, raw_line = found[line]
        assert reason == f"line of {size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes"
        assert len(raw_line) == SHOWN_BYTES + 1 and raw_line.endswith("…")
    assert found[21 + FIRST_LINE[fmt]][1].startswith(huge[:20].decode())
    assert len(loaded(fresh_database)) == TRANS_ROWS


def test_an_over_long_line_is_never_held_in_memory(tmp_path: Path) -> None:
    header = b'"trans_id";"account_id";"date";"type";"operation";"amount";"balance";"k_symbol";"bank";"account"'
    good = b'1;2;960106;"PRIJEM";"VKLAD";700.00;700.00;"";;'
    huge = b'2;2;960106;"PRIJEM";"VKLAD";700.00;700.00;"";"' + b"z" * (40 << 20) + b'";'
    path = tmp_path / "trans.asc"
    path.write_bytes(b"\r\n".join([header, good, huge, good.replace(b"1;", b"3;", 1)]) + b"\r\n")
    size = len(huge)
    del huge

    tracemalloc.start()
    try:
        rows = list(read_rows(SourceFile("trans", str(path), SourceFormat.PKDD99)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [(row.line_number, row.values is not None) for row in rows] == [(2, True), (3, False), (4, True)]
    assert rows[1].reason == f"line of {size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes"
    assert peak < 16 << 20


def test_quoted_fields_hold_separators_quotes_and_line_breaks(bank, fresh_database, tmp_path: Path) -> None:
    folder = copy_of(bank, "asc", tmp_path)
    header, rows = trans_rows(folder, "asc")
    ids = [int(rows[index].split(b";")[0]) for index in (10, 20, 30)]
    rows[10] = with_field(rows[10], "asc", "bank", b'"AB;CD"')
    rows[20] = with_field(rows[20], "asc", "bank", b'"AB\r\nCD;EF"')
    rows[30] = with_field(rows[30], "asc", "bank", b'"A""B"')
    rows[40] = with_field(rows[40], "asc", "bank", b'"AB;CD"').rsplit(b";", 1)[0]
    rows[50] = with_field(rows[50], "asc", "bank", b'"AB"CD')
    rows[-1] = with_field(rows[-1], "asc", "bank", b'"never closed')
    write_trans(folder, "asc", header, rows)

    reports = load_all(fresh_database, folder)

    assert_reconciled(reports["trans"], TRANS_ROWS, 3)
    assert {line: reason for line, (reason, _) in quarantine(fresh_database).items()} == {
        43: "expected 10 fields, found 9",
        53: "bad quoting '\"AB\"CD' in column bank",
        TRANS_ROWS + 2: f"quoted field opened on line {TRANS_ROWS + 2} is never closed",
    }
    banks = dict(loaded(fresh_database, "trans_id, bank"))
    assert [banks[trans_id] for trans_id in ids] == ["AB;CD", "AB\nCD;EF", 'A"B']


@pytest.mark.parametrize("fmt", FORMATS)
def test_line_end_noise_is_normalized(bank, fresh_database, tmp_path: Path, fmt: str) -> None:
    reports = load_all(fresh_database, bank[fmt])
    clean = {name: table_rows(fresh_database, name) for name in LOAD_ORDER}
    folder = copy_of(bank, fmt, tmp_path)
    for path in folder.iterdir():
        lines = path.read_bytes().split(ENDING[fmt])
        noisy = [line + (b"\r\r\r\n" if index % 3 == 0 else b"\r\r\n") for index, line in enumerate(lines[:-1])]
        path.write_bytes(b"".join(noisy))

    noisy_reports = load_all(fresh_database, folder)

    for name in LOAD_ORDER:
        assert noisy_reports[name].rows_quarantined == 0, (name, quarantine(fresh_database, name))
        assert noisy_reports[name].rows_read == reports[name].rows_read
        assert table_rows(fresh_database, name) == clean[name]
    assert reports["trans"].rows_read == TRANS_ROWS


NUMBER_CASES = [
    ("amount", b"1_000", "bad amount '1_000' in column amount"),
    ("amount", "١٠٠".encode(), "bad amount '١٠٠' in column amount"),
    ("balance", "１００".encode(), "bad amount '１００' in column balance"),
    ("account_id", "٢".encode(), "bad int '٢' in column account_id"),
    ("trans_id", "１２３４５".encode(), "bad int '１２３４５' in column trans_id"),
    ("amount", "12\u00a0".encode(), "bad amount '12\u00a0' in column amount"),
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_numbers_other_than_ascii_digits_are_quarantined(bank, fresh_database, tmp_path: Path, fmt: str) -> None:
    folder = copy_of(bank, fmt, tmp_path)
    header, rows = trans_rows(folder, fmt)
    expected = {}
    for offset, (column, value, reason) in enumerate(NUMBER_CASES):
        index = 5 + 11 * offset
        rows[index] = with_field(rows[index], fmt, column, value)
        expected[index + FIRST_LINE[fmt]] = reason
    signed = int(rows[100].split(SEPARATOR[fmt])[0])
    rows[100] = with_field(rows[100], fmt, "amount", b"+70.00")
    write_trans(folder, fmt, header, rows)

    reports = load_all(fresh_database, folder)

    assert_reconciled(reports["trans"], TRANS_ROWS, len(NUMBER_CASES))
    assert {line: reason for line, (reason, _) in quarantine(fresh_database).items()} == expected
    amounts = dict(loaded(fresh_database, "trans_id, amount"))
    assert amounts[signed] == (Decimal("700.00") if fmt == "fin" else Decimal("70.00"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_dates_outside_the_plausible_window_are_quarantined_and_never_widen_the_span(
    bank, fresh_database, tmp_path: Path, fmt: str
) -> None:
    folder = copy_of(bank, fmt, tmp_path)
    header, rows = trans_rows(folder, fmt)
    today = date.today()
    outliers = {"asc": [b"000101"], "fin": [b"1920-01-01", b"2110-06-01"]}[fmt]
    for offset, value in enumerate(outliers):
        rows[30 + offset] = with_field(rows[30 + offset], fmt, "date", value)
    write_trans(folder, fmt, header, rows)
    sources = detect_source(folder)

    span = source_span(sources)

    assert source_months(sources) == span.months == ("1996-01", "1996-03")
    assert (span.plausible.start, span.plausible.end, span.plausible.origin) == (FIRST_OPENING, today, ORIGIN_ACCOUNTS)
    assert span.rows_outside == len(outliers)
    assert span.earliest_outside == date(1900, 1, 1)
    assert span.latest_outside == (date(1900, 1, 1) if fmt == "asc" else date(2090, 6, 1))

    reports = load_all(fresh_database, folder)

    assert_reconciled(reports["trans"], TRANS_ROWS, len(outliers))
    assert reports["trans"].plausible_window == f"{FIRST_OPENING}..{today}"
    reasons = [reason for reason, _ in quarantine(fresh_database).values()]
    before = f"date 1900-01-01 in column date is before {FIRST_OPENING}, the start of the plausible window ({ORIGIN_ACCOUNTS})"
    future = f"date 2090-06-01 in column date is in the future (after {today})"
    assert reasons == ([before] if fmt == "asc" else [before, future])


def test_the_plausible_window_can_be_set(bank, fresh_database, tmp_path: Path, monkeypatch) -> None:
    folder = copy_of(bank, "asc", tmp_path)
    header, rows = trans_rows(folder, "asc")
    rows[30] = with_field(rows[30], "asc", "date", b"000101")
    write_trans(folder, "asc", header, rows)
    january = sum(1 for row in rows if row.split(b";")[2].startswith(b"9601"))
    monkeypatch.setenv("ADS_PLAUSIBLE_FROM", "1996-02-01")

    span = source_span(detect_source(folder))

    assert span.months == ("1996-02", "1996-03")
    assert (span.plausible.start, span.plausible.origin, span.rows_outside) == (
        date(1996, 2, 1),
        ORIGIN_SETTING,
        january + 1,
    )

    reports = load_all(fresh_database, folder)

    assert reports["account"].reconciles and reports["trans"].reconciles
    assert reports["account"].rows_quarantined > 0
    reasons = [reason for reason, _ in quarantine(fresh_database).values()]
    assert sum(reason.startswith("date 1996-01-") for reason in reasons) == january
    assert all(day >= date(1996, 2, 1) for (day,) in loaded(fresh_database, "date"))
    monkeypatch.setenv("ADS_PLAUSIBLE_FROM", "1999-01-01")
    with pytest.raises(SourceError) as caught:
        source_span(detect_source(folder))
    assert str(caught.value) == (
        f"{folder / 'trans.asc'}: all {TRANS_ROWS:,} readable trans rows are dated outside the plausible window "
        f"1999-01-01..{date.today()} (start: set by ADS_PLAUSIBLE_FROM); ADS_PLAUSIBLE_FROM sets its start"
    )
    monkeypatch.setenv("ADS_PLAUSIBLE_FROM", "1996-02-30")
    with pytest.raises(SettingsError, match=r"^bad ADS_PLAUSIBLE_FROM '1996-02-30': expected a date YYYY-MM-DD"):
        source_span(detect_source(folder))


def test_empty_and_header_only_files_are_one_line_source_errors(bank, fresh_database, tmp_path: Path) -> None:
    asc = copy_of(bank, "asc", tmp_path)
    header, rows = trans_rows(asc, "asc")
    write_trans(asc, "asc", header, [])
    trans_path = asc / "trans.asc"
    only_header = f"{trans_path} holds only its header: expected trans rows after it"
    with pytest.raises(SourceError) as caught:
        source_months(check_source(str(asc)))
    assert str(caught.value) == only_header
    with connect(fresh_database) as connection, pytest.raises(SourceError, match="holds only its header"):
        load_relation(connection, detect_source(asc)["trans"])

    write_trans(asc, "asc", header, [with_field(row, "asc", "type", b'"NIC"') for row in rows])
    with pytest.raises(SourceError) as caught:
        source_months(detect_source(asc))
    assert str(caught.value) == f"{trans_path} holds no readable trans rows"

    (asc / "account.asc").write_bytes(b"")
    with pytest.raises(SourceError) as caught:
        check_source(str(asc))
    assert str(caught.value) == (
        f"{asc / 'account.asc'} is empty: expected the header account_id;district_id;frequency;date and account rows"
    )

    fin = copy_of(bank, "fin", tmp_path)
    assert (fin / "fin_loan.tsv").read_bytes() == b""
    (fin / "fin_trans.tsv").write_bytes(b"")
    with pytest.raises(SourceError) as caught:
        source_months(check_source(str(fin)))
    assert str(caught.value) == f"{fin / 'fin_trans.tsv'} is empty: expected tab-separated trans rows"
    assert "\n" not in str(caught.value)


def test_database_source_quarantines_control_characters(fresh_database) -> None:
    with connect(fresh_database) as connection:
        connection.execute(
            f"CREATE TABLE fin_trans ({', '.join(f'{name} text' for name in FIN_COLUMN_ORDER['trans'])})"
        )
        rows = [
            ("1", "2", "2016-01-06", "70.00", "70.00", "C", "CIC", "", "AB", "1"),
            ("2", "2", "2016-01-06", "70.00", "70.00", "C", "CIC", "", "A\x01B", "1"),
            ("3", "2", "2016-01-06", "70.00", "70.00", "C", "CIC", "", "A\tB", "1"),
            ("4", "2", "2016-01-06", "70.00", "70.00", "C", "CIC", "", "AB", "1\n2"),
        ]
        with connection.cursor().copy("COPY fin_trans FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    source = SourceFile("trans", f"{fresh_database.sqlalchemy_url()}#fin_trans", SourceFormat.DATABASE)

    found = [(row.line_number, row.reason) for row in read_rows(source)]

    assert found == [
        (1, None),
        (2, "control character 0x01 in column bank"),
        (3, "control character 0x09 in column bank"),
        (4, "control character 0x0a in column account"),
    ]


SQL_LOOKING_TEXT = [
    "'; DROP TABLE raw.fin_trans; --",
    "Robert'); DROP TABLE students;--",
    'say "hi"; DELETE FROM raw.quarantine WHERE "x" = \'y\'',
    "C:\\new\\table \\N \\. \\\\ \\x41",
    "$$; DROP SCHEMA raw CASCADE; $$ $tag$ $tag$",
    "%s %(x)s {0} :name ? E'\\x41' U&'\\0041'",
]
"""Values that would change a statement if they reached its text: quotes, comment and statement ends, COPY's
NULL and end-of-data markers, dollar quoting, placeholders of every paramstyle and escape-string syntax."""
BOM = b"\xef\xbb\xbf"


def field(fmt: str, value: str) -> bytes:
    """`value` as each format writes a text field: quoted with doubled quotes in `.asc`, bare in `fin_*.tsv`."""
    data = value.encode()
    return b'"' + data.replace(b'"', b'""') + b'"' if fmt == "asc" else data


def relation_lines(folder: Path, fmt: str, relation: str) -> tuple[Path, list[bytes], list[bytes]]:
    """The file of `relation`, its header lines and its row lines."""
    name = {"asc": f"{relation}.asc", "fin": f"fin_{relation}.tsv"}[fmt]
    lines = (folder / name).read_bytes().split(ENDING[fmt])
    header = lines[:1] if fmt == "asc" else []
    return folder / name, header, lines[len(header) : -1]


def user_tables(target) -> set[str]:
    with connect(target) as connection:
        rows = connection.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return {name for (name,) in rows}


@pytest.mark.parametrize("fmt", FORMATS)
def test_sql_looking_text_is_stored_as_given_and_touches_no_table(
    bank, fresh_database, tmp_path: Path, fmt: str
) -> None:
    folder = copy_of(bank, fmt, tmp_path)
    district_path, district_header, districts = relation_lines(folder, fmt, "district")
    names = {1: SQL_LOOKING_TEXT[0], 2: SQL_LOOKING_TEXT[1]}
    for district_id, name in names.items():
        districts[district_id - 1] = with_field(districts[district_id - 1], fmt, "a2", field(fmt, name), "district")
    district_path.write_bytes(BOM + b"".join(line + b"\r\n" for line in [*district_header, *districts]))

    header, rows = trans_rows(folder, fmt)
    stored: dict[int, tuple[str, str]] = {}
    for offset, text_value in enumerate(SQL_LOOKING_TEXT):
        index = 3 + 9 * offset
        account = f"{text_value}\n{SQL_LOOKING_TEXT[-1 - offset]}" if fmt == "asc" else SQL_LOOKING_TEXT[-1 - offset]
        rows[index] = with_fields(rows[index], fmt, {"bank": field(fmt, text_value), "account": field(fmt, account)})
        stored[int(rows[index].split(SEPARATOR[fmt])[0])] = (text_value, account)
    bad_code = "'; DROP TABLE raw.fin_trans; --"
    rows[70] = with_field(rows[70], fmt, "type", field(fmt, bad_code))
    rows[80] = with_field(rows[80], fmt, "trans_id", b"1; DROP TABLE raw.fin_trans")
    oversized = with_fields(
        rows[90], fmt, {"trans_id": b"900001", "bank": field(fmt, SQL_LOOKING_TEXT[0] * (MAX_LINE_BYTES // 20))}
    )
    rows[91:91] = [oversized]
    write_trans(folder, fmt, header, rows, ending=b"\r\n")
    (folder / TRANS_FILE[fmt]).write_bytes(BOM + (folder / TRANS_FILE[fmt]).read_bytes())
    first_line = FIRST_LINE[fmt] + (len(SQL_LOOKING_TEXT) if fmt == "asc" else 0)
    bad_key = {
        "asc": "expected 10 fields, found 11",
        "fin": "bad int '1; DROP TABLE raw.fin_trans' in column trans_id",
    }[fmt]

    reports = load_all(fresh_database, folder)

    assert user_tables(fresh_database) == {
        *(raw_table(RELATIONS[name]) for name in LOAD_ORDER),
        QUARANTINE_TABLE,
        LOAD_AUDIT_TABLE,
    }
    assert_reconciled(reports["trans"], TRANS_ROWS + 1, 3)
    assert audit(fresh_database) == (TRANS_ROWS + 1, TRANS_ROWS - 2, 3)
    assert all(reports[name].rows_quarantined == 0 for name in LOAD_ORDER[:-1])
    found = quarantine(fresh_database)
    assert {line: reason for line, (reason, _) in found.items()} == {
        70 + first_line: f"unknown code '{bad_code}' in column type",
        80 + first_line: bad_key,
        91 + first_line: f"line of {len(oversized):,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes",
    }
    assert bad_code in found[70 + first_line][1]
    texts = {
        trans_id: (bank_value, account)
        for trans_id, bank_value, account in loaded(fresh_database, "trans_id, bank, account")
    }
    assert {trans_id: texts[trans_id] for trans_id in stored} == stored
    assert len(texts) == TRANS_ROWS - 2
    with connect(fresh_database) as connection:
        stored_names = dict(
            connection.execute(
                f"SELECT district_id, a2 FROM {raw_table(RELATIONS['district'])} WHERE district_id <= 2"
            ).fetchall()
        )
    assert stored_names == names


def test_a_header_naming_other_columns_is_refused_not_used(bank, tmp_path: Path) -> None:
    folder = copy_of(bank, "asc", tmp_path)
    header, rows = trans_rows(folder, "asc")
    hostile = header[0].replace(b'"bank"', b'"bank"" text); DROP TABLE raw.fin_trans; --"')
    write_trans(folder, "asc", [hostile], rows)

    with pytest.raises(SourceError) as caught:
        check_source(str(folder))

    assert str(caught.value).startswith(f"{folder / 'trans.asc'}: first line is ")
    assert str(caught.value).endswith(
        "expected the header trans_id;account_id;date;type;operation;amount;balance;k_symbol;bank;account"
    )
