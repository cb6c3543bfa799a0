"""Tests of the Berka readers: both published formats, corrupted lines, detection, the database source."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ads_assets.lib.berka.formats import (
    ParsedRow,
    SourceError,
    SourceFile,
    SourceFormat,
    canonical_line,
    detect_source,
    fin_fields,
    read_rows,
)
from ads_assets.lib.berka.schema import FIN_COLUMN_ORDER, LOAD_ORDER, RELATIONS, ColumnType

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/berka"
ASC_DIR = DATA / "pkdd99"
FIN_DIR = DATA / "teradata"

EXPECTED_ROWS = {
    "district": 77,
    "account": 4500,
    "client": 5369,
    "disp": 5369,
    "order": 6471,
    "loan": 682,
    "card": 892,
    "trans": 49102,
}

Sources = tuple[dict[str, SourceFile], dict[str, SourceFile]]

ASC_TRANS_HEADER = '"trans_id";"account_id";"date";"type";"operation";"amount";"balance";"k_symbol";"bank";"account"'


@pytest.fixture(scope="module")
def real_sources() -> Sources:
    if not (ASC_DIR.is_dir() and FIN_DIR.is_dir()):
        pytest.skip(f"real Berka files not found in {DATA} (expected pkdd99/*.asc and teradata/fin_*.tsv)")
    return detect_source(ASC_DIR), detect_source(FIN_DIR)


def _by_key(rows: list[ParsedRow]) -> dict[int, tuple]:
    return {row.values[0]: row.values for row in rows if row.values is not None}


def _write(folder: Path, name: str, lines: list[bytes], ending: bytes = b"\n") -> SourceFile:
    path = folder / name
    path.write_bytes(b"".join(line + ending for line in lines))
    fmt = SourceFormat.PKDD99 if name.endswith(".asc") else SourceFormat.FIN
    relation = name.removeprefix("fin_").split(".")[0].split("_")[0]
    return SourceFile(relation, str(path), fmt)


def test_detect_real_folders(real_sources: Sources) -> None:
    asc, fin = real_sources
    assert set(asc) == set(fin) == set(LOAD_ORDER)
    assert {source.format for source in asc.values()} == {SourceFormat.PKDD99}
    assert {source.format for source in fin.values()} == {SourceFormat.FIN}
    assert Path(asc["trans"].location).name == "trans_partial.asc"
    assert Path(fin["trans"].location).name == "fin_trans_partial.tsv"
    assert all(source.relation == relation for relation, source in asc.items())
    assert len(asc["district"].sha256()) == 64
    assert asc["district"].sha256() != fin["district"].sha256()


@pytest.mark.parametrize("relation", LOAD_ORDER)
def test_both_real_formats_give_identical_canonical_rows(real_sources: Sources, relation: str) -> None:
    asc_source, fin_source = (sources[relation] for sources in real_sources)
    asc_rows, fin_rows = list(read_rows(asc_source)), list(read_rows(fin_source))
    rejected = [row for row in asc_rows + fin_rows if row.reason is not None]
    assert rejected == []
    assert len(asc_rows) == len(fin_rows) == EXPECTED_ROWS[relation]
    asc_values, fin_values = _by_key(asc_rows), _by_key(fin_rows)
    assert len(asc_values) == EXPECTED_ROWS[relation]
    assert asc_values == fin_values
    assert [row.line_number for row in asc_rows[:2]] == [2, 3]
    assert [row.line_number for row in fin_rows[:2]] == [1, 2]


def test_real_rows_have_canonical_types(real_sources: Sources) -> None:
    python_types = {
        ColumnType.INT: int,
        ColumnType.TEXT: str,
        ColumnType.DATE: date,
        ColumnType.MONEY: Decimal,
        ColumnType.DECIMAL: Decimal,
    }
    asc, _ = real_sources
    for relation in LOAD_ORDER:
        columns = RELATIONS[relation].columns
        for row in itertools.islice(read_rows(asc[relation]), 500):
            for column, value in zip(columns, row.values, strict=True):
                if value is None:
                    assert column.nullable, (relation, column.name, row)
                    continue
                assert type(value) is python_types[column.type], (relation, column.name, value)
                if isinstance(value, Decimal):
                    assert value.as_tuple().exponent == -2
                if column.codes is not None:
                    assert value in column.codes


def test_real_specific_values(real_sources: Sources) -> None:
    asc, fin = real_sources
    for sources in (asc, fin):
        district = _by_key(list(read_rows(sources["district"])))
        assert district[1][2] == "Prague" and district[2][2] == "central Bohemia"
        assert district[1][10] == 12541 and district[1][11] == Decimal("0.29")
        assert district[69][11] is None and district[69][14] is None
        client = _by_key(list(read_rows(sources["client"])))
        assert client[1] == (1, "706213", 18)
        assert client[2] == (2, "450204", 1)
        order = _by_key(list(read_rows(sources["order"])))
        assert order[29402] == (29402, 2, "ST", "89597016", Decimal("3372.70"), "UVER")
        card = _by_key(list(read_rows(sources["card"])))
        assert card[1005][3] == date(1993, 11, 7)
        trans = next(iter(read_rows(sources["trans"])))
        assert trans.values == (
            695247,
            2378,
            date(1993, 1, 1),
            "PRIJEM",
            "VKLAD",
            Decimal("700.00"),
            Decimal("700.00"),
            None,
            None,
            None,
        )


@pytest.mark.parametrize("relation", LOAD_ORDER)
def test_fin_fields_inverts_the_fin_reader(real_sources: Sources, relation: str, tmp_path: Path) -> None:
    asc, _ = real_sources
    expected = [row.values for row in itertools.islice(read_rows(asc[relation]), 2000)]
    lines = ["\t".join(fin_fields(relation, values)).encode() for values in expected]
    source = _write(tmp_path, f"fin_{relation}.tsv", lines)
    assert [row.values for row in read_rows(source)] == expected


GOOD_ASC = b'695247;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;'
GOOD_FIN = b"695247\t2378\t2013-01-01\t70.00\t70.00\tC\tCIC\t\t\t"
GOOD_VALUES = (
    695247,
    2378,
    date(1993, 1, 1),
    "PRIJEM",
    "VKLAD",
    Decimal("700.00"),
    Decimal("700.00"),
    None,
    None,
    None,
)

CORRUPT_ASC = [
    (b'1;2378;930101;"PRIJEM";"VKLAD";700.00', "expected 10 fields, found 6"),
    (b'2;2378;931341;"PRIJEM";"VKLAD";700.00;700.00;"";;', "bad date '931341' in column date"),
    (b'3;2378;930101;"PRIJMY";"VKLAD";700.00;700.00;"";;', "unknown code 'PRIJMY' in column type"),
    (b'4;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"\xff";;', "not valid UTF-8: byte 0xff at position 47"),
    (b';2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;', "missing required value in column trans_id"),
    (b"", "blank line"),
    (b'6;23x8;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;', "bad int '23x8' in column account_id"),
    (b'7;2378;930101;"PRIJEM";"VKLAD";7OO.00;700.00;"";;', "bad amount '7OO.00' in column amount"),
    (b'8;2378;930101;"PRIJEM";"VKLAD";700.001;700.00;"";;', "bad amount '700.001' in column amount"),
    (b'9;2378;930101;"PRIJEM";"VKLAD";700.00;1e3;"";;', "bad amount '1e3' in column balance"),
    (b'10;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"UROKY";;', "unknown code 'UROKY' in column k_symbol"),
    (b'11;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;;', "expected 10 fields, found 11"),
    (b'12;2378;930229;"PRIJEM";"VKLAD";700.00;700.00;"";;', "bad date '930229' in column date"),
]

CORRUPT_FIN = [
    (b"1\t2378\t2013-01-01\t70.00\t70.00\tC", "expected 10 fields, found 6"),
    (b"2\t2378\t2013-13-01\t70.00\t70.00\tC\tCIC\t\t\t", "bad date '2013-13-01' in column date"),
    (b"3\t2378\t2013-01-01\t70.00\t70.00\tX\tCIC\t\t\t", "unknown code 'X' in column type"),
    (b"4\t2378\t2013-01-01\t70.00\t70.00\tC\tCIC\t\t\xff\t", "not valid UTF-8: byte 0xff at position 38"),
    (b"5\t\t2013-01-01\t70.00\t70.00\tC\tCIC\t\t\t", "missing required value in column account_id"),
    (b"", "blank line"),
    (b"7\t2378\t2013-01-01\t7,00\t70.00\tC\tCIC\t\t\t", "bad amount '7,00' in column amount"),
    (b"8\t2378\t2013-01-01\t70.00\t70.00\tC\tCIC\tXX\t\t", "unknown code 'XX' in column k_symbol"),
    (b"9\t2378\t2013/01/01\t70.00\t70.00\tC\tCIC\t\t\t", "bad date '2013/01/01' in column date"),
    (b"10\t2378\t2013-01-01\t70.0001\t70.00\tC\tCIC\t\t\t", "bad amount '70.0001' in column amount"),
]


@pytest.mark.parametrize(
    ("name", "header", "good", "corrupt", "ending"),
    [
        ("trans.asc", [ASC_TRANS_HEADER.encode()], GOOD_ASC, CORRUPT_ASC, b"\r\n"),
        ("fin_trans.tsv", [], GOOD_FIN, CORRUPT_FIN, b"\n"),
    ],
    ids=["asc", "fin"],
)
def test_corrupted_lines_are_rejected_with_reasons(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    header: list[bytes],
    good: bytes,
    corrupt: list[tuple[bytes, str]],
    ending: bytes,
) -> None:
    from ads_assets.lib.berka import formats

    lines = [*header]
    for bad, _ in corrupt:
        lines += [good, bad]
    lines.append(good)
    source = _write(tmp_path, name, lines, ending)
    rows = list(read_rows(source))
    monkeypatch.setattr(formats, "_BLOCK_SIZE", 64)
    assert [repr(row) for row in read_rows(source)] == [repr(row) for row in rows]
    assert len(rows) == len(lines) - len(header)
    offset = len(header) + 1
    assert [row.line_number for row in rows] == list(range(offset, offset + len(rows)))
    good_rows, bad_rows = rows[0::2], rows[1::2]
    assert all(row.values == GOOD_VALUES and row.reason is None for row in good_rows)
    assert [(row.values, row.reason) for row in bad_rows] == [(None, reason) for _, reason in corrupt]
    assert all(row.raw_line == line.decode() for row, line in zip(good_rows, lines[len(header) :: 2], strict=False))
    undecodable = next(row for row in bad_rows if row.reason.startswith("not valid UTF-8"))
    assert "\\xff" in undecodable.raw_line


def test_single_space_and_empty_codes_are_null(tmp_path: Path) -> None:
    lines = [
        ASC_TRANS_HEADER.encode(),
        b'1;2;930101;"VYDAJ";"";10.00;20.00;" ";"AB";"12345678"',
        b'2;2;930101;"VYDAJ";" ";10.00;20.00;"";;',
        b'3;2;930101;"VYDAJ";"VYBER";10.00;-20.00;"SIPO";"";""',
    ]
    rows = list(read_rows(_write(tmp_path, "trans.asc", lines, b"\r\n")))
    assert [row.values[4] for row in rows] == [None, None, "VYBER"]
    assert [row.values[7:] for row in rows] == [(None, "AB", "12345678"), (None, None, None), ("SIPO", None, None)]
    assert rows[2].values[6] == Decimal("-20.00")


def test_last_line_without_newline_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "fin_trans.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_FIN + b"\n" + GOOD_FIN.replace(b"695247", b"695248"))
    rows = list(read_rows(SourceFile("trans", str(path), SourceFormat.FIN)))
    assert [(row.line_number, row.values[0], row.reason) for row in rows] == [(1, 695247, None), (2, 695248, None)]


HOSTILE_ASC = (
    ASC_TRANS_HEADER.encode()
    + b"\r\r\n"
    + GOOD_ASC
    + b"\r\n"
    + b'2;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"AB;CD";"x\r\ny"\r\n'
    + b'3;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"A\x00B";\r\n'
    + b'4;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"""";\n\r'
    + b'5;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"AB\r\r\n\r\nCD";\r\r\r\n'
    + b'6;2378;930101;"PRIJEM";"VKLAD";1_000;700.00;"";;\r\n'
    + b'7;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"AB;CD";"1";"2"\r\n'
    + b'8;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"unterminated;\r\n'
)


@pytest.mark.parametrize("block_size", [1 << 22, 5, 64, 333])
def test_quoting_line_end_noise_and_control_characters_read_alike_in_any_block_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    from ads_assets.lib.berka import formats

    path = tmp_path / "trans.asc"
    path.write_bytes(HOSTILE_ASC)
    monkeypatch.setattr(formats, "_BLOCK_SIZE", block_size)

    rows = list(read_rows(SourceFile("trans", str(path), SourceFormat.PKDD99)))

    assert [(row.line_number, row.values and row.values[8:], row.reason) for row in rows] == [
        (2, (None, None), None),
        (3, ("AB;CD", "x\ny"), None),
        (5, None, "control character 0x00 in column bank"),
        (6, ('"', None), None),
        (7, ("AB\n\nCD", None), None),
        (10, None, "bad amount '1_000' in column amount"),
        (11, None, "expected 10 fields, found 11"),
        (12, None, "quoted field opened on line 12 is never closed"),
    ]
    assert rows[1].raw_line == '2;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"AB;CD";"x\ny"'
    assert rows[-1].raw_line == '8;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"unterminated;'


def test_empty_asc_file_and_header_only_trans_are_source_errors(tmp_path: Path) -> None:
    empty = _write(tmp_path, "account.asc", [])
    with pytest.raises(SourceError) as caught:
        list(read_rows(empty))
    assert str(caught.value) == (
        f"{empty.location} is empty: expected the header account_id;district_id;frequency;date and account rows"
    )
    header_only = _write(tmp_path, "trans.asc", [ASC_TRANS_HEADER.encode()], b"\r\n")
    with pytest.raises(SourceError, match="holds only its header: expected trans rows after it$"):
        list(read_rows(header_only))
    assert (
        list(
            read_rows(
                _write(tmp_path, "loan.asc", [b'"loan_id";"account_id";"date";"amount";"duration";"payments";"status"'])
            )
        )
        == []
    )
    assert list(read_rows(_write(tmp_path, "fin_card.tsv", []))) == []
    with pytest.raises(SourceError, match="fin_disp.tsv is empty: expected tab-separated disp rows$"):
        list(read_rows(_write(tmp_path, "fin_disp.tsv", [])))


def test_unexpected_asc_header_is_a_source_error(tmp_path: Path) -> None:
    source = _write(tmp_path, "trans.asc", [GOOD_ASC, GOOD_ASC], b"\r\n")
    with pytest.raises(SourceError, match="expected the header"):
        list(read_rows(source))


def test_district_question_marks_and_fin_regions(tmp_path: Path) -> None:
    asc = _write(
        tmp_path,
        "district.asc",
        [
            b"A1;A2;A3;A4;A5;A6;A7;A8;A9;A10;A11;A12;A13;A14;A15;A16",
            b'69;"Jesenik";"north Moravia";42821;4;13;5;1;3;48.4;8173;?;7.01;124;?;1358',
            b'70;"Karvina";"north Moravia";285387;0;2;8;5;1;89.9;10177;?;?;81;9878;4156',
        ],
        b"\r\n",
    )
    fin = _write(
        tmp_path,
        "fin_district.tsv",
        [
            b"69\tJesenik\tNorth Moravia\t42821\t4\t13\t5\t1\t3\t48.4\t8173.00\t\t7.01\t124\t\t1358",
            b"70\tKarvina\tNorth Moravia\t285387\t0\t2\t8\t5\t1\t89.9\t10177.50\t.5\t.5\t81\t9878\t4156",
        ],
    )
    asc_rows, fin_rows = list(read_rows(asc)), list(read_rows(fin))
    assert asc_rows[0].values == fin_rows[0].values
    assert asc_rows[0].values[9:12] == (Decimal("48.40"), 8173, None)
    assert asc_rows[1].reason == "missing required value in column a13"
    assert fin_rows[1].reason == "bad int '10177.50' in column a11"


def test_fin_client_birth_number_and_gender(tmp_path: Path) -> None:
    lines = [
        b"1\t1990-12-13\tF\t18",
        b"2\t1965-02-04\tM\t1",
        b"3\t2016-02-29\tF\t5",
        b"4\t1920-02-29\tM\t5",
        b"5\t1960-10-09\tX\t1",
        b"6\t1960-10-09\t\t1",
    ]
    rows = list(read_rows(_write(tmp_path, "fin_client.tsv", lines)))
    assert [row.values for row in rows[:3]] == [(1, "706213", 18), (2, "450204", 1), (3, "965229", 5)]
    assert [row.reason for row in rows[3:]] == [
        "bad date '1920-02-29' in column birth_date",
        "unknown code 'X' in column gender",
        "missing required value in column gender",
    ]
    for row, line in zip(rows[:3], lines, strict=False):
        assert "\t".join(fin_fields("client", row.values)) == line.decode()
    woman = fin_fields("client", (7, "785124", 3))
    assert woman == ("7", "1998-01-24", "F", "3")
    woman_back = next(iter(read_rows(_write(tmp_path, "fin_client.tsv", ["\t".join(woman).encode()]))))
    assert woman_back.values == (7, "785124", 3)


def test_canonical_line() -> None:
    values = (1, 2, date(1993, 1, 5), "VYDAJ", None, Decimal("14.60"), Decimal("-3.10"), "SLUZBY", "A\tB", None)
    assert canonical_line("trans", values) == "1\t2\t1993-01-05\tVYDAJ\t\\N\t14.60\t-3.10\tSLUZBY\tA\\tB\t\\N"
    with pytest.raises(ValueError):
        canonical_line("trans", values[:3])


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


ALL_ASC = [f"{relation}.asc" for relation in LOAD_ORDER]
ALL_FIN = [f"fin_{relation}.tsv" for relation in LOAD_ORDER]


def test_detect_synthetic_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "asc", *ALL_ASC[:-1], "trans_2024.asc", "notes.txt")
    found = detect_source(tmp_path / "asc")
    assert Path(found["trans"].location).name == "trans_2024.asc"
    assert found["district"].format is SourceFormat.PKDD99
    _touch(tmp_path / "fin", *ALL_FIN)
    assert Path(detect_source(str(tmp_path / "fin"))["order"].location).name == "fin_order.tsv"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            [],
            "no Berka files in {folder}: expected the PKDD'99 *.asc files (account.asc, card.asc, client.asc, "
            "disp.asc, district.asc, loan.asc, order.asc, trans*.asc) or the fin_*.tsv files (fin_account.tsv, "
            "fin_card.tsv, fin_client.tsv, fin_disp.tsv, fin_district.tsv, fin_loan.tsv, fin_order.tsv, "
            "fin_trans*.tsv)",
        ),
        (
            [name for name in ALL_ASC if name != "card.asc"],
            "incomplete PKDD'99 *.asc files in {folder}: missing card.asc (expected account.asc, card.asc, "
            "client.asc, disp.asc, district.asc, loan.asc, order.asc, trans*.asc)",
        ),
        (ALL_FIN[:-1], "incomplete fin_*.tsv files in {folder}: missing fin_trans*.tsv (expected "),
        ([*ALL_ASC, "fin_trans.tsv"], "mixed formats in {folder}: "),
        ([*ALL_ASC, "trans_partial.asc"], "several transaction files in {folder}: trans.asc, trans_partial.asc"),
    ],
    ids=["empty", "missing-card", "missing-fin-trans", "mixed", "two-trans"],
)
def test_detection_errors(tmp_path: Path, names: list[str], message: str) -> None:
    folder = tmp_path / "data"
    _touch(folder, *names)
    with pytest.raises(SourceError) as caught:
        detect_source(folder)
    text = str(caught.value)
    assert text.startswith(message.format(folder=folder))
    assert "\n" not in text


def test_detection_of_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        detect_source(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def postgres_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own, started and stopped under the lock every pgserver call of this process takes (the
    end-to-end runs start and stop theirs from background threads meanwhile)."""
    pgserver = pytest.importorskip("pgserver")
    from ads_assets.lib import db

    try:
        with db._servers_lock:
            server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    except Exception as exc:
        pytest.skip(f"cannot start a Postgres with pgserver: {exc}")
    yield server.get_uri()
    with db._servers_lock:
        server.cleanup()


_DB_TYPES = {
    ColumnType.INT: "bigint",
    ColumnType.TEXT: "text",
    ColumnType.DATE: "date",
    ColumnType.MONEY: "numeric(15,3)",
    ColumnType.DECIMAL: "numeric(10,2)",
}


def _db_type(relation: str, name: str) -> str:
    if relation == "district":
        return "text"
    if name == "birth_date":
        return "date"
    if name == "gender":
        return "text"
    return _DB_TYPES[next(c.type for c in RELATIONS[relation].columns if c.name == name)]


def test_database_source_matches_file_reader(real_sources: Sources, postgres_uri: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    _, fin = real_sources
    with pytest.raises(SourceError, match="lacks tables fin_district, fin_account, fin_client"):
        detect_source(postgres_uri)
    with psycopg.connect(postgres_uri, autocommit=True) as connection:
        for relation in LOAD_ORDER:
            table = "fin_trans_partial" if relation == "trans" else f"fin_{relation}"
            columns = ", ".join(f'"{name}" {_db_type(relation, name)}' for name in FIN_COLUMN_ORDER[relation])
            connection.execute(f"CREATE TABLE {table} ({columns})")
            with open(fin[relation].location, encoding="utf-8") as fh:
                lines = list(itertools.islice(fh, 300))
            with connection.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for line in reversed(lines):
                    copy.write_row([field or None for field in line.rstrip("\n").split("\t")])
        connection.execute(
            "INSERT INTO fin_trans_partial VALUES (1, 2378, '2013-01-01', 70, 70.005, 'X', NULL, NULL, NULL, NULL)"
        )
    sources = detect_source(postgres_uri)
    assert sources["trans"].location == f"{postgres_uri}#fin_trans_partial"
    assert {source.format for source in sources.values()} == {SourceFormat.DATABASE}
    for relation in LOAD_ORDER:
        db_rows = list(read_rows(sources[relation]))
        file_rows = _by_key(list(itertools.islice(read_rows(fin[relation]), 300)))
        good = [row for row in db_rows if row.reason is None]
        assert _by_key(good) == file_rows
        text_key = _db_type(relation, FIN_COLUMN_ORDER[relation][0]) == "text"
        assert [row.values[0] for row in good] == sorted(file_rows, key=str if text_key else None)
        assert [row.line_number for row in db_rows] == list(range(1, len(db_rows) + 1))
    first = list(itertools.islice(read_rows(sources["trans"]), 1))[0]
    assert first.raw_line == "1\t2378\t2013-01-01\t70.000\t70.005\tX\t\t\t\t"
    assert first.reason == "unknown code 'X' in column type"
    digest = sources["trans"].sha256()
    assert digest == sources["trans"].sha256() and len(digest) == 64
    with psycopg.connect(postgres_uri, autocommit=True) as connection:
        connection.execute("UPDATE fin_trans_partial SET type = 'C' WHERE trans_id = 1")
    assert sources["trans"].sha256() != digest
    assert next(iter(read_rows(sources["trans"]))).values[3:6] == ("PRIJEM", None, Decimal("700.00"))


MUTATIONS = [
    "",
    " ",
    "?",
    '""',
    '" "',
    "1e3",
    "NaN",
    "Infinity",
    "-0.00",
    "1_000",
    " 12",
    "12 ",
    "1.5",
    "1.505",
    "100",
    "9999999999999.99",
    "2016-02-29",
    "930229",
    "931107 00:00:00",
    "931107 12:00:00",
    "C",
    '"PRIJEM"',
    "prague",
    "12541.00",
    ".29",
    "9" * 19,
]


@pytest.mark.parametrize("fmt", [SourceFormat.PKDD99, SourceFormat.FIN], ids=["asc", "fin"])
def test_fast_path_agrees_with_full_parsers(real_sources: Sources, fmt: SourceFormat) -> None:
    """Whatever the fast path accepts, the full per-column parsers accept with identical values."""
    from ads_assets.lib.berka import formats

    rng = random.Random(99)
    sources = real_sources[0] if fmt == SourceFormat.PKDD99 else real_sources[1]
    for relation in LOAD_ORDER:
        layout = formats._layout(relation, fmt)
        base = [row.raw_line.split(layout.separator) for row in itertools.islice(read_rows(sources[relation]), 200)]
        for _ in range(1500):
            fields = list(rng.choice(base))
            for _ in range(rng.randint(1, 2)):
                position = rng.randrange(len(fields))
                fields[position] = rng.choice([*MUTATIONS, fields[position][:-1], fields[position] + "0"])
            line = layout.separator.join(fields)
            full = formats._full_parse(layout, 1, line, fields)
            try:
                fast = layout.convert(fields)
            except Exception:  # noqa: S112 - lines the fast path rejects are out of scope; only accepted ones are compared
                continue
            assert (repr(fast), full.reason) == (repr(full.values), None), line
