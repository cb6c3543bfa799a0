"""Publishing the anomaly report of a run to `{output}/report/index.html`, locally or on S3."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.report.data import read_report_data
from ads_assets.lib.report.page import build_page
from ads_assets.lib.storage import LocalLocation, OutputStore

REPORT_PAGE = "report/index.html"


@dataclass(frozen=True)
class PublishedReport:
    """Where a run's report page went (`url`: file:// or s3://; `index`: the file, for a local output) and
    what it counts."""

    url: str
    index: Path | None
    transactions: int
    flagged: int
    size: int
    """The page's size in bytes."""


def publish_report(target: PostgresTarget, run_id: str, store: OutputStore) -> PublishedReport:
    """Build the report of run `run_id` from the database at `target` and write it to `{store}/report/index.html`."""
    with connect(target) as connection:
        data = read_report_data(connection, run_id)
    page = build_page(data).encode("utf-8")
    url = store.write_text(REPORT_PAGE, page)
    index = store.location.path(REPORT_PAGE) if isinstance(store.location, LocalLocation) else None
    return PublishedReport(url=url, index=index, transactions=data.transactions, flagged=data.flagged, size=len(page))
