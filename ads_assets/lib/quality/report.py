"""The data-quality report of a run: Data Docs in `{output}/quality/` and a summary of `quality.check_results`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.quality.docs import build_data_docs
from ads_assets.lib.quality.store import (
    CheckRecord,
    check_results_for_run,
    ensure_quality_schema,
    validations_for_report,
)
from ads_assets.lib.quality.suites import feature_suite_spec, raw_suite_specs

QUALITY_FOLDER = "quality"


@dataclass
class QualityReport:
    """Where the Data Docs were built and how the run's checks came out."""

    index: Path
    validations: int
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


def quality_folder(output: str) -> Path:
    """`{output}/quality/` for a local output; an s3:// output is not supported here yet."""
    if "://" in output and not output.startswith("file://"):
        raise ValueError(f"Data Docs publish to a local folder only for now, not {output}")
    return Path(output.removeprefix("file://")) / QUALITY_FOLDER


def publish_quality_report(target: PostgresTarget, run_id: str, output: str) -> QualityReport:
    """Build Data Docs of the run's validations (or the latest ones) into `{output}/quality/`."""
    with connect(target, autocommit=True) as connection:
        ensure_quality_schema(connection)
        validations = validations_for_report(connection, run_id)
        records = check_results_for_run(connection, run_id)
    suites = [*raw_suite_specs().values(), feature_suite_spec()]
    index = build_data_docs(quality_folder(output), suites, validations)
    return QualityReport(index=index, validations=len(validations), records=records)
