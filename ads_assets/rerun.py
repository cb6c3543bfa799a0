"""Which months an `ads run` must redo, from what the last successful run was made from (`lib.fingerprints`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import psycopg

from ads_assets.environment import Environment
from ads_assets.lib.berka.formats import detect_source
from ads_assets.lib.db import connect
from ads_assets.lib.detection.tables import SCORES_TABLE_NAME
from ads_assets.lib.fingerprints import (
    LABELS,
    TRANSACTIONS,
    Fingerprint,
    RecordedRun,
    code_digest,
    file_digests,
    label_digests,
    month_digests,
    months_to_run,
    record_run,
    recorded_run,
    settings_digest,
    with_labels,
)
from ads_assets.lib.labels import FAILED, InboxReport, labeller, labels_inbox, take_inbox
from ads_assets.lib.quality.parameters import months_between
from ads_assets.lib.storage import OutputStore
from ads_assets.lib.tables import read_labels

PUBLISHED_TABLES = (SCORES_TABLE_NAME, "missing_payments")
"""The Parquet tables a run publishes month by month."""


@dataclass
class RerunPlan:
    window: tuple[str, str] | None
    """The months (YYYY-MM) to run, or None when nothing changed."""
    current: Fingerprint
    recorded: RecordedRun | None
    notes: list[str] = field(default_factory=list)
    transaction_months: dict[str, str] | None = None
    """The month digests of the transaction lines alone, before the labels are folded in."""

    def record(self, environment: Environment, run_id: str) -> None:
        """Remember what the successful run `run_id` was made from, with the labels as they are after it."""
        with connect(environment.postgres) as connection:
            current = self.current
            if self.transaction_months is not None:
                labels = labels_by_month(connection)
                current = Fingerprint(
                    current.settings,
                    current.files | {LABELS: _labels_digest(labels)},
                    with_labels(self.transaction_months, labels),
                )
            record_run(connection, run_id, current)


def labels_by_month(connection: psycopg.Connection) -> dict[str, str]:
    """The digest of the analyst labels of each month (`label_digests`)."""
    labels = read_labels(connection)
    if labels.empty:
        return {}
    months = pd.to_datetime(labels["trans_date"]).dt.strftime("%Y-%m").fillna("")
    return label_digests(zip(months, labels["trans_id"].astype(int), labels["label"].astype(str), strict=True))


def _labels_digest(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()


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
        taken = take_inbox(connection, labels_inbox(settings), labeller()) if recorded is not None else None
        labels = labels_by_month(connection)
    current = Fingerprint(current.settings, current.files | {LABELS: _labels_digest(labels)})
    every = span(*months)
    store = OutputStore(settings.output)
    published = set(store.months(SCORES_TABLE_NAME))
    interrupted = {staged.month for table in PUBLISHED_TABLES for staged in store.staged_partitions(table)}
    unpublished = [month for month in every if month not in published or month in interrupted]
    same_files = recorded is not None and (recorded.fingerprint.settings, recorded.fingerprint.files) == (
        current.settings,
        current.files,
    )
    transaction_months = None
    if same_files and recorded is not None:
        current = Fingerprint(current.settings, current.files, recorded.fingerprint.months)
        redo = []
    else:
        transaction_months = month_digests(sources[TRANSACTIONS])
        current = Fingerprint(current.settings, current.files, with_labels(transaction_months, labels))
        redo = months_to_run(current, recorded.fingerprint if recorded else None, every)
    if unpublished:
        redo = every[every.index(min([*redo, unpublished[0]])) :]
    plan = RerunPlan(
        window=(redo[0], redo[-1]) if redo else None,
        current=current,
        recorded=recorded,
        transaction_months=transaction_months,
    )
    if taken is not None and (taken.applied or taken.failed):
        plan.notes.append(_inbox_note(taken))
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
        cause = (
            f"analyst labels of {redo[0]} changed"
            if current.files.get(TRANSACTIONS) == recorded.fingerprint.files.get(TRANSACTIONS)
            else f"transactions of {redo[0]} changed"
        )
        plan.notes.append(
            f"months {months[0]}..{previous} unchanged {since}: skipped; {cause}: running {redo[0]}..{redo[-1]}"
        )
    else:
        plan.notes.append(f"{_what_changed(current, recorded.fingerprint, unpublished)} {since}: running every month")
    return plan


def _inbox_note(taken: InboxReport) -> str:
    applied = f"labels inbox: {len(taken.applied)} files applied ({taken.labels.added} labels added, "
    applied += f"{taken.labels.replaced} replaced)"
    refused = f", {len(taken.failed)} refused (see {taken.folder / FAILED})" if taken.failed else ""
    return applied + refused


def _what_changed(current: Fingerprint, recorded: Fingerprint, unpublished: list[str]) -> str:
    if current.settings != recorded.settings:
        return "the code or the settings changed"
    relations = sorted(
        name for name in current.files if current.files[name] != recorded.files.get(name) and name != LABELS
    )
    if relations and relations != [TRANSACTIONS]:
        return f"source relations {', '.join(relations)} changed"
    if unpublished:
        return f"the published scores of {unpublished[0]} are missing or unfinished"
    if current.files.get(TRANSACTIONS) == recorded.files.get(TRANSACTIONS):
        return "analyst labels of the first month changed"
    return "the first month's transactions changed"
