"""Writes canonical Berka relations as PKDD'99 `*.asc` files or `fin_*.tsv` files, plus `labels.csv`.

Both conventions follow the published files byte for byte in style. asc: `;`-separated, quoted
strings, a quoted header (district's is `A1;..;A16`), CRLF, dates YYMMDD (card issued
`YYMMDD 00:00:00`), money with two decimals (loan amounts whole), missing district numbers `?`,
empty trans operation/k_symbol `""` and empty bank/account as nothing, empty order k_symbol `" "`.
fin: tab-separated, no header, LF, dates shifted +20 years in ISO, money divided by 10, English
codes, district region capitalised and unemployment rates without a leading zero, fin_client as
birth_date + gender, empty fields empty (fin_order's empty k_symbol two spaces, as published).

Columns are formatted with Arrow compute kernels or through their distinct values, never row by row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .schema import (
    FIN_CODES,
    FIN_COLUMN_ORDER,
    FIN_DATE_SHIFT_YEARS,
    FIN_MONEY_COLUMNS,
    LOAD_ORDER,
    RELATIONS,
    Column,
    ColumnType,
)

if TYPE_CHECKING:
    from .generator import GeneratedData

Format = Literal["asc", "fin"]
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("trans_id", "account_id", "month", "kind")
_CHUNK_ROWS = 1 << 19
_EPOCH = date(1970, 1, 1)
_ASC_MISSING_TEXT = {("trans", "bank"): "", ("trans", "account"): "", ("order", "k_symbol"): '" "'}
_FIN_MISSING_TEXT = {("order", "k_symbol"): "  "}
_ASC_DECIMALS = {"a10": 1, "a12": 2, "a13": 2}


def file_name(relation: str, fmt: Format) -> str:
    """The published file name of a relation: account.asc, fin_account.tsv, ..."""
    return f"{relation}.asc" if fmt == "asc" else f"fin_{relation}.tsv"


def _by_value(values: pd.Series, render: Callable[[Any], str], missing: str) -> pa.Array:
    """Renders each distinct value once and spreads the results over the rows."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    rendered = pa.array([render(value) for value in uniques] + [missing], type=pa.string())
    return rendered.take(pa.array(np.where(codes < 0, len(uniques), codes)))


def _integers(values: pd.Series, missing: str) -> pa.Array:
    """Integers as text, `missing` for missing values."""
    if values.isna().any():
        return _by_value(values, lambda value: str(int(value)), missing)
    return pa.array(values.to_numpy(dtype=np.int64)).cast(pa.string())


def _padded(numbers: np.ndarray, width: int) -> pa.Array:
    """Non-negative integers as text, zero-padded to `width` digits."""
    return pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width, "0")


def _money(values: pd.Series, scale: int, whole_when_round: bool = False) -> pa.Array:
    """Amounts divided by `scale` (1 or 10) with two decimals, three where a tenth of a cent remains."""
    cents = np.rint(values.to_numpy(dtype=float) * 100).astype(np.int64)
    units = np.abs(cents)
    sign = pc.if_else(pa.array(cents < 0), "-", "")
    if scale == 1:
        whole, fraction = _padded(units // 100, 1), _padded(units % 100, 2)
        exact = units % 100 == 0 if whole_when_round else np.zeros(len(units), dtype=bool)
        text = pc.binary_join_element_wise(sign, whole, ".", fraction, "")
        return pc.if_else(pa.array(exact), pc.binary_join_element_wise(sign, whole, ""), text)
    whole = _padded(units // (100 * scale), 1)
    two = _padded((units // scale) % 100, 2)
    three = _padded(units % (100 * scale), 3)
    fraction = pc.if_else(pa.array(units % scale == 0), two, three)
    return pc.binary_join_element_wise(sign, whole, ".", fraction, "")


def _as_date(value: Any) -> date:
    """A datetime-like value as a date."""
    if isinstance(value, date) and not isinstance(value, pd.Timestamp):
        return value
    return pd.Timestamp(value).date()


def _shifted(value: Any) -> date:
    """The date FIN_DATE_SHIFT_YEARS later (29 February becomes 1 March where needed)."""
    day = _as_date(value)
    try:
        return day.replace(year=day.year + FIN_DATE_SHIFT_YEARS)
    except ValueError:
        return day.replace(year=day.year + FIN_DATE_SHIFT_YEARS, day=28) + timedelta(days=1)


def _asc_date(relation: str, name: str) -> Callable[[Any], str]:
    """Renders dates as YYMMDD, card issue dates with a midnight time."""
    suffix = " 00:00:00" if (relation, name) == ("card", "issued") else ""
    return lambda value: _as_date(value).strftime("%y%m%d") + suffix


def _asc_decimal(name: str) -> Callable[[Any], str]:
    """Renders district decimals with the published number of places."""
    decimals = _ASC_DECIMALS.get(name, 2)
    return lambda value: f"{float(value):.{decimals}f}"


def _fin_decimal(name: str) -> Callable[[Any], str]:
    """Renders district decimals as Teradata exports them (unemployment rates without a leading 0)."""
    if name == "a10":
        return lambda value: f"{float(value):.1f}"
    return lambda value: f"{float(value):.2f}".removeprefix("0")


def _asc_column(relation: str, column: Column, values: pd.Series) -> pa.Array:
    """One column of an asc file."""
    kind, name = column.type, column.name
    if kind == ColumnType.INT:
        return _integers(values, "?")
    if kind == ColumnType.MONEY:
        return _money(values, 1, whole_when_round=(relation, name) == ("loan", "amount"))
    if kind == ColumnType.DECIMAL:
        return _by_value(values, _asc_decimal(name), "?")
    if kind == ColumnType.DATE:
        return _by_value(values, _asc_date(relation, name), "")
    missing = _ASC_MISSING_TEXT.get((relation, name), '""')
    return _by_value(values, lambda value: f'"{value}"', missing)


def _fin_text(relation: str, name: str) -> Callable[[Any], str]:
    """Renders text with the English fin codes (district regions capitalised)."""
    english = {czech: code for code, czech in FIN_CODES.get((relation, name), {}).items()}
    if (relation, name) == ("district", "a3"):
        return lambda value: value[:1].upper() + value[1:]
    return lambda value: english.get(value, str(value))


def _fin_column(relation: str, column: Column, values: pd.Series) -> pa.Array:
    """One column of a fin file."""
    kind, name = column.type, column.name
    if (relation, name) == ("district", "a11"):
        return _by_value(values, lambda value: f"{int(value)}.00", "")
    if kind == ColumnType.INT:
        return _integers(values, "")
    if kind == ColumnType.MONEY:
        return _money(values, 10 if (relation, name) in FIN_MONEY_COLUMNS else 1)
    if kind == ColumnType.DECIMAL:
        return _by_value(values, _fin_decimal(name), "")
    if kind == ColumnType.DATE:
        return _by_value(values, lambda value: _shifted(value).isoformat(), "")
    return _by_value(values, _fin_text(relation, name), _FIN_MISSING_TEXT.get((relation, name), ""))


def _born(birth_number: str) -> tuple[date, str]:
    """Birth date and gender (M/F) encoded in a birth number."""
    month = int(birth_number[2:4])
    female = month > 50
    born = date(1900 + int(birth_number[:2]), month - 50 if female else month, int(birth_number[4:6]))
    return born, "F" if female else "M"


def _fin_client_columns(frame: pd.DataFrame) -> dict[str, pa.Array]:
    """fin_client's birth_date and gender columns."""
    numbers = frame["birth_number"]
    return {
        "birth_date": _by_value(numbers, lambda value: _shifted(_born(value)[0]).isoformat(), ""),
        "gender": _by_value(numbers, lambda value: _born(value)[1], ""),
    }


def _asc_columns(relation: str, frame: pd.DataFrame) -> list[pa.Array]:
    """The columns of an asc file, in canonical order."""
    return [_asc_column(relation, column, frame[column.name]) for column in RELATIONS[relation].columns]


def _fin_columns(relation: str, frame: pd.DataFrame) -> list[pa.Array]:
    """The columns of a fin file, in FIN_COLUMN_ORDER."""
    columns = {column.name: column for column in RELATIONS[relation].columns}
    special = _fin_client_columns(frame) if relation == "client" else {}
    return [
        special[name] if name in special else _fin_column(relation, columns[name], frame[name])
        for name in FIN_COLUMN_ORDER[relation]
    ]


def _asc_header(relation: str) -> str:
    """The header line of an asc file."""
    names = RELATIONS[relation].column_names
    if relation == "district":
        return ";".join(f"A{position}" for position in range(1, len(names) + 1))
    return ";".join(f'"{name}"' for name in names)


def _write_lines(handle: Any, columns: list[pa.Array], separator: str, terminator: str) -> None:
    """Writes one line per row: the columns' strings joined by `separator`, ended by `terminator`."""
    if not len(columns[0]):
        return
    lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*columns, separator), "", terminator)
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(
        lines.buffers()[1], dtype=width, count=len(lines) + 1, offset=lines.offset * width().itemsize
    )
    handle.write(memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])])


def write_relation(frame: pd.DataFrame, relation: str, path: Path, fmt: Format) -> Path:
    """Writes one canonical relation frame to `path` in the `fmt` convention."""
    build = _asc_columns if fmt == "asc" else _fin_columns
    separator, terminator = (";", "\r\n") if fmt == "asc" else ("\t", "\n")
    with open(path, "wb") as handle:
        if fmt == "asc":
            handle.write((_asc_header(relation) + terminator).encode())
        for start in range(0, len(frame), _CHUNK_ROWS):
            _write_lines(handle, build(relation, frame.iloc[start : start + _CHUNK_ROWS]), separator, terminator)
    return path


def write_labels(labels: pd.DataFrame, path: Path) -> Path:
    """Writes anomaly labels as CSV (trans_id,account_id,month,kind; trans_id empty for missing_bill)."""
    with open(path, "wb") as handle:
        handle.write((",".join(LABEL_COLUMNS) + "\n").encode())
        columns = [
            _integers(labels["trans_id"], ""),
            _integers(labels["account_id"], ""),
            _by_value(labels["month"], str, ""),
            _by_value(labels["kind"], str, ""),
        ]
        _write_lines(handle, columns, ",", "\n")
    return path


def write_dataset(data: GeneratedData, out_dir: Path, fmt: Format) -> dict[str, Path]:
    """Writes the eight relations in the `fmt` convention and labels.csv into `out_dir`.

    Returns the path of each file by relation name, plus "labels".
    """
    if fmt not in ("asc", "fin"):
        raise ValueError(f"format must be 'asc' or 'fin', got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        relation: write_relation(data.relations[relation], relation, out_dir / file_name(relation, fmt), fmt)
        for relation in LOAD_ORDER
    }
    paths["labels"] = write_labels(data.labels, out_dir / LABELS_FILE)
    return paths
