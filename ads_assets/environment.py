"""The local ADS environment shared by `ads run` and `ads dev`: checked settings, Postgres, Dagster's home, the source.

Everything a run needs is checked before any work, each failure raising a `SettingsError` (or the
source's `SourceError`) with a one-line message: the database URL is parsed and a connection made with
a short timeout, an `s3://` output's endpoint, credentials and bucket are tried, and the source's files
and headers are read. Only a source that passed is remembered in `$ADS_HOME/state.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ads_assets.lib import db
from ads_assets.lib.berka.formats import SourceError, SourceFile, SourceFormat, detect_source, read_rows
from ads_assets.lib.db import (
    DatabaseUrlError,
    PostgresTarget,
    embedded_postgres,
    redacted_url,
    scrub,
    split_url,
    url_secrets,
)
from ads_assets.lib.ingest import TransactionSpan, plausible_window, transaction_span
from ads_assets.lib.storage import is_s3, s3_endpoint_url, s3_region, split_s3_uri, sse_kms_put_args
from ads_assets.settings import (
    DEFAULT_ACCOUNTS,
    DEFAULT_ANOMALY_RATE,
    DEFAULT_SEED,
    Settings,
    SettingsError,
    check_months,
    record_state,
)

STORAGE_URL_VARIABLE = "ADS_DAGSTER_STORAGE_URL"
PGSERVER_HANDLES = ".handle_pids.json"
"""pgserver's list of the processes holding a handle on an embedded server, in its data directory."""
DATASET_MARKER = "dataset.json"
CONNECT_TIMEOUT_SECONDS = 5
S3_TIMEOUT_SECONDS = 5

DAGSTER_YAML = f"""\
storage:
  postgres:
    postgres_url:
      env: {STORAGE_URL_VARIABLE}
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class Environment:
    settings: Settings
    postgres: PostgresTarget
    source: str
    months: tuple[str, str] | None = None
    """The months the source's transactions span (None when not read)."""
    started_postgres: bool = False
    """True when this process started the embedded Postgres (and so stops it when it ends)."""

    @property
    def embedded(self) -> bool:
        return self.settings.database_url is None


def default_dataset() -> Any:
    """What `ads run` generates when no source is given: 4,500 accounts, 1993-01..1998-12, 0.5 % anomalies."""
    from ads_assets.lib.berka.generator import GeneratorConfig

    return GeneratorConfig(accounts=DEFAULT_ACCOUNTS, seed=DEFAULT_SEED, anomaly_rate=DEFAULT_ANOMALY_RATE)


def shown_url(url: str) -> str:
    """A database URL without its password, for messages."""
    return redacted_url(url)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


# --- settings -----------------------------------------------------------------------------------------


def apply_options(source: str | None = None, output: str | None = None) -> Settings:
    """Put `--source` / `--output` into ADS_SOURCE / ADS_OUTPUT (made absolute) and read the settings."""
    if output:
        os.environ["ADS_OUTPUT"] = output if "://" in output else str(Path(output).expanduser().resolve())
    if source:
        os.environ["ADS_SOURCE"] = source if "://" in source else str(Path(source).expanduser().resolve())
    if os.environ.get("ADS_MONTHS"):
        check_months(os.environ["ADS_MONTHS"], "ADS_MONTHS")
    settings = Settings.from_env()
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"cannot create ADS_HOME {settings.home}: {error.strerror or error}") from None
    os.environ["ADS_HOME"] = str(settings.home)
    return settings


def check_database_url(url: str) -> PostgresTarget:
    """The Postgres of ADS_DATABASE_URL, after a connection with a short timeout and a look at the privileges."""
    try:
        target = PostgresTarget.from_url(url)
    except DatabaseUrlError as error:
        message = scrub(str(error), *url_secrets(url))
        raise SettingsError(f"ADS_DATABASE_URL {shown_url(url)!r}: {message}") from None
    check_postgres(target, f"ADS_DATABASE_URL {shown_url(url)}")
    return target


def check_postgres(target: PostgresTarget, what: str) -> None:
    """Connect to `target` (timing out after a few seconds) and check that ADS may create its schemas and tables.

    No form of the password reaches the message of a failure, whatever the library's error says.
    """
    import psycopg

    try:
        with psycopg.connect(target.conninfo(), connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True) as connection:
            may_create, may_create_public = connection.execute(
                "SELECT has_database_privilege(current_database(), 'CREATE'), "
                "coalesce(has_schema_privilege('public', 'CREATE'), false)"
            ).fetchone()
    except psycopg.Error as error:
        raise SettingsError(f"cannot connect to {what}: {target.scrub(_first_line(error))}") from None
    if not may_create:
        raise SettingsError(
            f"{what}: user {target.user} lacks CREATE on database {target.dbname} (ADS creates its schemas there)"
        )
    if not may_create_public:
        raise SettingsError(
            f"{what}: user {target.user} lacks CREATE on schema public of {target.dbname} (Dagster's run storage)"
        )


def check_output(output: str) -> None:
    """An `s3://` output's endpoint, credentials and bucket, or a local output folder that can be written."""
    if is_s3(output):
        check_s3_output(output)
        return
    folder = Path(output)
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ads-write-check-"):
            pass
    except OSError as error:
        raise SettingsError(f"cannot write to the output folder {folder}: {error.strerror or error}") from None
    finally:
        for path in created:  # the check leaves no folder behind; the run creates them when it publishes
            with contextlib.suppress(OSError):
                path.rmdir()


def check_s3_output(uri: str) -> None:
    """Reach the S3 endpoint within a few seconds, with credentials, and write and delete a marker in the bucket."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    try:
        bucket, prefix = split_s3_uri(uri)
    except ValueError as error:
        raise SettingsError(f"bad output {uri!r}: {error}") from None
    # The credential chain ends at the EC2 instance metadata service: off EC2 that lookup is what takes a minute.
    os.environ.setdefault("AWS_METADATA_SERVICE_TIMEOUT", "1")
    os.environ.setdefault("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "1")
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise SettingsError(
            f"no AWS credentials for the output {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    config = Config(
        connect_timeout=S3_TIMEOUT_SECONDS,
        read_timeout=S3_TIMEOUT_SECONDS,
        retries={"max_attempts": 1, "mode": "standard"},
    )
    client = session.client("s3", endpoint_url=s3_endpoint_url(), region_name=s3_region(), config=config)
    endpoint = client.meta.endpoint_url
    key = f"{prefix}/.ads-write-check-{uuid.uuid4().hex}" if prefix else f".ads-write-check-{uuid.uuid4().hex}"
    try:
        client.head_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=key, Body=b"", **sse_kms_put_args())
        client.delete_object(Bucket=bucket, Key=key)
    except NoCredentialsError:
        raise SettingsError(
            f"no AWS credentials for the output {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        ) from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise SettingsError(f"cannot reach the S3 endpoint {endpoint} for the output {uri}: {error}") from None
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise SettingsError(f"no bucket {bucket} at {endpoint} for the output {uri}") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"):
            raise SettingsError(
                f"access denied to s3://{bucket} at {endpoint} (code {code}): check the credentials and the bucket policy"
            ) from None
        raise SettingsError(f"S3 output {uri} at {endpoint}: {_first_line(error)}") from None
    except BotoCoreError as error:
        raise SettingsError(f"S3 output {uri} at {endpoint}: {_first_line(error)}") from None


# --- Postgres ----------------------------------------------------------------------------------------


def embedded_postgres_running(pgdata: Path) -> bool:
    """True when a Postgres server already runs on `pgdata` (its postmaster.pid names a live postgres process)."""
    return _postmaster_pid(pgdata) is not None


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid that `pgdata/postmaster.pid` names, when that is a live postgres process."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) and _is_postgres(pid) else None


def _is_postgres(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).name() == "postgres"
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _handle_pids(pgdata: Path) -> list[int]:
    """The processes that pgserver recorded as holding a handle on the server of `pgdata`."""
    try:
        pids = json.loads((pgdata / PGSERVER_HANDLES).read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int)] if isinstance(pids, list) else []


def orphaned_postmaster(pgdata: Path) -> int | None:
    """The pid of a postmaster running on `pgdata` that no live process holds: one a killed run left behind."""
    pid = _postmaster_pid(pgdata)
    if pid is None or pgdata.resolve() in db._servers:
        return None
    if any(_alive(holder) for holder in _handle_pids(pgdata) if holder != os.getpid()):
        return None
    return pid


def _remove_stale_pid_file(pgdata: Path) -> None:
    """Remove a postmaster.pid that names no live postgres process (its pid reused, or the file cut short).

    Postgres refuses to start while the pid in that file is alive, whatever the process is.
    """
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists() or _postmaster_pid(pgdata) is not None:
        return
    from pgserver.postgres_server import PostgresServer

    with db._servers_lock, PostgresServer._lock:  # pgserver starts servers under this lock
        if _postmaster_pid(pgdata) is None:
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()


def start_postgres(settings: Settings) -> tuple[PostgresTarget, bool]:
    """The external Postgres of ADS_DATABASE_URL (checked), or the embedded one, started or reused.

    Returns the target and whether this process started it, or adopted it: a postmaster that a killed run
    left running, which this process then stops as if it had started it (see `stop_embedded_postgres`). An
    external database is locked for this run when the run lock is held (see `lock_database`).
    """
    if settings.database_url:
        target = check_database_url(settings.database_url)
        lock_database(settings, target)
        return target, False
    pgdata = settings.pgdata
    try:
        _remove_stale_pid_file(pgdata)
        orphan = orphaned_postmaster(pgdata)
        running = embedded_postgres_running(pgdata)
        target = embedded_postgres(pgdata)
    except Exception as error:
        raise SettingsError(f"cannot start the embedded Postgres in {pgdata}: {_first_line(error)}") from None
    check_postgres(target, f"the embedded Postgres in {pgdata}")
    if orphan is not None:
        with db._servers_lock:
            _drop_dead_handles(db._servers[pgdata.resolve()])
        _notify(
            settings.home,
            f"reusing the embedded Postgres (pid {orphan}) that a killed run left running in {pgdata}; "
            "it stops when this run ends",
        )
    return target, not running or orphan is not None


def lock_database(settings: Settings, target: PostgresTarget) -> None:
    """When this process holds the run lock of the state, take the advisory lock of its external database too
    (runs of other states on the same database wait or refuse as for the lock file)."""
    import psycopg

    from ads_assets.lib.locking import held_run_lock

    lock = held_run_lock(settings.home)
    if lock is None:
        return
    try:
        lock.lock_database(target.conninfo())
    except psycopg.Error as error:
        raise SettingsError(f"cannot lock {target.describe()}: {target.scrub(_first_line(error))}") from None


@contextlib.contextmanager
def postgres_for(settings: Settings) -> Iterator[PostgresTarget]:
    """The ADS Postgres for the block (see `start_postgres`); an embedded one this process started is stopped after it."""
    postgres, started = start_postgres(settings)
    try:
        yield postgres
    finally:
        if started:
            stop_embedded_postgres(settings.pgdata)


def stop_embedded_postgres(pgdata: Path) -> bool:
    """Stop the embedded Postgres on `pgdata` that this process holds, unless another live process uses it.

    pgserver stops a server when the last process that opened it exits; handles of processes that died
    without saying so (a run killed with SIGKILL, a Dagster process killed by Ctrl-C) are dropped first.
    Returns True when stopped.
    """
    pgdata = pgdata.resolve()
    with db._servers_lock:
        server = db._servers.pop(pgdata, None)
        if server is None:
            return False
        _drop_dead_handles(server)
        server._cleanup()
    return not embedded_postgres_running(pgdata)


def _drop_dead_handles(server: Any) -> None:
    """Forget the handles on a pgserver server of processes that died without closing them, so that the last
    live holder stops the server when it ends (at the latest when it exits)."""
    handles = server.global_process_id_list
    with server._lock:
        for pid in handles.get():
            if pid != os.getpid() and not _alive(pid):
                handles.get_and_remove(pid)


def _alive(pid: int) -> bool:
    """True when process `pid` exists and is not a zombie (killed, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _notify(home: Path, text: str) -> None:
    """Show a one-line notice: through the run holding the lock of `home`, else on stderr."""
    from ads_assets.lib.locking import held_run_lock

    lock = held_run_lock(home)
    if lock is not None:
        lock.notify(text)
    else:
        print(f"ads: {text}", file=sys.stderr, flush=True)


# --- source ------------------------------------------------------------------------------------------


def check_source(location: str) -> dict[str, SourceFile]:
    """The source's eight relations, each readable: files present with their headers, or a reachable database."""
    if "://" in location:
        _check_source_database(location)
    sources = detect_source(location)
    for source in sources.values():
        if source.format != SourceFormat.DATABASE:
            for _ in read_rows(source):
                break
    return sources


def _check_source_database(url: str) -> None:
    try:
        parts = split_url(url)
    except DatabaseUrlError as error:
        message = scrub(str(error), *url_secrets(url))
        raise SourceError(
            f"bad source {shown_url(url)!r}: {message}; expected a folder or a postgresql://… URL"
        ) from None
    if parts.is_postgres:
        import psycopg

        target = PostgresTarget.from_url(url)
        try:
            psycopg.connect(target.conninfo(), connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        except psycopg.Error as error:
            message = scrub(_first_line(error), *url_secrets(url))
            raise SourceError(f"cannot connect to the source {shown_url(url)}: {message}") from None


def source_span(sources: dict[str, SourceFile], known: tuple[str, str] | None = None) -> TransactionSpan:
    """The months of the source's transactions inside the plausible window (read from them unless `known`),
    the window (ADS_PLAUSIBLE_FROM, else from the earliest opening among the source's accounts, to today)
    and the transactions left out as dated outside it. Raises SourceError when no transaction is inside."""
    plausible = plausible_window(sources["account"])
    if known:
        return TransactionSpan(known[0], known[1], plausible)
    return transaction_span(sources["trans"], plausible)


def source_months(sources: dict[str, SourceFile], known: tuple[str, str] | None = None) -> tuple[str, str]:
    """The first and last month of the source's transactions inside the plausible window (see `source_span`)."""
    return source_span(sources, known).months


def ensure_default_dataset(folder: Path, config: Any = None) -> Path:
    """Generate the data set of `config` into `folder` unless the same one is already there."""
    from ads_assets.lib.berka.generator import generate, write_dataset

    config = config or default_dataset()
    marker = folder / DATASET_MARKER
    wanted = asdict(config)
    with contextlib.suppress(OSError, ValueError):
        if marker.exists() and json.loads(marker.read_text()) == wanted:
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    data = generate(config)
    write_dataset(data, folder, "asc")
    marker.write_text(json.dumps(wanted))
    return folder


def default_dataset_ready(folder: Path) -> bool:
    """True when `folder` already holds the default data set."""
    marker = folder / DATASET_MARKER
    with contextlib.suppress(OSError, ValueError):
        return marker.exists() and json.loads(marker.read_text()) == asdict(default_dataset())
    return False


# --- putting it together -----------------------------------------------------------------------------


def activate(
    settings: Settings,
    postgres: PostgresTarget,
    source: str,
    months: tuple[str, str] | None,
    *,
    started_postgres: bool = False,
    fix_months: bool = True,
) -> Environment:
    """Point the code location at the checked source, Postgres and Dagster home, and remember them.

    Sets the ADS_* variables (and the ADS_PG_* ones of the dbt profile) that the code location reads, so it
    must run before definitions load.
    """
    _prepare_dagster_home(settings, postgres)
    os.environ.update(postgres.dbt_profile_env())
    os.environ["ADS_SOURCE"] = source
    os.environ["ADS_OUTPUT"] = settings.output
    record_state(settings.home, source=source, output=settings.output)
    if months and fix_months:
        fix_partition_span(settings, *months)
    register_months(Settings.from_env().months)
    return Environment(
        settings=Settings.from_env(),
        postgres=postgres,
        source=source,
        months=months,
        started_postgres=started_postgres,
    )


def prepare_environment(source: str | None = None, output: str | None = None) -> Environment:
    """Check the settings and the source, start or attach to Postgres and point Dagster's storage at it.

    The one-call form of what `ads run` does step by step; raises SettingsError or SourceError.
    """
    settings = apply_options(source, output)
    check_output(settings.output)
    postgres, started = start_postgres(settings)
    known = None
    if settings.source:
        location = settings.source
    else:
        location = str(ensure_default_dataset(settings.generated_data))
        known = (default_dataset().start, default_dataset().end)
    sources = check_source(location)
    fix = "ADS_MONTHS" not in os.environ
    months = source_months(sources, known) if fix else None
    return activate(settings, postgres, location, months, started_postgres=started, fix_months=fix)


def fix_partition_span(settings: Settings, start: str, end: str) -> None:
    """Record the months the data covers: `activate` adds them as month partitions and `ads run` covers them."""
    months = f"{start}:{end}"
    record_state(settings.home, months=months)
    os.environ["ADS_MONTHS"] = months


def register_months(months: tuple[str, str]) -> list[str]:
    """Add the month partitions of the span `months` to Dagster's instance (DAGSTER_HOME); returns those added."""
    import dagster as dg

    from ads_assets.defs.partitions import add_months, months_between

    with dg.DagsterInstance.get() as instance:
        return add_months(instance, months_between(*months))


def _prepare_dagster_home(settings: Settings, postgres: PostgresTarget) -> None:
    """Write dagster.yaml (run, event and schedule storage in `postgres`) and point DAGSTER_HOME at it.

    The storage URL, password included, goes only into the environment (ADS_DAGSTER_STORAGE_URL), encoded by
    SQLAlchemy. When this process holds the run lock of the state, runs that a killed process left STARTING
    or STARTED are marked failed, and a notice says so.
    """
    from ads_assets.lib.locking import held_run_lock

    dagster_home = settings.dagster_home.resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ[STORAGE_URL_VARIABLE] = postgres.sqlalchemy_url("psycopg2")
    lock = held_run_lock(settings.home)
    if lock is not None:
        failed = fail_orphaned_runs(postgres)
        if failed:
            shown = ", ".join(f"{run_id} (pid {pid})" if pid else run_id for run_id, pid in failed)
            lock.notify(f"marked {len(failed)} run(s) that a killed process left unfinished as FAILURE: {shown}")


def fail_orphaned_runs(postgres: PostgresTarget) -> list[tuple[str, int | None]]:
    """Mark as failed the runs in Dagster's storage that are STARTING or STARTED while the process that
    started them (the pid of their latest start event) is gone; returns each run's id and that pid.

    Only safe while holding the run lock: every live run of the state holds it too.
    """
    import psycopg

    with psycopg.connect(postgres.conninfo(), autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS) as connection:
        if connection.execute("SELECT to_regclass('runs')").fetchone()[0] is None:
            return []
        rows = connection.execute("SELECT run_id FROM runs WHERE status IN ('STARTING', 'STARTED')").fetchall()
    if not rows:
        return []
    import dagster as dg
    from dagster._core.events import DagsterEventType

    lifecycle = {DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START}
    failed: list[tuple[str, int | None]] = []
    with dg.DagsterInstance.get() as instance:
        for (run_id,) in rows:
            run = instance.get_run_by_id(run_id)
            if run is None or run.status not in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED):
                continue
            events = [
                entry.dagster_event
                for entry in instance.all_logs(run_id, of_type=lifecycle)
                if entry.dagster_event is not None
            ]
            pid = events[-1].pid if events else None
            if pid is not None and pid != os.getpid() and _alive(pid):
                continue
            instance.report_run_failed(
                run,
                message=f"The process running this run{f' (pid {pid})' if pid else ''} ended without finishing it "
                f"(killed); marked failed by the next run of this ADS state (pid {os.getpid()}).",
            )
            failed.append((run_id, pid))
    return failed
