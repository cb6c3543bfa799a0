"""Run the whole code location in-process over every partition, show its progress, and summarize this run.

The run's Dagster events drive the progress: each step belongs to a stage (ingest, raw checks, features
(dbt), feature checks, train models, score and explain, missing payments, quality report, anomaly report),
and a stage is reported when its last step ends. Dagster's own log lines go to the run's log file (through the
`ads` logger that replaces Dagster's console logger), dbt's to the captured stdout. The summary counts
only what this run wrote, from its own materializations, names each failed step with its error, and
lists the steps that did not run.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ads_assets.console import Reporter, seconds
from ads_assets.environment import Environment
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import connect, table_count

JOB_NAME = "ads_full"
MODELS_STEP = "detection__anomaly_models"
FEATURES_STEP = "dbt_partitioned_models"
FEATURES_TABLE = "marts.fct_transaction_features"
FEATURES_DATE_COLUMN = "trans_date"
MODELS_DBT_STEP = "dbt_models"
MISSING_MART = "marts.fct_missing_payments"
REPORT_STEP = "quality__report"
ANOMALY_REPORT_STEP = "anomaly__report"
SCORES_STEP = "anomaly__transaction_scores"
ANALYST_VIEWS_STEP = "analyst__views"
MISSING_STEP = "anomaly__missing_payments"
LOGGER_NAME = "ads.run"

TRAILING_CHECKS = ("anomaly_models_model_integrity",)
"""Checks that Dagster may run long after their stage's steps: the stage is reported without waiting for them
(a failure still shows among the summary's failed checks)."""
STAGES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("ingest", lambda step: step.startswith("raw__")),
    ("features (dbt)", lambda step: step.startswith("dbt_")),
    ("feature checks", lambda step: step.startswith("fct_") and step.endswith("_quality")),
    ("raw checks", lambda step: step.endswith("_quality")),
    ("analyst labels", lambda step: step == "anomaly__labels"),
    ("train models", lambda step: step.endswith(("anomaly_models", *TRAILING_CHECKS))),
    ("model selection", lambda step: step.endswith("model_selection")),
    ("score and explain", lambda step: step.endswith("transaction_scores") or step == ANALYST_VIEWS_STEP),
    ("missing payments", lambda step: step.endswith("missing_payments")),
    ("quality report", lambda step: step == REPORT_STEP),
    ("anomaly report", lambda step: step == ANOMALY_REPORT_STEP),
)
"""Stages by step key (the asset's key joined by `__`, or the check's name)."""
OTHER_STAGE = "other steps"
PREPARATION = ("check settings", "check source", "start Postgres", "compare with the last run")
"""The stages before the Dagster run, one row of the summary's stage table together."""
PREPARED = "prepare (settings, source, Postgres)"
DBT_PROGRESS = re.compile(r"^\s*(\d+) of (\d+) (OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b(.*)$")
MODEL_LOG = re.compile(r"\bscores (\d{4}-\d{2}(?:,\s*\d{4}-\d{2})*)")
"""How `detection/anomaly_models` logs each model it fits: "... scores 1996-01, 1996-02, 1996-03"."""


def stage_of(step_key: str) -> str:
    """The stage a step of the ADS job belongs to."""
    return next((name for name, matches in STAGES if matches(step_key)), OTHER_STAGE)


@dataclass
class StepOutcome:
    key: str
    stage: str
    status: str = "not run"
    """succeeded, failed, skipped or not run."""
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    blocking: bool


@dataclass
class TableCount:
    table: str
    rows: int | None
    """None when the step that writes the table did not succeed in this run."""
    note: str = ""


@dataclass
class RunSummary:
    success: bool
    run_id: str
    seconds: float
    months: tuple[str, str] | None = None
    tables: list[TableCount] = field(default_factory=list)
    quarantined: int | None = 0
    checks: list[CheckOutcome] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)
    flagged: int | None = 0
    outputs: str = ""
    stage_times: list[tuple[str, str, float]] = field(default_factory=list)
    """(stage, steps, seconds) rows of the closing table, in the order the stages ran."""
    next_steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Lines about what this run left out (months unchanged since the last run)."""
    nothing_new: bool = False
    """True when nothing changed since the last run, so no Dagster run was launched."""

    @property
    def table_rows(self) -> dict[str, int]:
        return {count.table: count.rows for count in self.tables if count.rows is not None}

    @property
    def failed_steps(self) -> list[str]:
        return [step.key for step in self.steps if step.status == "failed"]

    @property
    def not_run(self) -> list[StepOutcome]:
        return [step for step in self.steps if step.status in ("not run", "skipped")]

    def render(self) -> str:
        if self.nothing_new:
            return self._render_nothing_new()
        span = f" (months {self.months[0]}..{self.months[1]})" if self.months else ""
        outcome = f"succeeded in {seconds(self.seconds)}" if self.success else f"FAILED after {seconds(self.seconds)}"
        lines = [f"ADS run {self.run_id}: {outcome}{span}"]
        for step in self.steps:
            if step.status == "failed":
                lines.append(f"  failed step {step.key} ({step.stage}): {step.error or 'see the log'}")
        if self.not_run:
            names = [step.key for step in self.not_run]
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            lines.append(f"  did not run ({len(names)} step{'' if len(names) == 1 else 's'}): {shown}")
        lines += [f"  {note}" for note in self.notes]
        lines.append("rows written by this run:")
        lines += _wrap([_count_text(count) for count in self.tables], indent="  ")
        if self.quarantined is not None:
            lines.append(f"  quarantined rows: {self.quarantined:,}")
        passed = sum(1 for check in self.checks if check.passed)
        lines.append(f"checks: {passed} passed, {len(self.checks) - passed} failed")
        failed = [check for check in self.checks if not check.passed]
        for check in failed[:5]:
            lines.append(f"  FAILED ({'blocking' if check.blocking else 'warning'}) {check.asset} {check.name}")
        if len(failed) > 5:
            lines.append(f"  … and {len(failed) - 5} more failed checks (quality.check_results)")
        lines.append(f"outputs: {self.outputs} (transaction_scores/, missing_payments/, quality/, report/)")
        lines += self._stage_table()
        lines += self.next_steps
        return "\n".join(lines)

    def _stage_table(self) -> list[str]:
        if not self.stage_times:
            return []
        preparing = [spent for name, _, spent in self.stage_times if name in PREPARATION]
        rows = ([(PREPARED, "-", sum(preparing))] if preparing else []) + [
            row for row in self.stage_times if row[0] not in PREPARATION
        ]
        width = max(len(name) for name, _, _ in rows) + 2
        lines = [f"{'stage':<{width}}{'steps':>7}{'time':>12}"]
        lines += [f"  {name:<{width - 2}}{steps:>7}{seconds(spent):>12}" for name, steps, spent in rows]
        lines.append(f"  {'total':<{width - 2}}{'':>7}{seconds(self.seconds):>12}")
        return lines

    def _render_nothing_new(self) -> str:
        lines = [f"ADS run: nothing new, nothing run in {seconds(self.seconds)}"]
        lines += [f"  {note}" for note in self.notes]
        lines.append(f"outputs: {self.outputs} (transaction_scores/, missing_payments/, quality/, report/)")
        return "\n".join(lines + self._stage_table() + self.next_steps)


def _count_text(count: TableCount) -> str:
    if count.rows is None:
        return f"{count.table} (not written{': ' + count.note if count.note else ''})"
    return f"{count.table} {count.rows:,}" + (f" ({count.note})" if count.note else "")


def _wrap(items: Iterable[str], indent: str, width: int = 100) -> list[str]:
    lines: list[str] = []
    current = ""
    for item in items:
        candidate = f"{current}, {item}" if current else item
        if current and len(indent) + len(candidate) > width:
            lines.append(f"{indent}{current},")
            current = item
        else:
            current = candidate
    if current:
        lines.append(f"{indent}{current}")
    return lines


class RunProgress(logging.Handler):
    """Follows a run's Dagster events (and dbt's lines) and reports each stage to the Reporter as it ends."""

    def __init__(self, reporter: Reporter | None, planned: Iterable[str], months: int) -> None:
        super().__init__(level=logging.DEBUG)
        self.reporter = reporter
        self.steps = {key: StepOutcome(key=key, stage=stage_of(key)) for key in planned}
        self.stage_steps: dict[str, list[str]] = defaultdict(list)
        for key, step in self.steps.items():
            self.stage_steps[step.stage].append(key)
        self.months = months
        self.started: dict[str, float] = {}
        self.stage_order: list[str] = []
        self.finished_stages: set[str] = set()
        self.materialized: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        self.checks: dict[str, list[CheckOutcome]] = defaultdict(list)
        self.models_for: list[str] = []
        self.months_modelled: set[str] = set()
        self.dbt_done = 0
        self.dbt_problems: list[str] = []
        self.run_id: str | None = None

    # --- Dagster events ----------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._handle(record)
        except Exception:  # progress must never break a run
            logging.getLogger(__name__).debug("progress handler failed", exc_info=True)

    def _handle(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        self.run_id = self.run_id or meta.get("run_id")
        event = meta.get("dagster_event")
        step_key = meta.get("step_key")
        if event is None:
            if step_key and stage_of(step_key) == "train models":
                self._model_message(str(meta.get("orig_message") or record.getMessage()))
            return
        kind = event.event_type_value
        step_key = event.step_key or step_key
        if step_key and step_key not in self.steps and kind.startswith("STEP_"):
            self.steps[step_key] = StepOutcome(key=step_key, stage=stage_of(step_key))
            self.stage_steps[self.steps[step_key].stage].append(step_key)
        if kind == "STEP_START":
            self._step_started(step_key)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self._step_ended(step_key, kind, event)
        elif kind == "ASSET_MATERIALIZATION" and step_key:
            self._materialized(step_key, event)
        elif kind == "ASSET_CHECK_EVALUATION" and step_key:
            evaluation = event.event_specific_data
            self.checks[self.steps[step_key].stage if step_key in self.steps else OTHER_STAGE].append(
                CheckOutcome(
                    asset=evaluation.asset_key.to_user_string(),
                    name=evaluation.check_name,
                    passed=evaluation.passed,
                    blocking=bool(getattr(evaluation, "blocking", False)),
                )
            )

    def _step_started(self, step_key: str) -> None:
        self.started[step_key] = time.monotonic()
        stage = self.steps[step_key].stage
        if stage not in self.stage_order:
            self.stage_order.append(stage)
            total = len(self.stage_steps[stage])
            if stage == "train models":
                total = self.months
            if self.reporter is not None:
                self.reporter.start(stage, total=total if stage != "score and explain" else None)

    def _step_ended(self, step_key: str, kind: str, event: Any) -> None:
        step = self.steps[step_key]
        if step_key in self.started:
            step.seconds = time.monotonic() - self.started[step_key]
        step.status = {"STEP_SUCCESS": "succeeded", "STEP_FAILURE": "failed", "STEP_SKIPPED": "skipped"}[kind]
        if kind == "STEP_FAILURE":
            step.error = failure_message(event)
            if step.stage == "features (dbt)" and self.dbt_problems:
                step.error = f"{step.error} [dbt: {self.dbt_problems[0]}]"
        stage = step.stage
        keys = self.reported_steps(stage)
        ended = sum(1 for key in keys if self.steps[key].status != "not run")
        if self.reporter is not None and stage not in ("train models", "features (dbt)", "score and explain"):
            self.reporter.update(stage, completed=ended)
        if ended == len(keys):
            self._finish_stage(stage)

    def reported_steps(self, stage: str) -> list[str]:
        """The steps whose end the stage's line waits for: all of the stage's but its trailing checks."""
        return [key for key in self.stage_steps[stage] if not key.endswith(TRAILING_CHECKS)]

    def _finish_stage(self, stage: str) -> None:
        if stage in self.finished_stages:
            return
        self.finished_stages.add(stage)
        if self.reporter is None:
            return
        keys = self.reported_steps(stage)
        if all(self.steps[key].status in ("skipped", "not run") for key in keys):
            self.reporter.finish(stage, "did not run (upstream failed)", ok=False, seconds_spent=0.0)
            return
        failed = any(self.steps[key].status == "failed" for key in keys)
        blocked = any(check.blocking and not check.passed for check in self.checks.get(stage, []))
        skipped = sum(1 for key in keys if self.steps[key].status in ("skipped", "not run"))
        detail = self.stage_detail(stage) + (f", {skipped} of {len(keys)} steps did not run" if skipped else "")
        self.reporter.finish(stage, detail, ok=not (failed or blocked), seconds_spent=self.stage_seconds(stage))

    def finish_open_stages(self) -> None:
        """Report the stages that started but whose steps did not all end (an interrupted or crashed run)."""
        for stage in self.stage_order:
            self._finish_stage(stage)

    def _materialized(self, step_key: str, event: Any) -> None:
        materialization = event.event_specific_data.materialization
        metadata = {name: value.value for name, value in materialization.metadata.items()}
        self.materialized[step_key][materialization.asset_key.to_user_string()].append(metadata)

    def _model_message(self, message: str) -> None:
        found = MODEL_LOG.search(message)
        if not found:
            return
        months = [month.strip() for month in found.group(1).split(",") if month.strip()]
        self.models_for.append(months[0])
        self.months_modelled |= set(months)
        if self.reporter is not None:
            self.reporter.update("train models", completed=len(self.months_modelled))

    # --- dbt's lines -------------------------------------------------------------------------------

    def dbt_line(self, line: str) -> None:
        found = DBT_PROGRESS.match(line)
        if not found:
            return
        done, total, status = int(found.group(1)), int(found.group(2)), found.group(3)
        if status in ("ERROR", "FAIL"):
            self.dbt_problems.append(f"{status} {found.group(4).strip(' .')}".split(" [")[0][:160])
        if self.reporter is not None:
            self.reporter.update("features (dbt)", completed=done, total=total)

    # --- what a stage did ----------------------------------------------------------------------------

    def stage_seconds(self, stage: str) -> float:
        return sum(self.steps[key].seconds for key in self.stage_steps.get(stage, []))

    def stage_detail(self, stage: str) -> str:
        keys = self.stage_steps.get(stage, [])
        checks = self.checks.get(stage, [])
        failed_checks = sum(1 for check in checks if not check.passed)
        if stage == "ingest":
            rows = sum(self.metric(key, "rows_accepted") or 0 for key in keys)
            quarantined = sum(self.metric(key, "rows_quarantined") or 0 for key in keys)
            return f"{len(keys)} relations, {rows:,} rows, {quarantined:,} quarantined"
        if stage in ("raw checks", "feature checks"):
            return f"{len(checks) - failed_checks} passed, {failed_checks} failed"
        if stage == "features (dbt)":
            models = sum(len(self.materialized[key]) for key in keys)
            return f"{models} models, {len(checks) - failed_checks} dbt tests passed, {failed_checks} failed"
        if stage == "train models":
            models, months = len(self.models_for), len(self.months_modelled)
            detail = f"{models} model{'s' * (models != 1)} for {months} month{'s' * (months != 1)}"
            cold = sorted(
                {
                    str(month)
                    for key in keys
                    for events in self.materialized.get(key, {}).values()
                    for metadata in events
                    for month in metadata.get("cold_start_months") or []
                }
            )
            if cold:
                detail += (
                    f"; cold start for {cold[0]}..{cold[-1]}: too little earlier data, so scored by a model "
                    "trained on those months themselves"
                )
            return detail
        if stage == "score and explain":
            rows = sum(self.metric(key, "dagster/row_count") or 0 for key in keys)
            flagged = sum(self.metric(key, "flagged") or 0 for key in keys)
            return f"{rows:,} transactions, {flagged:,} flagged"
        if stage == "missing payments":
            rows = sum(self.metric(key, "dagster/row_count") or 0 for key in keys)
            return f"{rows:,} rows"
        if stage == "quality report":
            return "Data Docs published"
        if stage == "anomaly report":
            return "report/index.html published"
        if stage == "analyst labels":
            labels, applied, failed = (sum(self.metric(key, name) or 0 for key in keys) for name in LABEL_COUNTS)
            return f"{labels:,} labels; inbox: {applied} files applied, {failed} refused"
        if stage == "model selection":
            champions = {
                str(month): str(chosen.get("champion") if isinstance(chosen, dict) else chosen)
                for key in keys
                for events in self.materialized.get(key, {}).values()
                for metadata in events
                for month, chosen in (metadata.get("champions") or {}).items()
            }
            if not champions:
                return "no retrain to evaluate (cold-start models keep their weights)"
            listed = ", ".join(f"{month} {champion}" for month, champion in sorted(champions.items())[-4:])
            more = "…, " if len(champions) > 4 else ""
            return f"{len(champions)} retrains evaluated on canaries; champions {more}{listed}"
        return f"{len(keys)} steps"

    def metric(self, step_key: str, name: str) -> int | None:
        """A number from the step's materializations: per-partition values summed, a run total taken once."""
        totals: list[int] = []
        for events in self.materialized.get(step_key, {}).values():
            values = [metadata[name] for metadata in events if isinstance(metadata.get(name), int | float)]
            if values:
                totals.append(int(values[0]) if name in RUN_TOTALS else int(sum(values)))
        return sum(totals) if totals else None


LABEL_COUNTS = ("dagster/row_count", "files_applied", "files_failed")
"""What the analyst-labels stage reports: labels in all, inbox files applied and refused."""
RUN_TOTALS = frozenset({"rows_read", "rows_accepted", "rows_quarantined", "rows_outside_window"})
"""Metadata that a load reports for its whole window, repeated on each partition it materializes."""


def failure_message(event: Any) -> str:
    """One line for a failed step: the innermost error's class and first line ("SourceError: …")."""
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    if error is None:
        return "failed"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (error.message or "").strip().splitlines()
    text = message[0] if message else error.cls_name or "error"
    cls = error.cls_name or ""
    text = re.sub(r"^[\w.]+\.(\w+):", r"\1:", text)
    if cls and not text.startswith(cls):
        text = f"{cls}: {text}"
    return text[:300]


def ads_logger_def(progress: RunProgress, log_file: Path | None, echo: Any | None) -> dg.LoggerDefinition:
    """The run's one Dagster logger: every event to the progress handler, INFO and up to the log file."""

    @dg.logger(description="ADS: progress on the terminal, Dagster's log lines in the run's log file")
    def ads_logger(_init_context: Any) -> logging.Logger:
        logger = logging.getLogger(LOGGER_NAME)
        logger.handlers.clear()
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(progress)
        formatter = logging.Formatter("%(asctime)s - dagster - %(levelname)s - %(message)s")
        for stream in (echo,) if echo is not None else ():
            handler = logging.StreamHandler(stream)
            handler.setLevel(logging.INFO)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        if log_file is not None:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
            file_handler.setLevel(logging.INFO)
            file_handler.setFormatter(formatter)
            logger.addHandler(file_handler)
        return logger

    return ads_logger


def planned_steps(job: dg.JobDefinition) -> list[str]:
    """The step keys of an asset job: one per top-level node (asset, multi-asset or check)."""
    return [node.name for node in job.graph.nodes]


def run_pipeline(
    environment: Environment,
    *,
    window: tuple[str, str] | None = None,
    retrain_every: int | None = None,
    reporter: Reporter | None = None,
    log_file: Path | None = None,
    echo: Any | None = None,
    dbt_lines: Callable[[Callable[[str], None]], None] | None = None,
) -> RunSummary:
    """Materialize every asset for the months of `window` (default: all partitions) in one in-process run.

    The run is recorded in Dagster's storage (the ADS Postgres). `retrain_every` sets `retrain_every_months`
    of `detection/anomaly_models`. Progress goes to `reporter`; Dagster's log lines to `log_file` (and
    `echo`, a stream, with --verbose); `dbt_lines`, when given, registers a listener for dbt's output lines.
    """
    from ads_assets.definitions import defs
    from ads_assets.defs.partitions import add_months, month_keys, months_between

    first, last = window or environment.settings.months
    with dg.DagsterInstance.get() as instance:
        add_months(instance, months_between(*environment.settings.months))
        partition_keys = [key for key in month_keys(instance) if first <= key[:7] <= last]
    job = defs.resolve_job_def(JOB_NAME)
    progress = RunProgress(reporter, planned_steps(job), months=len(partition_keys))
    if dbt_lines is not None:
        dbt_lines(progress.dbt_line)
    job = job.with_logger_defs({"ads": ads_logger_def(progress, log_file, echo)})
    run_config: dict[str, Any] = {"loggers": {"ads": {}}}
    if retrain_every is not None:
        run_config["ops"] = {MODELS_STEP: {"config": {"retrain_every_months": retrain_every}}}
    started = time.monotonic()
    result: dg.ExecuteInProcessResult | None = None
    lost: str | None = None
    try:
        with dg.DagsterInstance.get() as instance:
            hold_storage_connections(instance)
            try:
                result = job.execute_in_process(
                    instance=instance,
                    tags={
                        ASSET_PARTITION_RANGE_START_TAG: partition_keys[0],
                        ASSET_PARTITION_RANGE_END_TAG: partition_keys[-1],
                    },
                    run_config=run_config,
                    raise_on_error=False,
                )
            finally:
                progress.finish_open_stages()
    except Exception as error:
        lost = lost_database(error, environment.settings)
        if lost is None:
            raise
    summary = RunSummary(
        success=result is not None and result.success,
        run_id=result.run_id if result is not None else progress.run_id or "(not recorded)",
        seconds=time.monotonic() - started,
        months=(partition_keys[0][:7], partition_keys[-1][:7]),
        outputs=environment.settings.output,
        steps=list(progress.steps.values()),
        notes=[lost] if lost else [],
    )
    summary.checks = (
        [
            CheckOutcome(
                asset=evaluation.asset_key.to_user_string(),
                name=evaluation.check_name,
                passed=evaluation.passed,
                blocking=bool(evaluation.blocking),
            )
            for evaluation in result.get_asset_check_evaluations()
        ]
        if result is not None
        else [check for checks in progress.checks.values() for check in checks]
    )
    _count_this_run(environment, progress, summary, partition_keys)
    steps_seconds = sum(step.seconds for step in progress.steps.values())
    summary.stage_times = [
        (stage, f"{_done(progress, stage)}/{len(progress.stage_steps[stage])}", progress.stage_seconds(stage))
        for stage in progress.stage_order
    ]
    summary.stage_times.append(("Dagster (between steps)", "-", max(summary.seconds - steps_seconds, 0.0)))
    return summary


def lost_database(error: BaseException, settings: Any) -> str | None:
    """One line naming the lost database when `error` (or an error it came from) is a lost connection."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        text = str(current).lower()
        if name in LOST_CONNECTION_ERRORS and any(sign in text for sign in LOST_CONNECTION_SIGNS):
            where = "the external Postgres" if settings.database_url else f"the embedded Postgres in {settings.pgdata}"
            return (
                f"lost the connection to {where} during the run ({name}): the run stopped part-way; "
                "months already published stay whole, and the next ads run redoes the rest"
            )
        current = current.__cause__ or current.__context__
    return None


LOST_CONNECTION_ERRORS = frozenset({"OperationalError", "DagsterPostgresException", "InterfaceError"})
LOST_CONNECTION_SIGNS = ("connection", "server closed", "terminating", "too many retries", "no such file", "refused")


def hold_storage_connections(instance: dg.DagsterInstance) -> None:
    """Keep one open connection per Dagster storage for the run, as the webserver does, instead of one per event.

    A run over many months writes thousands of events (a materialization per partition and asset, check
    results); opening a Postgres connection for each cost about a third of the time between steps.
    """
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)


def _done(progress: RunProgress, stage: str) -> int:
    return sum(1 for key in progress.stage_steps[stage] if progress.steps[key].status == "succeeded")


def _count_this_run(
    environment: Environment, progress: RunProgress, summary: RunSummary, partition_keys: list[str]
) -> None:
    """Rows that this run wrote, table by table, from its materializations (and, for dbt models, the database)."""
    succeeded = {key for key, step in progress.steps.items() if step.status == "succeeded"}
    quarantined = 0
    any_raw = False
    for name in LOAD_ORDER:
        table = f"raw.{RELATIONS[name].table}"
        step = f"raw__{RELATIONS[name].table}"
        if step in succeeded:
            any_raw = True
            rows = progress.metric(step, "rows_accepted")
            quarantined += progress.metric(step, "rows_quarantined") or 0
            summary.tables.append(
                TableCount(table, rows if rows is not None else progress.metric(step, "dagster/row_count"))
            )
        else:
            summary.tables.append(TableCount(table, None, progress.steps.get(step, StepOutcome(step, "")).status))
    summary.quarantined = quarantined if any_raw else None
    first_day, end_day = partition_keys[0], _next_month(partition_keys[-1])
    counts: list[TableCount] = []
    try:
        with connect(environment.postgres) as connection, connection.cursor() as cursor:
            if FEATURES_STEP in succeeded:
                rows = table_count(
                    cursor,
                    FEATURES_TABLE,
                    f"WHERE {FEATURES_DATE_COLUMN} >= %s AND {FEATURES_DATE_COLUMN} < %s",
                    (first_day, end_day),
                )
                counts.append(TableCount(FEATURES_TABLE, rows))
            else:
                counts.append(TableCount(FEATURES_TABLE, None, _status(progress, FEATURES_STEP)))
            if MODELS_DBT_STEP in succeeded:
                counts.append(TableCount(MISSING_MART, table_count(cursor, MISSING_MART)))
            else:
                counts.append(TableCount(MISSING_MART, None, _status(progress, MODELS_DBT_STEP)))
    except Exception as error:  # the counts are a courtesy; the run's outcome does not depend on them
        counts.append(TableCount("marts.*", None, f"not counted: {error}".splitlines()[0]))
    summary.tables += counts
    for step, table, flagged_name in (
        (SCORES_STEP, "anomaly.transaction_scores", "flagged"),
        (MISSING_STEP, "anomaly.missing_payments", None),
    ):
        if step in succeeded:
            rows = progress.metric(step, "dagster/row_count")
            flagged = progress.metric(step, flagged_name) if flagged_name else None
            note = f"{flagged:,} flagged" if flagged is not None else ""
            summary.tables.append(TableCount(table, rows, note))
            if flagged_name:
                summary.flagged = flagged
        else:
            summary.tables.append(TableCount(table, None, _status(progress, step)))
            if flagged_name:
                summary.flagged = None


def _status(progress: RunProgress, step: str) -> str:
    return progress.steps[step].status if step in progress.steps else "not in the job"


def _next_month(partition_key: str) -> str:
    year, month = int(partition_key[:4]), int(partition_key[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}-01"
