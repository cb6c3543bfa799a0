"""The `ads` command: run the pipeline, generate Berka data, open the Dagster UI, query the database."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

from ads_assets.settings import (
    DEFAULT_ACCOUNTS,
    DEFAULT_ANOMALY_RATE,
    DEFAULT_MONTHS,
    DEFAULT_OUTPUT,
    ENVIRONMENT_VARIABLES,
    SettingsError,
)

DAGSTER_UI_URL = "http://127.0.0.1:3000"
SOURCE_KINDS = {"asc": "PKDD'99 .asc files", "fin": "fin_*.tsv files", "database": "database tables"}
DEFAULT_RETRAIN_EVERY = 6
"""`retrain_every_months` of DetectionConfig (kept here so that `ads --help` imports no Dagster)."""
EXAMPLE_QUERY = (
    "SELECT trans_id, month, round(score::numeric, 3) AS score FROM anomaly.transaction_scores "
    "WHERE is_anomaly ORDER BY score DESC LIMIT 10"
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("ads")
    except PackageNotFoundError:
        return "unknown"


# --- ads run -----------------------------------------------------------------------------------------


def _backfill(args: argparse.Namespace) -> int:
    """`ads backfill --from A --to B`: `ads run --months A:B`."""
    args.months, args.months_option = f"{args.first}:{args.last}", "--from/--to"
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ads_assets.console import Reporter, capture_output, new_log_path
    from ads_assets.environment import apply_options
    from ads_assets.lib.berka.formats import SourceError
    from ads_assets.lib.locking import run_lock
    from ads_assets.settings import check_months

    settings = apply_options(args.source, args.output)
    window = check_months(args.months, getattr(args, "months_option", "--months")) if args.months else None
    if args.retrain_every is not None and args.retrain_every < 1:
        raise SettingsError(f"--retrain-every must be 1 or more months, not {args.retrain_every}")
    with run_lock(settings, "ads run") as lock:
        log_path = new_log_path(settings.logs)
        with capture_output(log_path, verbose=args.verbose) as terminal:
            reporter = Reporter(terminal.out, live=False if args.verbose else None)  # bars and logs do not mix
            lock.notify = reporter.line
            try:
                summary = _run_captured(args, settings, window, reporter, terminal)
            except (SettingsError, SourceError, KeyboardInterrupt):
                raise
            except Exception as error:
                import logging

                logging.getLogger("ads").error("ads run failed", exc_info=True)
                from ads_assets.pipeline import lost_database

                lost = lost_database(error, settings)
                if lost is not None:
                    raise DatabaseLost(f"{lost}; log: {log_path}") from error
                error.add_note(f"log: {log_path}")
                raise
            finally:
                reporter.close()
            reporter.line()
            for line in summary.render().splitlines():
                reporter.line(line)
        return 0 if summary.success else 1


class DatabaseLost(Exception):
    """The run lost its Postgres (stopped, restarted or unreachable) part-way; the message is one line."""


def _run_captured(args: argparse.Namespace, settings: Any, window: Any, reporter: Any, terminal: Any) -> Any:
    from ads_assets.console import seconds
    from ads_assets.environment import (
        check_output,
        check_source,
        default_dataset,
        default_dataset_ready,
        ensure_default_dataset,
        source_span,
        start_postgres,
        stop_embedded_postgres,
    )
    from ads_assets.lib.storage import is_s3

    outside: list[str] = []

    with reporter.stage("check settings", description="checking settings", show=False) as stage:
        check_output(settings.output)
        postgres, started = start_postgres(settings) if settings.database_url else (None, False)
        where = "s3 bucket reachable" if is_s3(settings.output) else "output folder writable"
        stage.detail = f"{'external Postgres reachable, ' if postgres else ''}{where}"

    def source_check(location: str, known: tuple[str, str] | None) -> tuple[str, str]:
        with reporter.stage("check source", description="checking the source's files and headers", show=False) as stage:
            sources = check_source(location)
            span = source_span(sources, known)
            months = span.months
            kind = SOURCE_KINDS.get(next(iter(sources.values())).format.value, "source")
            stage.detail = f"{kind}, transactions {months[0]}..{months[1]}"
            if span.rows_outside:
                outside.append(
                    f"{span.rows_outside:,} transactions dated {span.earliest_outside}..{span.latest_outside} lie "
                    f"outside the plausible window {span.plausible.label()} ({span.plausible.origin}): "
                    "left out of the months, quarantined by the load (ADS_PLAUSIBLE_FROM moves its start)"
                )
            if window and not (months[0] <= window[0] and window[1] <= months[1]):
                raise SettingsError(
                    f"--months {window[0]}:{window[1]} is outside the source's months {months[0]}:{months[1]}"
                )
        return months

    location = settings.source
    if location:
        months = source_check(location, None)
    if postgres is None:
        with reporter.stage("start Postgres", description="starting the embedded Postgres", show=False) as stage:
            postgres, started = start_postgres(settings)
            stage.detail = f"embedded Postgres {'started' if started else 'already running'} in {settings.pgdata}"
    if not location:
        dataset = default_dataset()
        if not default_dataset_ready(settings.generated_data):
            announce = (
                f"generating the default data set ({dataset.accounts:,} accounts, {dataset.start}..{dataset.end})"
            )
            with reporter.stage("generate data", description=announce, announce=announce + " …") as stage:
                ensure_default_dataset(settings.generated_data, dataset)
                stage.detail = f"into {settings.generated_data}"
        location = str(settings.generated_data)
        months = source_check(location, (dataset.start, dataset.end))
    checked = [
        reporter.stages[name].detail
        for name in ("check settings", "check source", "start Postgres")
        if name in reporter.stages
    ]
    reporter.line(f"[{seconds(reporter.elapsed()):>10}] checked: {'; '.join(detail for detail in checked if detail)}")
    try:
        summary = _run_pipeline(args, settings, window, reporter, terminal, postgres, location, months, started)
        summary.notes = outside + summary.notes
        return summary
    finally:
        if started and not settings.database_url:
            # Stopped here, while the output is still captured, rather than by pgserver at exit.
            stop_embedded_postgres(settings.pgdata)


def _run_pipeline(
    args: argparse.Namespace,
    settings: Any,
    window: Any,
    reporter: Any,
    terminal: Any,
    postgres: Any,
    location: str,
    months: tuple[str, str],
    started: bool,
) -> Any:
    from ads_assets.environment import activate

    environment = activate(settings, postgres, location, months, started_postgres=started)
    plan = None if window else _plan_rerun(args, environment, location, months, reporter)
    if plan is not None and plan.window is None:
        return _nothing_new(environment, plan, months, reporter)
    if plan is not None and plan.window is not None and plan.window[0] > months[0]:
        window = plan.window
    shown_window = f"{window[0]}..{window[1]}" if window else f"{months[0]}..{months[1]}"
    reporter.line(
        f"ADS run: source {location}, months {shown_window}, output {settings.output}; "
        f"logs in {terminal.log_path}{'' if terminal.verbose else ' (--verbose shows them)'}"
    )
    with reporter.stage("load code location", description="loading the code location (dbt manifest)"):
        import ads_assets.definitions  # noqa: F401  (parses the dbt project when its manifest is missing)
    prepared = _checked_stages(reporter)
    from ads_assets.pipeline import run_pipeline

    summary = run_pipeline(
        environment,
        window=window,
        retrain_every=args.retrain_every,
        reporter=reporter,
        echo=sys.stderr,
        dbt_lines=terminal.stdout_tap.listeners.append,
    )
    summary.stage_times = prepared + summary.stage_times
    summary.seconds = reporter.elapsed()
    summary.next_steps = _next_steps(environment)
    if plan is not None:
        summary.notes += plan.notes
        if summary.success:
            plan.record(environment, summary.run_id)
    return summary


def _plan_rerun(
    args: argparse.Namespace, environment: Any, location: str, months: tuple[str, str], reporter: Any
) -> Any:
    from ads_assets.rerun import plan_rerun

    with reporter.stage("compare with the last run", description="comparing the source with the last run", show=False):
        plan = plan_rerun(environment, location, months, retrain_every=args.retrain_every)
    if plan.window is not None:
        for note in plan.notes:
            reporter.line(note)
    return plan


def _nothing_new(environment: Any, plan: Any, months: tuple[str, str], reporter: Any) -> Any:
    from ads_assets.pipeline import RunSummary

    summary = RunSummary(
        success=True,
        run_id=plan.recorded.run_id,
        seconds=reporter.elapsed(),
        months=months,
        outputs=environment.settings.output,
        nothing_new=True,
        notes=list(plan.notes),
    )
    summary.stage_times = _checked_stages(reporter)
    summary.next_steps = _next_steps(environment)
    return summary


def _checked_stages(reporter: Any) -> list[tuple[str, str, float]]:
    """The stage-table rows of what `ads run` did before any Dagster step (checks, Postgres, data)."""
    return [(stage.name, "-", stage.seconds) for stage in reporter.stages.values()]


def _next_steps(environment: Any) -> list[str]:
    from ads_assets.lib.storage import is_s3

    output = environment.settings.output.rstrip("/")
    report, anomalies = f"{output}/quality/index.html", f"{output}/report/index.html"
    if not is_s3(output):
        report, anomalies = (
            Path(page).as_posix() if Path(page).exists() else f"{page} (not published)" for page in (report, anomalies)
        )
    if environment.embedded:
        query = f'ads psql -c "{EXAMPLE_QUERY}"'
    else:
        target = environment.postgres
        query = f'psql "postgresql://{target.user}@{target.host}:{target.port}/{target.dbname}" -c "{EXAMPLE_QUERY}"'
    parquet = (
        f"duckdb -c \"SELECT * FROM read_parquet('{output}/transaction_scores/*/*.parquet', hive_partitioning = true) "  # noqa: S608 - shell hint printed for the user, never executed
        'WHERE is_anomaly ORDER BY score DESC LIMIT 10"'
    )
    return [
        f"data-quality report: {report}",
        f"anomaly report:      {anomalies}",
        f"query the tables:    {query}",
        f"query the Parquet:   {parquet}",
        f"open the UI:         ads dev   (then {DAGSTER_UI_URL})",
    ]


# --- ads generate ------------------------------------------------------------------------------------


def _generate(args: argparse.Namespace) -> int:
    from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
    from ads_assets.settings import check_months

    check_months(f"{args.start}:{args.end}", "--start/--end")
    if args.accounts < 1:
        raise SettingsError(f"--accounts must be 1 or more, not {args.accounts}")
    if not 0 <= args.anomaly_rate < 1:
        raise SettingsError(f"--anomaly-rate must be in [0, 1), not {args.anomaly_rate}")
    config = GeneratorConfig(
        shape=args.shape,
        accounts=args.accounts,
        start=args.start,
        end=args.end,
        seed=args.seed,
        anomaly_rate=args.anomaly_rate,
    )
    data = generate(config)
    try:
        paths = write_dataset(data, Path(args.out), args.format)
    except OSError as error:
        raise SettingsError(f"cannot write to {args.out}: {error.strerror or error}") from None
    for relation, frame in data.relations.items():
        print(f"{relation:<10} {len(frame):>10,} rows")
    print(f"labelled anomalies: {len(data.labels):,}")
    print(f"written to {Path(args.out).resolve()} ({len(paths)} files, {args.format} format)")
    return 0


# --- ads dev -----------------------------------------------------------------------------------------


DEV_HELP = """\
usage: ads dev [--source DIR|URL] [--output DIR|s3://bucket/prefix] [dagster dev options]

Open the Dagster UI (`dagster dev`) on the same Postgres, run history and partitions as `ads run`.

ADS options:
  --source DIR|URL   as for `ads run` (env ADS_SOURCE; default: the last run's source)
  --output DIR|URL   as for `ads run` (env ADS_OUTPUT; default: the last run's output)

Every other option goes to `dagster dev` unchanged, e.g. `ads dev -h 0.0.0.0 -p 3001`.
Ctrl-C stops the UI, and the embedded Postgres when `ads dev` started it.

dagster dev's own options:
"""


def _dev(args: argparse.Namespace) -> int:
    passed_on = list(args.passthrough)
    if "--help" in passed_on:
        sys.stdout.write(DEV_HELP)
        sys.stdout.flush()
        return subprocess.call([sys.executable, "-m", "dagster", "dev", "--help"])
    from ads_assets.environment import (
        activate,
        apply_options,
        check_output,
        check_source,
        default_dataset,
        ensure_default_dataset,
        source_months,
        start_postgres,
        stop_embedded_postgres,
    )
    from ads_assets.settings import Settings, load_state

    state = load_state(Settings.from_env().home)
    settings = apply_options(
        args.source or os.environ.get("ADS_SOURCE") or state.get("source"),
        args.output or os.environ.get("ADS_OUTPUT") or state.get("output"),
    )
    check_output(settings.output)
    new_source = settings.source is not None and settings.source != state.get("source")
    fix_months = "ADS_MONTHS" not in os.environ and ("months" not in state or new_source)
    months = None
    location = settings.source
    if location:
        sources = check_source(location)
        months = source_months(sources) if fix_months else None
    postgres, started = start_postgres(settings)
    try:
        if not location:
            location = str(ensure_default_dataset(settings.generated_data))
            sources = check_source(location)
            known = (default_dataset().start, default_dataset().end)
            months = source_months(sources, known) if fix_months else None
        activate(settings, postgres, location, months, started_postgres=started, fix_months=fix_months)
        print(f"ads dev: Dagster UI on {postgres.describe()}, source {location}; Ctrl-C stops it", file=sys.stderr)
        return _supervise([sys.executable, "-m", "dagster", "dev", "-m", "ads_assets.definitions", *passed_on])
    finally:
        if started and not settings.database_url and stop_embedded_postgres(settings.pgdata):
            print(f"ads dev: stopped the embedded Postgres in {settings.pgdata}", file=sys.stderr)


def _supervise(command: list[str]) -> int:
    """Run `command` in a process group of its own until it ends; Ctrl-C or SIGTERM hand it one SIGINT.

    Ctrl-C is heeded even when `ads` was started with SIGINT ignored (from a background job of a shell), and
    `command` starts with it heeded too.

    In its own group the terminal's Ctrl-C reaches only `ads`, which passes it on once, so `dagster dev`
    shuts down its webserver and daemon in order, and `ads` waits for that before stopping Postgres.
    """

    def on_terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_terminate)
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(command, process_group=0)  # noqa: S603 - argv built by ads (dagster dev), no shell
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, interrupt)


# --- ads psql ----------------------------------------------------------------------------------------


def _psql(args: argparse.Namespace) -> int:
    import pgserver

    from ads_assets.environment import apply_options, postgres_for

    with postgres_for(apply_options()) as postgres:
        psql = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
        command = [str(psql), "-h", postgres.host, "-p", str(postgres.port), "-U", postgres.user, "-d", postgres.dbname]
        environment = {**os.environ, **({"PGPASSWORD": postgres.password} if postgres.password else {})}
        try:
            return subprocess.call([*command, *args.passthrough], env=environment)  # noqa: S603 - the bundled psql with the user's own arguments, no shell
        except KeyboardInterrupt:
            return 130


# --- ads alerts --------------------------------------------------------------------------------------


def _alerts(args: argparse.Namespace) -> int:
    from ads_assets.alerts import AlertFilter, export_alerts, fetch_alerts, print_alerts, read_labels
    from ads_assets.environment import apply_options, postgres_for
    from ads_assets.lib.db import connect
    from ads_assets.settings import check_months, load_state

    month = None
    if args.month is not None:
        first, last = check_months(args.month, "--month")
        if first != last:
            raise SettingsError(f"bad --month {args.month!r}: expected one month YYYY-MM, e.g. 1997-03")
        month = first
    selection = AlertFilter(month=month, account_id=args.account, top=args.top)
    if selection.top < 1:
        raise SettingsError(f"--top must be 1 or more, not {selection.top}")
    settings = apply_options()
    labels = read_labels(settings.source or load_state(settings.home).get("source"))
    with postgres_for(settings) as postgres, connect(postgres) as connection:
        alerts = fetch_alerts(connection, selection, labels)
        if args.export is not None:
            path = Path(args.export)
            written = export_alerts(alerts, path)
            _audit_export(connection, args.by, path, selection, [alert.trans_id for alert in alerts])
    which = f" {selection.describe()}" if selection.describe() else ""
    if args.export is not None:
        if written:
            print(f"ads alerts: wrote {written} flagged transactions{which} to {path}")
        else:
            print(f"ads alerts: no flagged transactions{which}; wrote only the header to {path}")
        return 0
    if not alerts:
        print(f"ads alerts: no flagged transactions{which}")
        return 0
    print_alerts(alerts, sys.stdout)
    return 0


def _audit_export(connection: Any, by: str | None, path: Path, selection: Any, trans_ids: list[int]) -> None:
    """Record an export of alerts in `ops.audit`: who, the file, the filter and the transactions written."""
    from ads_assets.lib.labels import labeller
    from ads_assets.lib.security import audit

    details = {
        "file": str(path.resolve()),
        "month": selection.month,
        "account_id": selection.account_id,
        "top": selection.top,
        "trans_ids": trans_ids,
    }
    with connection.transaction(), connection.cursor() as cursor:
        audit.record(cursor, audit.EXPORT, by or labeller(), details)


# --- ads label ---------------------------------------------------------------------------------------


def _label(args: argparse.Namespace) -> int:
    from ads_assets.environment import apply_options, postgres_for
    from ads_assets.lib.db import connect
    from ads_assets.lib.labels import LabelsRefused, label_file, label_transaction, labeller, normalized_label

    one = args.trans_id is not None or args.label is not None
    if args.file is not None and one:
        raise SettingsError("give either TRANS_ID LABEL or --file F, not both")
    if args.file is None and (args.trans_id is None or args.label is None):
        raise SettingsError("give TRANS_ID and LABEL (confirmed or false_positive), or --file F")
    if args.file is not None and args.note is not None:
        raise SettingsError("--note goes with TRANS_ID LABEL; a file has its own note column")
    by = args.by or labeller()
    with postgres_for(apply_options()) as postgres, connect(postgres, autocommit=True) as connection:
        if args.file is None:
            applied = label_transaction(connection, args.trans_id, args.label, args.note, by)
            outcome = "replaced" if applied.replaced else "added"
            print(f"ads label: {args.trans_id} {normalized_label(args.label)} ({outcome})")
            return 0
        try:
            applied = label_file(connection, Path(args.file), by)
        except LabelsRefused as refused:
            for line in refused.lines():
                print(f"ads label: {line}", file=sys.stderr)
            raise
    print(f"ads label: applied {args.file}: {applied.added} labels added, {applied.replaced} replaced")
    return 0


# --- ads db-url --------------------------------------------------------------------------------------


DB_ROLES = ("analyst", "loader", "scorer", "admin")
"""The roles `ads db-url` names (`ads_assets.lib.security.roles`; kept here so that `ads --help` imports no psycopg)."""


def _db_url(args: argparse.Namespace) -> int:
    from ads_assets.environment import apply_options, postgres_for
    from ads_assets.lib.db import connect
    from ads_assets.lib.security.roles import ADMIN, connection_url, role_target

    with postgres_for(apply_options()) as postgres:
        target = role_target(postgres, args.role)
        if args.role != ADMIN:
            with connect(postgres) as connection:
                found = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (target.user,)).fetchone()
            if found is None:
                raise SettingsError(f"no role {target.user} yet: run ads run first")
    print(connection_url(target, show_password=args.show_password))
    return 0


# --- the parser --------------------------------------------------------------------------------------


def _environment_epilog() -> str:
    width = max(len(name) for name, _, _ in ENVIRONMENT_VARIABLES)
    lines = ["environment variables (an option given on the command line wins):"]
    lines += [f"  {name:<{width}}  {meaning} (default: {default})" for name, default, meaning in ENVIRONMENT_VARIABLES]
    lines.append("Errors are one line; --debug shows the traceback.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ads",
        description="ADS: anomaly detection for bank settlement data (Berka relations), as a Dagster code location.",
        epilog=_environment_epilog(),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"ads {version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")

    run_options = argparse.ArgumentParser(add_help=False)
    run_options.add_argument(
        "--source",
        metavar="DIR|URL",
        help="folder of PKDD'99 *.asc or fin_*.tsv files, or a postgresql:// URL with the fin_* tables "
        f"(env ADS_SOURCE; default: a generated bank, {DEFAULT_ACCOUNTS:,} accounts, "
        f"{DEFAULT_MONTHS[0]}..{DEFAULT_MONTHS[1]}, {DEFAULT_ANOMALY_RATE:.1%} anomalies, in $ADS_HOME/generated)".replace(
            "%", "%%"
        ),
    )
    run_options.add_argument(
        "--output",
        metavar="DIR|s3://BUCKET/PREFIX",
        help=f"where the Parquet tables and the data-quality report go (env ADS_OUTPUT; default: ./{DEFAULT_OUTPUT})",
    )
    run_options.add_argument(
        "--retrain-every",
        metavar="N",
        type=int,
        help="train a model every N months, each scoring the months up to the next one "
        f"(retrain_every_months of detection/anomaly_models; default: {DEFAULT_RETRAIN_EVERY})",
    )
    run_options.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show Dagster's, dbt's and Great Expectations' own logs (they always go to $ADS_HOME/logs/)",
    )
    run = commands.add_parser(
        "run",
        parents=[debug, run_options],
        help="check the settings, materialize every asset for every month, print a summary",
        description=textwrap.fill(
            "Check the settings and the source, then materialize every asset of the code location for every month "
            "in one in-process run, showing each stage as it ends, and print a summary of what this run wrote. "
            "Dagster's, dbt's and Great Expectations' own logs go to $ADS_HOME/logs/. Exit status: 0 when the "
            "run succeeded, 1 when a step or a blocking check failed, 2 when a setting or the source is unusable.",
            width=100,
        ),
        epilog=_environment_epilog(),
        formatter_class=formatter,
    )
    run.add_argument(
        "--months",
        metavar="YYYY-MM:YYYY-MM",
        help="ingest, rebuild features for and rescore only these months (default: every month of the source)",
    )
    run.set_defaults(handler=_run)

    backfill = commands.add_parser(
        "backfill",
        parents=[debug, run_options],
        help="rebuild and rescore a span of historical months in one run",
        description=textwrap.fill(
            "Backfill the months FROM..TO (YYYY-MM): ingest them, rebuild their features, retrain the models that "
            "score them, select their champions and rescore them, as one single-run backfill of the partitioned "
            "assets (the same run as ads run --months FROM:TO). The months before FROM stay as they are. "
            "Exit status as ads run.",
            width=100,
        ),
        epilog=_environment_epilog(),
        formatter_class=formatter,
    )
    backfill.add_argument("--from", dest="first", required=True, metavar="YYYY-MM", help="the first month")
    backfill.add_argument("--to", dest="last", required=True, metavar="YYYY-MM", help="the last month")
    backfill.set_defaults(handler=_backfill)

    generate = commands.add_parser(
        "generate",
        parents=[debug],
        help="write a calibrated Berka data set with labelled anomalies",
        description="Write all eight Berka relations, calibrated to the real data, and labels.csv of the anomalies.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    generate.add_argument(
        "--out", required=True, metavar="DIR", default=argparse.SUPPRESS, help="folder for the relations and labels.csv"
    )
    generate.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS, help="number of accounts")
    generate.add_argument("--start", default=DEFAULT_MONTHS[0], metavar="YYYY-MM", help="first month")
    generate.add_argument("--end", default=DEFAULT_MONTHS[1], metavar="YYYY-MM", help="last month")
    generate.add_argument("--format", choices=["asc", "fin"], default="asc", help="PKDD'99 .asc or fin_*.tsv files")
    generate.add_argument("--seed", type=int, default=0, help="random seed")
    generate.add_argument(
        "--shape",
        choices=["berka", "retail"],
        default="berka",
        help="berka: calibrated to PKDD'99; retail: tens of small payments a month to many merchants",
    )
    generate.add_argument(
        "--anomaly-rate",
        type=float,
        default=DEFAULT_ANOMALY_RATE,
        help="share of transactions made anomalous (the rate of `ads run`'s generated data)",
    )
    generate.set_defaults(handler=_generate)

    dev = commands.add_parser(
        "dev",
        add_help=False,
        allow_abbrev=False,
        help="open the Dagster UI on the same state as `ads run` (other options go to `dagster dev`)",
        usage="ads dev [--source DIR|URL] [--output DIR|URL] [dagster dev options, see `ads dev --help`]",
    )
    dev.add_argument("--source", help=argparse.SUPPRESS)
    dev.add_argument("--output", help=argparse.SUPPRESS)
    dev.set_defaults(handler=_dev)

    psql = commands.add_parser(
        "psql",
        add_help=False,
        allow_abbrev=False,
        help="psql on the ADS database (the embedded one is started for it); options go to psql",
        usage="ads psql [psql options, e.g. -c 'SELECT …']",
    )
    psql.set_defaults(handler=_psql)

    alerts = commands.add_parser(
        "alerts",
        parents=[debug],
        help="print the flagged transactions, highest score first, with their reason and status",
        description=textwrap.fill(
            "Print the flagged transactions of anomaly.transaction_scores, highest score first, one line each: "
            "month, transaction, account, date, amount, kind, score, status (confirmed or false positive from "
            "anomaly.labels, labelled <kind> from the source's labels.csv, or new) and the reason. "
            "Exit status: 0, or 2 when nothing is scored yet.",
            width=100,
        ),
        formatter_class=formatter,
    )
    alerts.add_argument("--month", metavar="YYYY-MM", help="only this month")
    alerts.add_argument("--top", metavar="N", type=int, default=50, help="the N highest scores (default: 50)")
    alerts.add_argument("--account", metavar="ID", type=int, help="only this account")
    alerts.add_argument(
        "--export",
        metavar="FILE.csv",
        help="write the rows with every column (the full reasons JSON too) to a CSV file instead of printing them; "
        "text cells a spreadsheet would read as a formula are prefixed with '",
    )
    alerts.add_argument("--by", metavar="NAME", help="who exports, for the audit (default: the OS user)")
    alerts.set_defaults(handler=_alerts)

    label = commands.add_parser(
        "label",
        parents=[debug],
        help="label a transaction confirmed or false_positive, or apply a CSV file of labels",
        usage="ads label TRANS_ID {confirmed,false_positive} [--note TEXT] [--by NAME]\n"
        "       ads label --file F.csv [--by NAME]",
        description=textwrap.fill(
            "Record an analyst's verdict on a transaction in anomaly.labels: confirmed (a real anomaly, left out "
            "of model training from the next run that trains) or false_positive. A new label of a transaction "
            "replaces its old one. --file applies a CSV file with the columns trans_id,label[,note] all or "
            "nothing: every bad line (malformed, unknown transaction, bad label, transaction named twice) is "
            "reported with its line number and nothing is applied. A transaction is known when it is in "
            "marts.fct_transaction_features (or in the raw transactions before the features exist). "
            "Exit status: 0, or 2 when anything is refused.",
            width=100,
        ),
        formatter_class=formatter,
    )
    label.add_argument("trans_id", metavar="TRANS_ID", type=int, nargs="?", help="the transaction to label")
    label.add_argument("label", metavar="LABEL", nargs="?", help="confirmed or false_positive")
    label.add_argument("--note", metavar="TEXT", help="a note kept with the label")
    label.add_argument("--file", metavar="F.csv", help="a CSV file of labels: trans_id,label[,note]")
    label.add_argument("--by", metavar="NAME", help="who labels (default: the OS user)")
    label.set_defaults(handler=_label)

    db_url = commands.add_parser(
        "db-url",
        parents=[debug],
        help="print the connection URL of an ADS role, its password masked unless --show-password",
        description=textwrap.fill(
            "Print the libpq URL (postgresql://…) that connects to the ADS database as a role: analyst (the masked "
            "views of schema analyst only), loader (raw), scorer (raw and marts, writes anomaly) or admin (the "
            "owner ADS runs as). The password (ADS_<ROLE>_PASSWORD, or that of ADS_DATABASE_URL for admin) is "
            "shown as *** unless --show-password; the embedded Postgres needs none. Exit status: 0, or 2 when the "
            "role does not exist yet.",
            width=100,
        ),
        formatter_class=formatter,
    )
    db_url.add_argument("--role", choices=DB_ROLES, default="analyst", help="the role (default: analyst)")
    db_url.add_argument("--show-password", action="store_true", help="print the password instead of ***")
    db_url.set_defaults(handler=_db_url)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    notes = [" ".join(note.split()) for note in getattr(error, "__notes__", [])]
    return "; ".join([text or type(error).__name__, *notes])


def main(argv: list[str] | None = None) -> int:
    from ads_assets.lib.berka.formats import SourceError

    parser = build_parser()
    args, passed_on = parser.parse_known_args(argv)
    if passed_on and args.command not in ("dev", "psql"):
        parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
    args.passthrough = passed_on
    debug = bool(getattr(args, "debug", False))
    try:
        return args.handler(args)
    except (SettingsError, SourceError) as error:
        if debug:
            traceback.print_exc()
        print(f"ads: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ads: interrupted", file=sys.stderr)
        return 130
    except DatabaseLost as error:
        if debug:
            traceback.print_exc()
        print(f"ads: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--debug shows the traceback)"
        print(f"ads: error: {type(error).__name__}: {_one_line(error)}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
