"""The last month of transactions a source and the raw table hold: what the `new_months` sensor compares with the
month partitions it knows."""

from __future__ import annotations

import os
from datetime import date

import psycopg

from ads_assets.lib.berka.formats import SourceFile, SourceFormat
from ads_assets.lib.berka.schema import RELATIONS
from ads_assets.lib.ingest import plausible_window, transaction_span
from ads_assets.lib.raw_schema import raw_table

SPAN_RELATIONS = ("account", "trans")
"""The relations a source's month span is read from: transactions, and accounts for the plausible window."""


def source_signature(sources: dict[str, SourceFile]) -> str | None:
    """What changes when the source's transactions or accounts change: each file's size and modification
    time; None for a database source, which has no cheap one (its span is read again)."""
    parts = []
    for relation in SPAN_RELATIONS:
        source = sources[relation]
        if source.format == SourceFormat.DATABASE:
            return None
        status = os.stat(source.location)
        parts.append(f"{relation}:{status.st_size}:{status.st_mtime_ns}")
    return ";".join(parts)


def source_last_month(sources: dict[str, SourceFile]) -> str:
    """The last month (YYYY-MM) of the source's readable transactions inside the plausible window."""
    return transaction_span(sources["trans"], plausible_window(sources["account"])).last


def raw_last_month(connection: psycopg.Connection) -> str | None:
    """The last month (YYYY-MM) of the rows in `raw.fin_trans` that are not after today; None when there are none."""
    table = raw_table(RELATIONS["trans"])
    if connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
        return None
    (last,) = connection.execute(
        f"SELECT max(date) FROM {table} WHERE date <= %s",  # noqa: S608 - table name from the RELATIONS constants
        (date.today(),),
    ).fetchone()
    return f"{last:%Y-%m}" if last else None
