"""The data-quality report of a run: Data Docs in `{output}/quality/` and a summary of `quality.check_results`.

A local output gets the Data Docs built in place; an `s3://` output gets them built into a temporary
folder and uploaded through the `OutputStore`, every file with its Content-Type.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.quality.docs import SITE_MARKER, build_data_docs
from ads_assets.lib.quality.store import (
    CheckRecord,
    StoredValidation,
    check_results_for_run,
    ensure_quality_schema,
    validations_for_report,
)
from ads_assets.lib.quality.suites import SuiteSpec, feature_suite_spec, raw_suite_specs
from ads_assets.lib.storage import LocalLocation, OutputStore

QUALITY_FOLDER = "quality"
HISTORY_RUNS = 10
"""The Data Docs keep the validation results of this many runs (the newest), each under its run's name."""


@dataclass
class QualityReport:
    """Where the Data Docs were published and how the run's checks came out.

    `url` is the file:// or s3:// URL of the index page; `index` is that page on disk for a local output.
    """

    url: str
    index: Path | None
    validations: int
    files: int
    records: list[CheckRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckRecord]:
        return [record for record in self.records if not record.success]

    def summary(self) -> dict[str, int]:
        outcome = Counter("passed" if record.success else f"failed_{record.severity}" for record in self.records)
        return {"results": len(self.records), **dict(sorted(outcome.items()))}

    def markdown(self, limit: int = 50) -> str:
        lines = ["| asset | check | partition | severity | success |", "| --- | --- | --- | --- | --- |"]
        shown = self.failed or self.records
        for record in shown[:limit]:
            lines.append(
                f"| {record.asset} | {record.check_name} | {record.partition or 'all'} | {record.severity} | "
                f"{'yes' if record.success else '**no**'} |"
            )
        if len(shown) > limit:
            lines.append(f"| ... | {len(shown) - limit} more | | | |")
        return "\n".join(lines)


def publish_data_docs(
    store: OutputStore, suites: list[SuiteSpec], validations: list[StoredValidation]
) -> tuple[str, Path | None, int]:
    """Build the Data Docs into `{store}/quality/`; returns the index's URL, its local path if any, the file count."""
    if isinstance(store.location, LocalLocation):
        index = build_data_docs(store.location.path(QUALITY_FOLDER), suites, validations)
        return index.as_uri(), index, sum(1 for path in index.parent.rglob("*") if path.is_file())
    with tempfile.TemporaryDirectory(prefix="ads-data-docs-") as folder:
        built = build_data_docs(Path(folder) / QUALITY_FOLDER, suites, validations)
        published = store.publish_folder(built.parent, QUALITY_FOLDER, marker=SITE_MARKER)
    return store.url(f"{QUALITY_FOLDER}/{built.name}"), None, len(published)


def publish_quality_report(target: PostgresTarget, run_id: str, store: OutputStore) -> QualityReport:
    """Publish Data Docs of the run's validations (or the latest ones) and of the runs before it to
    `{output}/quality/`, and summarize the run's checks."""
    with connect(target, autocommit=True) as connection:
        ensure_quality_schema(connection)
        validations = validations_for_report(connection, run_id, history=HISTORY_RUNS)
        records = check_results_for_run(connection, run_id)
    suites = [*raw_suite_specs().values(), feature_suite_spec()]
    url, index, files = publish_data_docs(store, suites, validations)
    return QualityReport(url=url, index=index, validations=len(validations), files=files, records=records)
