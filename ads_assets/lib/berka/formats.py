"""Readers for the Berka relations in both published file formats and in a `fin_*` database.

`detect_source` maps a folder (PKDD'99 `*.asc` files or `fin_*.tsv` files) or a database URL to one
`SourceFile` per relation; `read_rows` streams a source as `ParsedRow`s whose values are canonical
(see `schema.py`): int, str, datetime.date, Decimal quantized to 2 places, or None.

Rows are parsed by a fast path (C-level converters and memo tables) and, whenever that fails, by
the full per-column parsers, which decide acceptance and name the offending column and value.

What a file may hold, line by line, and what becomes of the rest (each bad record is one rejected row,
never the end of the file): line ends are LF, CRLF or any run of CRs beside the LF (`\r\r\n`); a
`.asc` field in double quotes may hold `;`, doubled quotes and line breaks (csv-module semantics; the
field count is judged after quoting), while `fin_*.tsv` fields are never quoted; a control character
(C0, DEL or C1) other than the tab that separates `fin_*` fields rejects its record, and so does a
line (or quoted record) longer than `MAX_LINE_BYTES`, of which only the first `SHOWN_BYTES` are kept;
numbers are ASCII digits with an optional sign and decimal point, in ASCII spaces.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal, Inexact, InvalidOperation
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, NoReturn

from .schema import (
    FIN_AMOUNT_SCALE,
    FIN_CODES,
    FIN_COLUMN_ORDER,
    FIN_DATE_SHIFT_YEARS,
    FIN_MONEY_COLUMNS,
    LOAD_ORDER,
    REGIONS,
    RELATIONS,
    Column,
    ColumnType,
)

__all__ = [
    "MAX_LINE_BYTES",
    "ParsedRow",
    "SourceError",
    "SourceFile",
    "SourceFormat",
    "canonical_line",
    "detect_source",
    "fin_fields",
    "parse_source_date",
    "read_rows",
]


class SourceFormat(StrEnum):
    """The convention a source follows: PKDD'99 `*.asc` files, `fin_*.tsv` files, or `fin_*` tables."""

    PKDD99 = "asc"
    FIN = "fin"
    DATABASE = "database"


class SourceError(Exception):
    """A source cannot be used as a whole; the message is one user-facing line."""


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One line (or table row): canonical `values` when accepted, else None and the `reason`.

    `line_number` is 1-based and counts every line of the file, the `.asc` header included (for a table,
    the row's ordinal in key order); `raw_line` is the line without its line end (for a table, the
    tab-joined values), undecodable bytes shown as backslash escapes.
    """

    line_number: int
    raw_line: str
    values: tuple | None
    reason: str | None


@dataclass(frozen=True)
class SourceFile:
    """Where one relation comes from: a file path, or `<database URL>#<table>` for a database table."""

    relation: str
    location: str
    format: SourceFormat

    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes, or of a row-count and row-hash digest of a database table."""
        if self.format == SourceFormat.DATABASE:
            return _table_digest(self)
        digest = hashlib.sha256()
        try:
            with open(self.location, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise SourceError(f"cannot read {self.location}: {exc.strerror or exc}") from None
        return digest.hexdigest()


ASC_FILES: dict[str, str] = {relation: f"{relation}.asc" for relation in LOAD_ORDER}
FIN_FILES: dict[str, str] = {relation: f"fin_{relation}.tsv" for relation in LOAD_ORDER}
FIN_TABLES: dict[str, str] = {relation: f"fin_{relation}" for relation in LOAD_ORDER}

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_CENT = Decimal("0.01")
_FIN_SCALE = Decimal(FIN_AMOUNT_SCALE)
_PRECISION = {ColumnType.MONEY: 14, ColumnType.DECIMAL: 10}
_EXACT = Context(prec=28, traps=[InvalidOperation, Inexact])
_MEMO_LIMIT = 1 << 16
_BLOCK_SIZE = 1 << 22
MAX_LINE_BYTES = 1 << 20
"""The longest line (or quoted record spanning lines) a file may hold; a longer one is rejected."""
SHOWN_BYTES = 1000
"""How much of an over-long line a rejected row keeps in `raw_line`."""
_LONG_CHARS = MAX_LINE_BYTES // 4
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_CONTROL = {
    SourceFormat.PKDD99: re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]").search,
    SourceFormat.FIN: re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]").search,
}
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]").search
_ORDINARY_BYTES = {
    SourceFormat.PKDD99: bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\n",
    SourceFormat.FIN: bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\n\t",
}
_C1_BYTES = re.compile(b"\xc2[\x80-\x9f]")
_CR_NOISE = re.compile(rb"\r+(?=\n)|(?<=\n)\r+|\A\r+|\r+\Z")
_QUOTED_REST = re.compile(r'(?:[^"]+|"")*(")?')
_NEVER_EMPTY = frozenset({"district", "account", "client", "disp", "trans"})
_FETCH_ROWS = 10_000
_MIDNIGHT = " 00:00:00"
_GENDERS = frozenset({"M", "F"})
_FIN_REGION = ("district", "a3")
_REGION_BY_FOLDED = {region.casefold(): region for region in REGIONS}
_KIND_NAMES = {
    ColumnType.INT: "int",
    ColumnType.DATE: "date",
    ColumnType.MONEY: "amount",
    ColumnType.DECIMAL: "number",
}


class _Reject(Exception):
    """A field or row the full parsers refuse; `args[0]` is the reason."""


def _shown(value: str) -> str:
    return f"'{value}'" if len(value) <= 40 else f"'{value[:37]}...'"


def _unquote(raw: str) -> str | None:
    """The value of a `.asc` field: unquoted as is, quoted without its quotes and with doubled quotes made
    single; None when its quotes are not those of one whole quoted field."""
    if '"' not in raw:
        return raw
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        inner = raw[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return None


def _ascii_number(text: str) -> str:
    """`text` without its surrounding spaces when it is ASCII digits with an optional sign and decimal point."""
    core = text.strip(" ")
    if _NUMBER.fullmatch(core) is None:
        raise ValueError(text)
    return core


def _asc_date(text: str) -> date:
    core = text[:6] if len(text) == 15 and text.endswith(_MIDNIGHT) else text
    if len(core) != 6 or not (core.isascii() and core.isdigit()):
        raise ValueError(text)
    return date(1900 + int(core[:2]), int(core[2:4]), int(core[4:]))


def _fin_date(text: str) -> date:
    core = text[:10] if len(text) == 19 and text.endswith(_MIDNIGHT) else text
    digits = core[:4] + core[5:7] + core[8:]
    if len(core) != 10 or core[4] != "-" or core[7] != "-" or not (digits.isascii() and digits.isdigit()):
        raise ValueError(text)
    return date(int(core[:4]) - FIN_DATE_SHIFT_YEARS, int(core[5:7]), int(core[8:]))


def _plain_decimal(text: str) -> Decimal:
    return Decimal(_ascii_number(text))


def _int(text: str) -> int:
    core = _ascii_number(text)
    if "." in core:
        number = Decimal(core)
        if number != number.to_integral_value():
            raise ValueError(text)
        value = int(number)
    else:
        value = int(core)
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(text)
    return value


def _fail() -> NoReturn:
    raise ValueError("left to the full parser")


def _quantizer(precision: int) -> Callable[[Decimal, Decimal], Decimal]:
    """Context.quantize that raises unless the result is exact and has at most `precision` digits."""
    return Context(prec=precision, traps=[InvalidOperation, Inexact]).quantize


def _number_parser(precision: int, scale: Decimal | None) -> Callable[[str], Decimal]:
    quantize = _quantizer(precision)
    multiplier = Decimal(1) if scale is None else scale

    def parse(text: str) -> Decimal:
        value = quantize(_EXACT.multiply(_plain_decimal(text), multiplier), _CENT)
        if value.is_nan():
            raise ValueError(text)
        return value

    return parse


def _code_parser(name: str, codes: frozenset[str], mapping: dict[str, str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = mapping.get(text, text)
        if value in codes:
            return value
        raise _Reject(f"unknown code {_shown(text)} in column {name}")

    return parse


def _region(text: str) -> str:
    return _REGION_BY_FOLDED.get(text.casefold(), text)


class _Memo(dict):
    """Maps a raw field to its parsed value, filling itself from `parse` up to _MEMO_LIMIT entries."""

    __slots__ = ("parse",)

    def __init__(self, parse: Callable[[str], Any]) -> None:
        super().__init__()
        self.parse = parse

    def __missing__(self, raw: str) -> Any:
        value = self.parse(raw)
        if len(self) < _MEMO_LIMIT:
            self[raw] = value
        return value


@dataclass(frozen=True)
class _Field:
    """One field of a line: its name, its full parser, and optionally a fast expression.

    `parse` turns the raw field into a canonical value or raises _Reject with the reason. `fast` is a
    Python expression in `{v}` (the raw field) that must either raise or equal `parse`; without it the
    fast path looks the raw field up in a memo of `parse`.
    """

    name: str
    parse: Callable[[str], Any]
    fast: str | None = None


def _field(
    name: str,
    kind: ColumnType | str,
    nullable: bool,
    fmt: SourceFormat,
    convert: Callable[[str], Any],
    fast: str | None = None,
) -> _Field:
    quoted = fmt == SourceFormat.PKDD99
    label = _KIND_NAMES.get(kind, "value")

    def parse(raw: str) -> Any:
        text = _unquote(raw) if quoted else raw
        if text is None:
            raise _Reject(f"bad quoting {_shown(raw)} in column {name}")
        if not text.strip() or (quoted and raw.strip() == "?"):
            if nullable:
                return None
            raise _Reject(f"missing required value in column {name}")
        try:
            return convert(text)
        except _Reject:
            raise
        except (ValueError, ArithmeticError, TypeError):
            raise _Reject(f"bad {label} {_shown(text)} in column {name}") from None

    return _Field(name, parse, fast)


def _column_field(relation: str, column: Column, fmt: SourceFormat) -> _Field:
    fin = fmt != SourceFormat.PKDD99
    kind = column.type
    fast = None
    if kind == ColumnType.INT:
        convert: Callable[[str], Any] = _int
        if column.name == RELATIONS[relation].key:
            fast = "int({v}) if {v}.isdigit() and {v}.isascii() and len({v}) < 19 else _fail()"
    elif kind == ColumnType.DATE:
        convert = _fin_date if fin else _asc_date
    elif kind in (ColumnType.MONEY, ColumnType.DECIMAL):
        precision = _PRECISION[kind]
        scaled = fin and (relation, column.name) in FIN_MONEY_COLUMNS
        convert = _number_parser(precision, _FIN_SCALE if scaled else None)
        if not column.nullable:
            number = "_MUL({x}, _TEN)" if scaled else "{x}"
            fast = (
                f"_Q{precision}({number}, _CENT) "
                'if {v}.isascii() and "_" not in {v} and "e" not in {v} and "E" not in {v} '
                "and ({x} := _D({v})).is_finite() else _fail()"
            )
    elif column.codes is not None:
        mapping = FIN_CODES.get((relation, column.name), {}) if fin else {}
        code = _code_parser(column.name, column.codes, mapping)
        convert = (lambda text: code(_region(text))) if fin and (relation, column.name) == _FIN_REGION else code
    else:
        convert = str
    return _field(column.name, kind, column.nullable, fmt, convert, fast)


def _birth_number(born: date, gender: str) -> str:
    month = born.month + 50 if gender == "F" else born.month
    return f"{born.year % 100:02d}{month:02d}{born.day:02d}"


def _compile(fields: tuple[_Field, ...], order: Sequence[int]) -> Callable[[Sequence[str]], tuple]:
    """Builds the fast path: one function from a line's fields to the canonical tuple (columns in
    `order`, by field position) that raises on anything the full parsers would have to judge."""
    names = [f"f{position}" for position in range(len(fields))]
    namespace: dict[str, Any] = {
        "_D": Decimal,
        "_MUL": _EXACT.multiply,
        "_TEN": _FIN_SCALE,
        "_CENT": _CENT,
        "_fail": _fail,
        **{f"_Q{precision}": _quantizer(precision) for precision in _PRECISION.values()},
    }
    expressions = []
    for position in order:
        field = fields[position]
        if field.fast is None:
            namespace[f"m{position}"] = _Memo(field.parse)
            expressions.append(f"m{position}[{names[position]}]")
        else:
            expressions.append(f"({field.fast.format(v=names[position], x=f'x{position}')})")
    source = f"def convert(fields):\n    {', '.join(names)}, = fields\n    return ({', '.join(expressions)},)\n"
    exec(source, namespace)  # noqa: S102 - compiles the parse fast path from the module's own field templates
    return namespace["convert"]


def _no_fast_path(fields: Sequence[str]) -> tuple:
    raise ValueError("no fast path")


@dataclass(frozen=True)
class _Layout:
    """How one relation is laid out in one format: its fields in line order, the full conversion of
    their parsed values to the canonical tuple (`assemble`), and the fast path (`convert`)."""

    relation: str
    separator: str
    fields: tuple[_Field, ...]
    assemble: Callable[[list], tuple]
    convert: Callable[[Sequence[str]], tuple]

    @property
    def width(self) -> int:
        return len(self.fields)


def _layout(relation: str, fmt: SourceFormat) -> _Layout:
    columns = {column.name: column for column in RELATIONS[relation].columns}
    canonical = RELATIONS[relation].column_names
    if fmt == SourceFormat.PKDD99:
        fields = tuple(_column_field(relation, columns[name], fmt) for name in canonical)
        return _Layout(relation, ";", fields, tuple, _compile(fields, range(len(fields))))
    order = FIN_COLUMN_ORDER[relation]
    if relation == "client":
        fields = (
            _column_field(relation, columns["client_id"], fmt),
            _field("birth_date", ColumnType.DATE, False, fmt, _fin_date),
            _field("gender", "code", False, fmt, _code_parser("gender", _GENDERS, {})),
            _column_field(relation, columns["district_id"], fmt),
        )

        def assemble(values: list) -> tuple:
            client_id, born, gender, district_id = values
            return (client_id, _birth_number(born, gender), district_id)

        return _Layout(relation, "\t", fields, assemble, _no_fast_path)
    fields = tuple(_column_field(relation, columns[name], fmt) for name in order)
    positions = tuple(order.index(name) for name in canonical)
    return _Layout(relation, "\t", fields, itemgetter(*positions), _compile(fields, positions))


_new_row = object.__new__
_set_line_number = ParsedRow.line_number.__set__  # type: ignore[attr-defined]
_set_raw_line = ParsedRow.raw_line.__set__  # type: ignore[attr-defined]
_set_values = ParsedRow.values.__set__  # type: ignore[attr-defined]
_set_reason = ParsedRow.reason.__set__  # type: ignore[attr-defined]


def _accepted(number: int, line: str, values: tuple) -> ParsedRow:
    """ParsedRow(number, line, values, None), built through the slots (twice as fast as __init__)."""
    row = _new_row(ParsedRow)
    _set_line_number(row, number)
    _set_raw_line(row, line)
    _set_values(row, values)
    _set_reason(row, None)
    return row


def _full_parse(layout: _Layout, number: int, line: str, fields: Sequence[str]) -> ParsedRow:
    if not line.strip():
        return ParsedRow(number, line, None, "blank line")
    if len(fields) != layout.width:
        return ParsedRow(number, line, None, f"expected {layout.width} fields, found {len(fields)}")
    values = []
    try:
        for field, raw in zip(layout.fields, fields, strict=True):
            values.append(field.parse(raw))
        return ParsedRow(number, line, layout.assemble(values), None)
    except _Reject as exc:
        return ParsedRow(number, line, None, exc.args[0])


def _utf8_reason(raw: bytes, exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start + 1}"


def _too_long(number: int, text: str, size: int, what: str = "line") -> ParsedRow:
    """The rejected row of an over-long line: its first SHOWN_BYTES characters, an ellipsis, its size."""
    return ParsedRow(
        number,
        text[:SHOWN_BYTES] + "…",
        None,
        f"{what} of {size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes",
    )


class _LongLine(NamedTuple):
    """A line longer than MAX_LINE_BYTES, skipped while reading: its first SHOWN_BYTES and its length."""

    prefix: bytes
    size: int


class _Block(NamedTuple):
    """Consecutive lines of a file, line ends removed: str lines when the block is valid UTF-8, else bytes
    lines; `plain` when the fast path may take every line as it is (valid UTF-8, no control character, no
    line longer than MAX_LINE_BYTES // 4)."""

    lines: list
    plain: bool


def _normalized(data: bytes) -> bytes:
    """`data` with CRLF made LF and every CR that touches a line end (or the start or end of `data`) removed."""
    if b"\r" not in data:
        return data
    data = data.replace(b"\r\n", b"\n")
    return _CR_NOISE.sub(b"", data) if b"\r" in data else data


def _block(data: bytes, ordinary: bytes) -> _Block:
    control = bool(data.translate(None, ordinary)) or (b"\xc2" in data and _C1_BYTES.search(data) is not None)
    try:
        lines: list = data.decode("utf-8").split("\n")
        utf8 = True
    except UnicodeDecodeError:
        lines = data.split(b"\n")
        utf8 = False
    long = len(data) > _LONG_CHARS and max(map(len, lines)) > _LONG_CHARS
    return _Block(lines, utf8 and not control and not long)


def _blocks(fh: BinaryIO, ordinary: bytes) -> Iterator[_Block | _LongLine]:
    """The remaining lines of `fh` in blocks, line ends normalized; a line longer than MAX_LINE_BYTES that
    does not fit a block is skipped, not held, and comes as a _LongLine in its place."""
    tail = b""
    chunk = fh.read(_BLOCK_SIZE)
    while chunk:
        cut = chunk.rfind(b"\n")
        if cut < 0 and len(tail) + len(chunk) <= MAX_LINE_BYTES:
            tail += chunk
            chunk = fh.read(_BLOCK_SIZE)
        elif cut < 0:
            prefix, size = (tail + chunk[:SHOWN_BYTES])[:SHOWN_BYTES], len(tail) + len(chunk)
            tail = rest = b""
            while chunk := fh.read(_BLOCK_SIZE):
                end = chunk.find(b"\n")
                if end >= 0:
                    size += len(chunk[:end].rstrip(b"\r"))
                    rest = chunk[end + 1 :]
                    break
                size += len(chunk)
            yield _LongLine(prefix, size)
            chunk = rest or fh.read(_BLOCK_SIZE)
        else:
            data = tail + chunk[: cut + 1] if tail else chunk[: cut + 1]
            tail = chunk[cut + 1 :]
            chunk = b""
            block = _normalized(data)[:-1]
            data = b""
            yield _block(block, ordinary)
            chunk = fh.read(_BLOCK_SIZE)
    if tail and (block := _normalized(tail)):
        yield _block(block, ordinary)


def _scan(line: str, fields: list[str], open_field: list[str] | None) -> list[str] | None:
    """Splits one line of a `.asc` record into raw fields (quotes kept) with csv-module semantics, appending
    them to `fields`; `open_field` holds the lines of a quoted field that an earlier line left open.

    Returns None when the record is complete, else the lines of the quoted field still open at the end.
    """
    position = 0
    if open_field is not None:
        closing = _QUOTED_REST.match(line)
        if closing.group(1) is None:
            open_field.append(line)
            return open_field
        end = line.find(";", closing.end())
        fields.append("\n".join([*open_field, line if end < 0 else line[:end]]))
        if end < 0:
            return None
        position = end + 1
    while True:
        if line.startswith('"', position):
            closing = _QUOTED_REST.match(line, position + 1)
            if closing.group(1) is None:
                return [line[position:]]
            end = line.find(";", closing.end())
        else:
            end = line.find(";", position)
        if end < 0:
            fields.append(line[position:])
            return None
        fields.append(line[position:end])
        position = end + 1


@dataclass
class _OpenRecord:
    """A `.asc` record whose quoted field runs on past the end of its first line."""

    number: int
    lines: list[str]
    fields: list[str]
    open_field: list[str]
    size: int
    reason: str | None


class _Records:
    """Turns the lines the fast path did not take into rows: decodes them, joins the lines of a quoted
    record, and judges encoding, length, control characters, field count and each field, in that order."""

    def __init__(self, layout: _Layout, fmt: SourceFormat) -> None:
        self.layout = layout
        self.quoted = fmt == SourceFormat.PKDD99
        self.control = _CONTROL[SourceFormat.PKDD99 if self.quoted else SourceFormat.FIN]

    def take(self, number: int, line: str | bytes, open_record: _OpenRecord | None) -> ParsedRow | _OpenRecord:
        """The row of a record that ends with this line, or the record still open after it."""
        reason = None
        if type(line) is bytes:
            if open_record is None and len(line) > MAX_LINE_BYTES:
                return _too_long(number, line[:SHOWN_BYTES].decode("utf-8", "backslashreplace"), len(line))
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = _utf8_reason(line, exc)
                line = line.decode("utf-8", "backslashreplace")
        if open_record is None and reason is None and len(line) <= _LONG_CHARS and self.control(line) is None:
            try:
                return _accepted(number, line, self.layout.convert(line.split(self.layout.separator)))
            except Exception:  # noqa: S110 - fast path failed; the full parser below judges the line
                pass
        if not self.quoted:
            return self.judge(number, line, line.split(self.layout.separator), reason)
        if open_record is None:
            fields: list[str] = []
            open_field = _scan(line, fields, None)
            if open_field is None:
                return self.judge(number, line, fields, reason)
            return _OpenRecord(number, [line], fields, open_field, len(line), reason)
        open_record.lines.append(line)
        open_record.size += len(line) + 1
        open_record.reason = open_record.reason or reason
        if open_record.size > MAX_LINE_BYTES:
            return _too_long(open_record.number, "\n".join(open_record.lines), open_record.size, "quoted record")
        open_field = _scan(line, open_record.fields, open_record.open_field)
        if open_field is None:
            return self.judge(open_record.number, "\n".join(open_record.lines), open_record.fields, open_record.reason)
        open_record.open_field = open_field
        return open_record

    def unclosed(self, open_record: _OpenRecord) -> ParsedRow:
        """The row of a record whose quoted field the file (or an over-long line) ended before it closed."""
        text = "\n".join(open_record.lines)
        start = open_record.number
        return ParsedRow(start, text, None, f"quoted field opened on line {start} is never closed")

    def judge(self, number: int, text: str, fields: Sequence[str], reason: str | None) -> ParsedRow:
        """The row of one whole record: `reason` is an encoding error found while decoding it."""
        if len(text) > _LONG_CHARS and (size := len(text.encode())) > MAX_LINE_BYTES:
            return _too_long(number, text, size)
        if reason is not None:
            return ParsedRow(number, text, None, reason)
        control = _control_reason(self.layout, text, fields, self.control)
        if control is not None:
            return ParsedRow(number, text, None, control)
        return _full_parse(self.layout, number, text, fields)


def _control_reason(layout: _Layout, text: str, fields: Sequence[str], search: Callable[[str], Any]) -> str | None:
    """Names the first control character `search` finds and the column that holds it (or its position
    in `text` when the field count is wrong); None when there is none."""
    found = search(text)
    if found is None:
        return None
    if len(fields) == layout.width:
        for field, raw in zip(layout.fields, fields, strict=True):
            if (inside := search(raw)) is not None:
                return f"control character 0x{ord(inside.group()):02x} in column {field.name}"
    return f"control character 0x{ord(found.group()):02x} at position {found.start() + 1}"


def _continue(
    records: _Records, lines: Iterator, number: int, open_record: _OpenRecord
) -> Generator[ParsedRow, None, tuple[int, _OpenRecord | None]]:
    """Feeds `lines` to an open record until it ends; the generator's value is (line number, record still open)."""
    for line in lines:
        number += 1
        taken = records.take(number, line, open_record)
        if type(taken) is ParsedRow:
            yield taken
            return number, None
        open_record = taken
    return number, open_record


def _header_names(relation: str) -> tuple[tuple[str, ...], ...]:
    names = RELATIONS[relation].column_names
    if relation == "district":
        return names, tuple(f"a{i}" for i in range(1, len(names) + 1))
    return (names,)


def _expected_header(relation: str) -> str:
    accepted = _header_names(relation)
    return ";".join(accepted[-1]).upper() if relation == "district" else ";".join(accepted[0])


def _check_header(source: SourceFile, first: bytes) -> None:
    line = first.rstrip(b"\r\n").decode("utf-8", "backslashreplace").removeprefix("\ufeff")
    found = tuple((_unquote(name.strip()) or name).strip().lower() for name in line.split(";"))
    if found not in _header_names(source.relation):
        raise SourceError(
            f"{source.location}: first line is {_shown(line)}, expected the header {_expected_header(source.relation)}"
        )


def _no_rows(source: SourceFile) -> SourceError:
    if source.format == SourceFormat.PKDD99:
        return SourceError(f"{source.location} holds only its header: expected {source.relation} rows after it")
    return SourceError(f"{source.location} is empty: expected tab-separated {source.relation} rows")


def _read_file(source: SourceFile) -> Iterator[ParsedRow]:
    layout = _layout(source.relation, source.format)
    records = _Records(layout, source.format)
    separator, convert, take = layout.separator, layout.convert, records.take
    number = 0
    try:
        fh = open(source.location, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SourceError(f"cannot read {source.location}: {exc.strerror or exc}") from None
    with fh:
        if fh.peek(3)[:3] == b"\xef\xbb\xbf":
            fh.read(3)
        if source.format == SourceFormat.PKDD99:
            first = fh.readline(MAX_LINE_BYTES)
            if not first:
                raise SourceError(
                    f"{source.location} is empty: expected the header {_expected_header(source.relation)} "
                    f"and {source.relation} rows"
                )
            _check_header(source, first)
            number = 1
        header_lines = number
        open_record: _OpenRecord | None = None
        for block in _blocks(fh, _ORDINARY_BYTES[source.format]):
            if type(block) is _LongLine:
                if open_record is not None:
                    yield records.unclosed(open_record)
                    open_record = None
                number += 1
                yield _too_long(number, block.prefix.decode("utf-8", "backslashreplace"), block.size)
                continue
            lines = iter(block.lines)
            if open_record is not None:
                number, open_record = yield from _continue(records, lines, number, open_record)
                if open_record is not None:
                    continue
            if block.plain:
                for line in lines:
                    number += 1
                    try:
                        values = convert(line.split(separator))
                    except Exception:
                        taken = take(number, line, None)
                        if type(taken) is ParsedRow:
                            yield taken
                        else:
                            number, open_record = yield from _continue(records, lines, number, taken)
                    else:
                        yield _accepted(number, line, values)
            else:
                for line in lines:
                    number += 1
                    taken = take(number, line, None)
                    if type(taken) is ParsedRow:
                        yield taken
                    else:
                        number, open_record = yield from _continue(records, lines, number, taken)
        if open_record is not None:
            yield records.unclosed(open_record)
        if number == header_lines and source.relation in _NEVER_EMPTY:
            raise _no_rows(source)


def _split_location(location: str) -> tuple[str, str]:
    url, _, table = location.rpartition("#")
    if not url or not table:
        raise SourceError(f"bad database location {location!r}: expected '<url>#<table>'")
    return url, table


def _shown_url(url: str) -> str:
    from ads_assets.lib.db import redacted_url

    return redacted_url(url)


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from ads_assets.lib.db import PostgresTarget

    try:
        return create_engine(PostgresTarget.from_url(url).sqlalchemy_url(), poolclass=NullPool)
    except Exception as exc:
        raise SourceError(f"bad database URL {_shown_url(url)}: {_first_line(exc, url)}") from None


def _first_line(exc: BaseException, url: str | None = None) -> str:
    """The first line of an error, with every form of the URL's password scrubbed from it."""
    from ads_assets.lib.db import scrub, url_secrets

    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return scrub(line, *url_secrets(url)) if url else line


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_columns(relation: str) -> list[str]:
    return [f"coalesce(source.{_quoted(name)}::text, '')" for name in FIN_COLUMN_ORDER[relation]]


def _table_digest(source: SourceFile) -> str:
    url, table = _split_location(source.location)
    row_text = "concat_ws(E'\\t', " + ", ".join(_text_columns(source.relation))
    halves = ", ".join(
        f"coalesce(sum(('x' || substr(h, {start}, 16))::bit(64)::bigint::numeric), 0)" for start in (1, 17)
    )
    sql = f"SELECT count(*), {halves} FROM (SELECT md5({row_text})) AS h FROM {_quoted(table)} AS source) AS rows"  # noqa: S608 - identifiers quoted by _quoted, no values in the text
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SET datestyle TO 'ISO, YMD'")
            count, first, second = connection.exec_driver_sql(sql).one()
    except Exception as exc:
        raise SourceError(f"cannot digest {_shown_url(url)} table {table}: {_first_line(exc, url)}") from None
    finally:
        engine.dispose()
    return hashlib.sha256(f"{source.relation}:{count}:{first}:{second}".encode()).hexdigest()


def _read_table(source: SourceFile) -> Iterator[ParsedRow]:
    url, table = _split_location(source.location)
    layout = _layout(source.relation, SourceFormat.FIN)
    convert, control = layout.convert, _CONTROL[SourceFormat.FIN]
    key = _quoted(FIN_COLUMN_ORDER[source.relation][0])
    sql = f"SELECT {', '.join(_text_columns(source.relation))} FROM {_quoted(table)} AS source ORDER BY source.{key}"  # noqa: S608 - identifiers quoted by _quoted, no values in the text
    engine = _engine(url)
    try:
        connection = engine.raw_connection()
        try:
            setup = connection.cursor()
            setup.execute("SET datestyle TO 'ISO, YMD'")
            setup.close()
            cursor = connection.cursor(name=f"berka_{source.relation}")
            cursor.execute(sql)
            number = 0
            separators = layout.width - 1
            while rows := cursor.fetchmany(_FETCH_ROWS):
                for fields in rows:
                    number += 1
                    line = "\t".join(fields)
                    if line.count("\t") != separators or control(line) is not None:
                        reason = _control_reason(layout, line, fields, _ANY_CONTROL)
                        yield ParsedRow(number, line, None, reason)
                        continue
                    try:
                        values = convert(fields)
                    except Exception:
                        yield _full_parse(layout, number, line, fields)
                    else:
                        yield _accepted(number, line, values)
            cursor.close()
        finally:
            connection.close()
    except SourceError:
        raise
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "psycopg", "psycopg2"):
            raise
        raise SourceError(f"cannot read {_shown_url(url)} table {table}: {_first_line(exc, url)}") from None
    finally:
        engine.dispose()


def read_rows(source: SourceFile) -> Iterator[ParsedRow]:
    """Streams every line (or table row) of `source` as a ParsedRow, in file (or key) order.

    Accepted rows carry canonical values in `RELATIONS[relation].column_names` order; rejected rows carry
    the reason. Memory use is constant. Raises SourceError when the source cannot be read at all (missing
    file, unexpected `.asc` header, unreachable database).
    """
    if source.relation not in RELATIONS:
        raise SourceError(f"unknown relation {source.relation!r}: expected one of {', '.join(LOAD_ORDER)}")
    if source.format == SourceFormat.DATABASE:
        return _read_table(source)
    return _read_file(source)


def _trans_candidates(names: set[str], prefix: str, suffix: str) -> list[str]:
    return sorted(name for name in names if name.startswith(prefix) and name.endswith(suffix))


def _expected(files: dict[str, str], trans: str) -> str:
    return ", ".join(trans if relation == "trans" else files[relation] for relation in sorted(files))


def _folder_source(folder: Path) -> dict[str, SourceFile]:
    shown = str(folder)
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "not a folder"
        raise SourceError(
            f"{what}: {shown}: expected a folder of Berka files (PKDD'99 *.asc or fin_*.tsv) or a database URL"
        )
    try:
        names = {entry.name for entry in os.scandir(folder) if entry.is_file()}
    except OSError as exc:
        raise SourceError(f"cannot list {shown}: {exc.strerror or exc}") from None
    conventions = (
        (SourceFormat.PKDD99, "PKDD'99 *.asc files", ASC_FILES, "trans", ".asc"),
        (SourceFormat.FIN, "fin_*.tsv files", FIN_FILES, "fin_trans", ".tsv"),
    )
    found: dict[SourceFormat, dict[str, list[str]]] = {}
    for fmt, _, files, prefix, suffix in conventions:
        hits = {relation: [name] for relation, name in files.items() if relation != "trans" and name in names}
        trans = _trans_candidates(names, prefix, suffix)
        if trans:
            hits["trans"] = trans
        if hits:
            found[fmt] = hits
    if not found:
        alternatives = " or ".join(
            f"the {label} ({_expected(files, prefix + '*' + suffix)})"
            for _, label, files, prefix, suffix in conventions
        )
        raise SourceError(f"no Berka files in {shown}: expected {alternatives}")
    if len(found) > 1:
        raise SourceError(
            f"mixed formats in {shown}: found both PKDD'99 *.asc and fin_*.tsv files; expected one format per folder"
        )
    ((fmt, hits),) = found.items()
    _, label, files, prefix, suffix = next(c for c in conventions if c[0] == fmt)
    pattern = prefix + "*" + suffix
    missing = [
        pattern if relation == "trans" else files[relation] for relation in sorted(files) if relation not in hits
    ]
    if missing:
        raise SourceError(
            f"incomplete {label} in {shown}: missing {', '.join(missing)} (expected {_expected(files, pattern)})"
        )
    if len(hits["trans"]) > 1:
        raise SourceError(
            f"several transaction files in {shown}: {', '.join(hits['trans'])}; expected exactly one {pattern}"
        )
    return {relation: SourceFile(relation, str(folder / hits[relation][0]), fmt) for relation in LOAD_ORDER}


def _database_source(url: str) -> dict[str, SourceFile]:
    from sqlalchemy import inspect

    engine = _engine(url)
    try:
        inspector = inspect(engine)
        tables = set(inspector.get_table_names())
        chosen: dict[str, str] = {}
        for relation, table in FIN_TABLES.items():
            if relation == "trans" and table not in tables:
                candidates = _trans_candidates(tables, "fin_trans", "")
                if len(candidates) > 1:
                    raise SourceError(
                        f"several transaction tables in {_shown_url(url)}: {', '.join(candidates)}; "
                        "expected fin_trans or exactly one fin_trans*"
                    )
                if candidates:
                    chosen[relation] = candidates[0]
                continue
            if table in tables:
                chosen[relation] = table
        missing = [table for relation, table in FIN_TABLES.items() if relation not in chosen]
        if missing:
            raise SourceError(
                f"database {_shown_url(url)} lacks tables {', '.join(missing)}: "
                f"expected {', '.join(FIN_TABLES[relation] for relation in LOAD_ORDER)}"
            )
        for relation, table in chosen.items():
            present = {column["name"] for column in inspector.get_columns(table)}
            absent = [name for name in FIN_COLUMN_ORDER[relation] if name not in present]
            if absent:
                raise SourceError(
                    f"table {table} in {_shown_url(url)} lacks columns {', '.join(absent)}: "
                    f"expected {', '.join(FIN_COLUMN_ORDER[relation])}"
                )
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot connect to {_shown_url(url)}: {_first_line(exc, url)}") from None
    finally:
        engine.dispose()
    return {
        relation: SourceFile(relation, f"{url}#{chosen[relation]}", SourceFormat.DATABASE) for relation in LOAD_ORDER
    }


def detect_source(location: str | Path) -> dict[str, SourceFile]:
    """Maps a folder of Berka files, or a database URL, to one SourceFile per relation (all eight).

    A folder holds either the PKDD'99 `*.asc` files or the `fin_*.tsv` files, with any one `trans*.asc`
    (`fin_trans*.tsv`) as the transactions; a URL (anything containing "://") names a database with the
    `fin_*` tables. Raises SourceError, with one line naming what was expected, otherwise.
    """
    text = str(location)
    if "://" in text:
        return _database_source(text)
    return _folder_source(Path(location))


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str):
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def canonical_line(relation: str, values: tuple) -> str:
    """Canonical values as one line of PostgreSQL COPY text (tab-separated, `\\N` for NULL, ISO dates)."""
    width = len(RELATIONS[relation].columns)
    if len(values) != width:
        raise ValueError(f"{relation} has {width} columns, got {len(values)} values")
    return "\t".join(map(_copy_text, values))


def _fin_text(relation: str, name: str, value: Any, reverse: dict[str, str]) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.replace(year=value.year + FIN_DATE_SHIFT_YEARS).isoformat()
    if (relation, name) in FIN_MONEY_COLUMNS:
        return str(value / _FIN_SCALE)
    if (relation, name) == _FIN_REGION:
        return value[:1].upper() + value[1:]
    return reverse.get(value, str(value))


def fin_fields(relation: str, values: tuple, century: int = 1900) -> tuple[str, ...]:
    """The fields of a `fin_*` line (FIN_COLUMN_ORDER) for canonical `values`; inverse of the fin reader.

    fin_client's birth date takes its century from `century`, which the canonical birth_number lacks.
    """
    canonical = dict(zip(RELATIONS[relation].column_names, values, strict=True))
    if relation == "client":
        number = canonical["birth_number"]
        month = int(number[2:4])
        gender = "F" if month > 50 else "M"
        born = date(century + int(number[:2]), month - 50 if gender == "F" else month, int(number[4:6]))
        canonical["birth_date"] = born
        canonical["gender"] = gender
    out = []
    for name in FIN_COLUMN_ORDER[relation]:
        codes = FIN_CODES.get((relation, name), {})
        reverse = {czech: english for english, czech in codes.items()}
        out.append(_fin_text(relation, name, canonical[name], reverse))
    return tuple(out)


def parse_source_date(fmt: SourceFormat, text: str) -> date:
    """A date as a file of format `fmt` writes it (`YYMMDD` in `.asc`, shifted `YYYY-MM-DD` in `fin_*`); ValueError if not."""
    return _fin_date(text) if fmt == SourceFormat.FIN else _asc_date(text)
