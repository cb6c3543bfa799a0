"""Which months an `ads run` must redo, from what the last successful run was made from (`lib.fingerprints`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ads_assets.environment import Environment
from ads_assets.lib.berka.formats import detect_source
from ads_assets.lib.db import connect
from ads_assets.lib.detection.tables import SCORES_TABLE_NAME
from ads_assets.lib.fingerprints import (
    TRANSACTIONS,
    Fingerprint,
    RecordedRun,
    code_digest,
    file_digests,
    month_digests,
    months_to_run,
    record_run,
    recorded_run,
    settings_digest,
)
from ads_assets.lib.quality.parameters import months_between
from ads_assets.lib.storage import OutputStore

PUBLISHED_TABLES = (SCORES_TABLE_NAME, "missing_payments")
"""The Parquet tables a run publishes month by month."""


@dataclass
class RerunPlan:
    window: tuple[str, str] | None
    """The months (YYYY-MM) to run, or None when nothing changed."""
    current: Fingerprint
    recorded: RecordedRun | None
    notes: list[str] = field(default_factory=list)

    def record(self, environment: Environment, run_id: str) -> None:
        """Remember what the successful run `run_id` was made from."""
        with connect(environment.postgres) as connection:
            record_run(connection, run_id, self.current)


def span(first: str, last: str) -> list[str]:
    """Every month (YYYY-MM) from `first` through `last`."""
    return [
        f"{month:%Y-%m}"
        for month in months_between(date.fromisoformat(f"{first}-01"), date.fromisoformat(f"{last}-01"))
    ]


def plan_rerun(
    environment: Environment, location: str, months: tuple[str, str], retrain_every: int | None = None
) -> RerunPlan:
    """Compare the source, code and settings with the last successful run and choose the months to redo.

    Months whose scores are missing from the output (an output folder emptied by hand), or whose publication a
    killed run left unfinished, are redone as well.
    """
    settings = environment.settings
    sources = detect_source(location)
    digest = settings_digest(code_digest(), {"retrain_every": retrain_every})
    current = Fingerprint(settings=digest, files=file_digests(sources))
    with connect(environment.postgres) as connection:
        recorded = recorded_run(connection)
    every = span(*months)
    store = OutputStore(settings.output)
    published = set(store.months(SCORES_TABLE_NAME))
    interrupted = {staged.month for table in PUBLISHED_TABLES for staged in store.staged_partitions(table)}
    unpublished = [month for month in every if month not in published or month in interrupted]
    same_files = recorded is not None and (recorded.fingerprint.settings, recorded.fingerprint.files) == (
        current.settings,
        current.files,
    )
    if same_files and recorded is not None:
        current = Fingerprint(current.settings, current.files, recorded.fingerprint.months)
        redo = []
    else:
        current = Fingerprint(current.settings, current.files, month_digests(sources[TRANSACTIONS]))
        redo = months_to_run(current, recorded.fingerprint if recorded else None, every)
    if unpublished:
        redo = every[every.index(min([*redo, unpublished[0]])) :]
    plan = RerunPlan(window=(redo[0], redo[-1]) if redo else None, current=current, recorded=recorded)
    if recorded is None:
        return plan
    since = f"since run {recorded.run_id[:8]} ({recorded.finished_at} UTC)"
    if not redo:
        plan.notes.append(
            f"months {months[0]}..{months[1]} unchanged {since}: skipped; "
            f"ads run --months {months[0]}:{months[1]} reruns them"
        )
    elif redo[0] > months[0]:
        previous = every[every.index(redo[0]) - 1]
        plan.notes.append(f"months {months[0]}..{previous} unchanged {since}: skipped; running {redo[0]}..{redo[-1]}")
    else:
        plan.notes.append(f"{_what_changed(current, recorded.fingerprint, unpublished)} {since}: running every month")
    return plan


def _what_changed(current: Fingerprint, recorded: Fingerprint, unpublished: list[str]) -> str:
    if current.settings != recorded.settings:
        return "the code or the settings changed"
    relations = sorted(name for name in current.files if current.files[name] != recorded.files.get(name))
    if relations and relations != [TRANSACTIONS]:
        return f"source relations {', '.join(relations)} changed"
    if unpublished:
        return f"the published scores of {unpublished[0]} are missing or unfinished"
    return "the first month's transactions changed"
