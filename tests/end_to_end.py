"""The `ads` runs of the end-to-end tests, run in background threads while the other tests run.

Use as a plugin (`pytest_plugins` in the top-level conftest). Each run is made once per session and the
tests of `tests/test_cli.py` assert on it:

- `built`: one `ads run` of a small generated bank (`generated`) in a fresh ADS_HOME, local output;
- `rescored`: `ads run --months 1993-02:1993-03 --retrain-every 1` on a copy of the built home and output;
- `failed_run`: `ads run` on another copy, whose raw.fin_trans refuses every row (a CHECK constraint);
- `reran`: on a third copy, `ads run` again with nothing new, then with one line of the last month changed,
  then after `ads label` of a transaction of 1993-04;
- `recovery`: on a fourth copy, `ads run --months` killed with SIGKILL once it has ingested, again as it
  starts scoring, then two such runs started at once: one refuses in one line, the other recovers what the
  killed ones left and succeeds;
- `s3_run`: `ads run --output s3://<new bucket>/runs/ads` in a fresh ADS_HOME, against moto;
- `parallel`: on a fifth copy, the scores of two months materialized at once by two `dagster asset materialize`
  processes, each its own run with the code location's (multiprocess) executor.

The runs the selected tests name start with the session's first test, two at a time: the built pipeline
beside the S3 run, then the two runs on copies of the built pipeline. The copies are made as the build
ends, before any test opens it, and keep the built home and output as that one run left them, so its
tests read the same whatever order the tests run in. The tests that name a run go last, after every
other test, so that the runs go on meanwhile on the second core instead of being waited for.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest

from ads_assets.environment import STORAGE_URL_VARIABLE, embedded_postgres_running, stop_embedded_postgres
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import PostgresTarget, connect, embedded_postgres, table_count
from ads_assets.lib.fingerprints import forget_runs
from ads_assets.lib.raw_schema import QUARANTINE_TABLE, raw_table
from ads_assets.lib.storage import KMS_KEY_VARIABLE, OutputStore, s3_region
from ads_assets.lib.tables import SCORES_TABLE

REPO = Path(__file__).resolve().parents[1]
LABELLED_MONTH = "1993-04"
"""The month of the transaction `reran` labels (the last): the next run redoes it alone."""
RUNS = ("built", "rescored", "failed_run", "s3_run", "reran", "recovery", "parallel")
COPIES = frozenset({"rescored", "failed_run", "reran", "recovery", "parallel"})
"""The runs made on a copy of the built pipeline."""
RUN_TIMEOUT = 600
"""The fixtures that hold a background run: a test that names one runs after the others."""
RESCORED_MONTHS = "1993-02:1993-03"


def ads(
    *args: str,
    home: Path,
    env: dict[str, str | None] | None = None,
    timeout: int = 900,
    base: Mapping[str, str] | None = None,
    started: list[subprocess.Popen] | None = None,
) -> subprocess.CompletedProcess:
    """`ads ARGS` in a subprocess with ADS_HOME=home, in the environment `base` (default: this process's);
    `env` adds variables (None removes one). The process is appended to `started` while it runs."""
    environment = {**(os.environ if base is None else base), "ADS_HOME": str(home)}
    environment.pop("DAGSTER_HOME", None)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    command = [sys.executable, "-m", "ads_assets.cli", *args]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    ) as process:
        if started is not None:
            started.append(process)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            process.kill()
            raise
        finally:
            if started is not None:
                started.remove(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def new_home(name: str) -> Path:
    """A fresh ADS_HOME for an embedded Postgres: outside pytest's basetemp, whose permissions another pytest
    session resets to 0700 when it starts (cutting the `pgserver` user off its data directory)."""
    from tests.conftest import SESSION_ROOT

    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=SESSION_ROOT))


def source_tree_files() -> dict[str, float]:
    """Every file of the dbt project and the suites in the source tree, with its modification time."""
    return {
        str(path): path.stat().st_mtime
        for folder in (REPO / "dbt_project", REPO / "expectations")
        for path in folder.rglob("*")
        if path.is_file()
    }


def db_counts(home: Path) -> dict[str, int]:
    with connect(embedded_postgres(home / "pgdata")) as connection, connection.cursor() as cursor:
        rows = {name: table_count(cursor, raw_table(RELATIONS[name])) for name in LOAD_ORDER}
        rows["quarantine"] = table_count(cursor, QUARANTINE_TABLE)
        rows["runs"] = table_count(cursor, "runs")
        rows["scores"] = table_count(cursor, SCORES_TABLE)
        return rows


ID_QUERIES = {
    "raw.fin_trans": "SELECT DISTINCT trans_id FROM raw.fin_trans",
    "marts.fct_transaction_features": "SELECT DISTINCT trans_id FROM marts.fct_transaction_features",
    SCORES_TABLE: f"SELECT DISTINCT trans_id FROM {SCORES_TABLE}",
    "anomaly.missing_payments": "SELECT DISTINCT account_id::text || '/' || month FROM anomaly.missing_payments",
}
"""The distinct ids of each table a run writes, to compare a recovered pipeline with a clean one."""


def published_ids(home: Path, output: Path) -> dict[str, frozenset]:
    """Each written table's distinct ids in Postgres, and the Parquet scores' trans_ids."""
    with connect(embedded_postgres(home / "pgdata")) as connection:
        ids = {table: frozenset(row[0] for row in connection.execute(query)) for table, query in ID_QUERIES.items()}
    parquet = OutputStore(str(output)).read_table("transaction_scores").column("trans_id").to_pylist()
    ids["parquet transaction_scores"] = frozenset(parquet)
    return ids


@dataclass
class Built:
    home: Path
    output: Path
    source: Path
    result: subprocess.CompletedProcess
    started: datetime
    source_tree: dict[str, float]
    """Every file of the dbt project and the suites in the source tree before the run (`source_tree_files`)."""
    source_tree_after: dict[str, float]
    """The same, as the run ended."""


@dataclass
class Rerun:
    """A later `ads run` on a copy of the built ADS_HOME (its Postgres included) and of its output."""

    home: Path
    output: Path
    before: dict[str, int]
    """The tables' rows before this run."""
    started: datetime
    result: subprocess.CompletedProcess


@dataclass
class Reran:
    """`ads run` twice more on a copy of the built pipeline: with the same source, then with its last month changed."""

    home: Path
    output: Path
    runs_before: int
    unchanged: subprocess.CompletedProcess
    runs_after_unchanged: int
    changed: subprocess.CompletedProcess
    changed_started: datetime
    scored_after_changed: dict[str, datetime]
    """Each month's latest `scored_at` once the changed run finished."""
    labelled: subprocess.CompletedProcess
    """`ads label` of a transaction of the third month, then `ads run` once more."""
    labelled_started: datetime


@dataclass
class Recovery:
    """What the end-to-end scenario saw: a run killed after ingesting, then two runs started at once."""

    home: Path
    killed_in_ingest: str
    """The Dagster run killed once it had ingested."""
    killed_in_ingest_pid: int
    killed_run_id: str
    """The Dagster run killed after it reported its quality report, as its scoring step started."""
    killed_pid: int
    postmaster_after_kill: int
    """The pid of the postmaster still running after the kill."""
    winner: subprocess.CompletedProcess
    loser: subprocess.CompletedProcess
    winner_pid: int
    statuses: dict[str, str]
    """Dagster's run storage after the recovering run: status by run id, of the runs since the copy."""
    postmaster_after_run: bool
    ids: dict[str, frozenset]
    """`published_ids` after the recovering run."""


@dataclass
class Parallel:
    """Two month runs at once on a copy of the built pipeline: each process's result, and what the storage holds."""

    home: Path
    output: Path
    months: tuple[str, str]
    started: datetime
    results: list[subprocess.CompletedProcess]
    runs: dict[str, tuple[str, str, float, float]]
    """Each new run's id: (status, partition, start time, end time)."""
    scored_at: dict[str, datetime]
    """Each month's latest `scored_at`."""
    rows: dict[str, int]
    """Each month's rows in anomaly.transaction_scores."""


class Streamed:
    """`ads ARGS` in a session of its own, its output lines read as they come."""

    def __init__(self, args: list[str], home: Path, lines: queue.Queue, base: Mapping[str, str]) -> None:
        environment = {**base, "ADS_HOME": str(home)}
        for name in ("DAGSTER_HOME", "ADS_LOCK_TIMEOUT", "ADS_DATABASE_URL"):
            environment.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ads_assets.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, lines), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, None), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: IO[str], into: list[str], lines: queue.Queue | None) -> None:
        for line in stream:
            into.append(line)
            if lines is not None:
                lines.put((self, line))
        if lines is not None:
            lines.put((self, None))

    def kill_group(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def result(self) -> subprocess.CompletedProcess:
        self.process.wait(timeout=RUN_TIMEOUT)
        for thread in self._threads:
            thread.join(timeout=30)
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, "".join(self.stdout), "".join(self.stderr)
        )


def postmaster_socket(pgdata: Path) -> PostgresTarget:
    """The running embedded server as its postmaster.pid says, reached without a pgserver handle (a handle
    would count this process as one using the server)."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return PostgresTarget(host=lines[4], port=int(lines[3]), user="postgres", password=None, dbname="postgres")


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the postmaster running on `pgdata`, if one is."""
    if not embedded_postgres_running(pgdata):
        return None
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def started_runs(target: PostgresTarget) -> list[str]:
    with psycopg.connect(target.conninfo(), autocommit=True) as connection:
        return [row[0] for row in connection.execute("SELECT run_id FROM runs WHERE status = 'STARTED'")]


@dataclass
class S3Run:
    home: Path
    bucket: str
    output: str
    result: subprocess.CompletedProcess
    kms_key_id: str
    """The KMS key the run was given in ADS_S3_KMS_KEY_ID."""


def copy_built(built: Built, home: Path, output: Path) -> None:
    """Copy the built ADS_HOME, its Postgres stopped, keeping the files' owners (the server runs as another
    user), and its output."""
    assert not embedded_postgres_running(built.home / "pgdata"), "the run stops its Postgres as it exits"
    subprocess.run(["cp", "-a", f"{built.home}/.", str(home)], check=True)
    subprocess.run(["cp", "-a", f"{built.output}/.", str(output)], check=True)


class EndToEnd:
    """The background runs, two at a time in threads, each started once; `result` waits for one.

    They are queued in the order built, S3, rescored, failed: the runs on copies wait for the built pipeline.
    """

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.request = request
        self.factory = tmp_path_factory
        # Two runs at a time, one per core: more would only share the cores and add to the memory in use.
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ads-run")
        self.futures: dict[str, Future] = {}
        self.copies: dict[str, tuple[Path, Path]] = {}
        self.copied: dict[str, BaseException | None] = {}
        """Per run on a copy, once the built job made it: None, or what failed the copy."""
        self.environment: dict[str, str] = {}
        self.processes: list[subprocess.Popen] = []
        self.closing = False

    def start(self, runs: set[str]) -> None:
        """Start the runs not started yet (and the built pipeline, when a copy of it is wanted)."""
        runs = runs - set(self.futures)
        if not runs:
            return
        source = self.request.getfixturevalue("generated")
        if "s3_run" in runs:
            self.request.getfixturevalue("s3_endpoint")
        # Taken here, in the main thread: no test's monkeypatch of os.environ reaches a run started later.
        self.environment = {**os.environ}
        for name in runs & COPIES:
            self.copies[name] = (new_home(name), self.factory.mktemp(f"{name}_output"))
        if runs & (COPIES | {"built"}) and "built" not in self.futures:
            home, output = new_home("built"), self.factory.mktemp("built") / "out"
            self.futures["built"] = self.pool.submit(self._built, source, home, output, dict(self.copies))
        jobs = (
            ("s3_run", self._s3_run),
            ("rescored", self._rescored),
            ("failed_run", self._failed_run),
            ("reran", self._reran),
            ("recovery", self._recovery),
            ("parallel", self._parallel),
        )
        for name, job in jobs:
            if name in runs:
                self.futures[name] = self.pool.submit(job, source)

    def result(self, run: str) -> Any:
        self.start({run})
        return self.futures[run].result()

    def close(self) -> None:
        """Stop what still runs (nothing, once the tests have waited for every run), as Ctrl-C would."""
        self.closing = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in list(self.processes):
            process.send_signal(signal.SIGINT)
        self.pool.shutdown(wait=True)

    def ads(self, *args: str, home: Path, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
        if self.closing:
            raise RuntimeError("the session is over")
        return ads(*args, home=home, env=env, base=self.environment, started=self.processes)

    def _built(self, source: Path, home: Path, output: Path, copies: dict[str, tuple[Path, Path]]) -> Built:
        before = source_tree_files()
        started = datetime.now(UTC)
        result = self.ads("run", "--source", str(source), "--output", str(output), home=home)
        built = Built(home, output, source, result, started, before, source_tree_files())
        if result.returncode == 0:
            # Now, before any test opens the built pipeline's Postgres.
            for name, (copy_home, copy_output) in copies.items():
                try:
                    copy_built(built, copy_home, copy_output)
                    self.copied[name] = None
                except Exception as error:  # reported by the run on the copy
                    self.copied[name] = error
        return built

    def _copy_of_built(self, name: str) -> tuple[Path, Path] | None:
        """The home and output of the copy of the built pipeline for `name` (None when it was not built)."""
        built = self.futures["built"].result()
        if built.result.returncode != 0:
            return None
        if name not in self.copied:
            raise RuntimeError(f"no copy of the built pipeline was made for {name}: it was started after the build")
        if self.copied[name] is not None:
            raise RuntimeError(f"the built pipeline could not be copied for {name}") from self.copied[name]
        return self.copies[name]

    def _rescored(self, source: Path) -> Rerun | None:
        copy = self._copy_of_built("rescored")
        if copy is None:
            return None
        home, output = copy
        before, started = db_counts(home), datetime.now(UTC)
        months = ("--months", RESCORED_MONTHS, "--retrain-every", "1")
        result = self.ads("run", "--source", str(source), "--output", str(output), *months, home=home)
        return Rerun(home, output, before, started, result)

    def _failed_run(self, source: Path) -> subprocess.CompletedProcess | None:
        copy = self._copy_of_built("failed_run")
        if copy is None:
            return None
        home, output = copy
        target = embedded_postgres(home / "pgdata")
        with connect(target, autocommit=True) as connection:
            forget_runs(connection)
            connection.execute("ALTER TABLE raw.fin_trans ADD CONSTRAINT ads_test_broken CHECK (amount < 0) NOT VALID")
        try:
            return self.ads("run", "--source", str(source), "--output", str(output), home=home)
        finally:
            with connect(target, autocommit=True) as connection:
                connection.execute("ALTER TABLE raw.fin_trans DROP CONSTRAINT ads_test_broken")

    def _reran(self, source: Path) -> Reran | None:
        copy = self._copy_of_built("reran")
        if copy is None:
            return None
        home, output = copy
        runs_before = db_counts(home)["runs"]
        unchanged = self.ads("run", "--source", str(source), "--output", str(output), home=home)
        runs_after_unchanged = db_counts(home)["runs"]
        changed_source = home / "changed_source"
        shutil.copytree(source, changed_source)
        change_one_line_of(changed_source / "fin_trans.tsv", LAST_MONTH_DAY)
        changed_started = datetime.now(UTC)
        changed = self.ads("run", "--source", str(changed_source), "--output", str(output), home=home)
        with connect(embedded_postgres(home / "pgdata")) as connection:
            scored_after_changed = dict(
                connection.execute("SELECT month, max(scored_at) FROM anomaly.transaction_scores GROUP BY month")
            )
            (trans_id,) = connection.execute(
                "SELECT min(trans_id) FROM anomaly.transaction_scores WHERE month = %s", (LABELLED_MONTH,)
            ).fetchone()
        stop_embedded_postgres(home / "pgdata")
        label = self.ads("label", str(trans_id), "confirmed", "--note", "end-to-end", home=home)
        assert label.returncode == 0, label.stdout + label.stderr
        labelled_started = datetime.now(UTC)
        labelled = self.ads("run", "--source", str(changed_source), "--output", str(output), home=home)
        return Reran(
            home,
            output,
            runs_before,
            unchanged,
            runs_after_unchanged,
            changed,
            changed_started,
            scored_after_changed,
            labelled,
            labelled_started,
        )

    def _recovery(self, source: Path) -> Recovery | None:
        copy = self._copy_of_built("recovery")
        if copy is None:
            return None
        home, output = copy
        with connect(embedded_postgres(home / "pgdata")) as connection:
            runs_before = {row[0] for row in connection.execute("SELECT run_id FROM runs")}
        stop_embedded_postgres(home / "pgdata")
        arguments = ["run", "--source", str(source), "--output", str(output), "--months", RECOVERED_MONTHS]
        in_ingest = self._killed_at(arguments, home, "] ingest: ")
        first_postmaster = postmaster_pid(home / "pgdata")
        assert first_postmaster is not None, "SIGKILL of the run's process group leaves its postmaster running"
        [killed_in_ingest] = started_runs(postmaster_socket(home / "pgdata"))
        in_scoring = self._killed_at(arguments, home, "] quality report: ")
        postmaster = postmaster_pid(home / "pgdata")
        assert postmaster is not None, "SIGKILL of the run's process group leaves its postmaster running"
        [killed_in_scoring] = started_runs(postmaster_socket(home / "pgdata"))

        lines: queue.Queue = queue.Queue()
        first, second = (Streamed(arguments, home, lines, self.environment) for _ in range(2))
        try:
            results = {first: first.result(), second: second.result()}
        finally:
            for streamed in (first, second):
                if streamed.process.poll() is None:
                    streamed.kill_group()
        (winner, won), (_, lost) = sorted(results.items(), key=lambda item: item[1].returncode)
        after_run = embedded_postgres_running(home / "pgdata")
        try:
            with connect(embedded_postgres(home / "pgdata")) as connection:
                statuses = dict(connection.execute("SELECT run_id, status FROM runs").fetchall())
            ids = published_ids(home, output)
        finally:
            stop_embedded_postgres(home / "pgdata")
        return Recovery(
            home=home,
            killed_in_ingest=killed_in_ingest,
            killed_run_id=killed_in_scoring,
            killed_pid=in_scoring.process.pid,
            killed_in_ingest_pid=in_ingest.process.pid,
            postmaster_after_kill=postmaster,
            winner=won,
            loser=lost,
            winner_pid=winner.process.pid,
            statuses={run: status for run, status in statuses.items() if run not in runs_before},
            postmaster_after_run=after_run,
            ids=ids,
        )

    def _parallel(self, source: Path) -> Parallel | None:
        copy = self._copy_of_built("parallel")
        if copy is None:
            return None
        home, output = copy
        target = embedded_postgres(home / "pgdata")
        with connect(target) as connection:
            runs_before = {row[0] for row in connection.execute("SELECT run_id FROM runs")}
        environment = {
            **self.environment,
            "ADS_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            STORAGE_URL_VARIABLE: target.sqlalchemy_url("psycopg2"),
            "ADS_SOURCE": str(source),
            "ADS_OUTPUT": str(output),
        }
        started = datetime.now(UTC)
        commands = [
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "ads_assets.definitions"]
            + ["--select", "anomaly/transaction_scores", "--partition", f"{month}-01"]
            for month in PARALLEL_MONTHS
        ]
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
            for command in commands
        ]
        self.processes.extend(processes)
        try:
            outputs = [process.communicate(timeout=RUN_TIMEOUT) for process in processes]
            results = [
                subprocess.CompletedProcess(command, process.returncode, *output)
                for command, process, output in zip(commands, processes, outputs, strict=True)
            ]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                self.processes.remove(process)
        try:
            with connect(target) as connection:
                partitions = dict(
                    connection.execute("SELECT run_id, value FROM run_tags WHERE key = 'dagster/partition'")
                )
                runs = {
                    run_id: (status, partitions.get(run_id, ""), start, end)
                    for run_id, status, start, end in connection.execute(
                        "SELECT run_id, status, start_time, end_time FROM runs"
                    )
                    if run_id not in runs_before
                }
                scored_at = dict(
                    connection.execute("SELECT month, max(scored_at) FROM anomaly.transaction_scores GROUP BY month")
                )
                rows = dict(connection.execute("SELECT month, count(*) FROM anomaly.transaction_scores GROUP BY month"))
        finally:
            stop_embedded_postgres(home / "pgdata")
        return Parallel(home, output, PARALLEL_MONTHS, started, results, runs, scored_at, rows)

    def _killed_at(self, arguments: list[str], home: Path, marker: str) -> Streamed:
        """`ads ARGUMENTS`, its process group killed with SIGKILL as soon as it prints a line holding `marker`."""
        lines: queue.Queue = queue.Queue()
        killed = Streamed(arguments, home, lines, self.environment)
        try:
            while True:
                _, line = lines.get(timeout=RUN_TIMEOUT)
                if line is None:
                    raise RuntimeError(f"the run ended before {marker!r}: " + "".join(killed.stdout + killed.stderr))
                if marker in line:
                    break
            killed.kill_group()
        finally:
            if killed.process.poll() is None:
                killed.kill_group()
        return killed

    def _s3_run(self, source: Path) -> S3Run:
        import boto3

        # A session of its own: boto3's default session is not to be shared between threads.
        session = boto3.session.Session()
        s3 = session.client("s3", endpoint_url=self.environment["ADS_S3_ENDPOINT_URL"], region_name=s3_region())
        bucket = f"ads-test-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        kms = session.client("kms", endpoint_url=self.environment["ADS_S3_ENDPOINT_URL"], region_name=s3_region())
        key_id = kms.create_key(Description="ADS end-to-end outputs")["KeyMetadata"]["KeyId"]
        home, output = new_home("s3"), f"s3://{bucket}/runs/ads"
        result = self.ads("run", "--source", str(source), "--output", output, home=home, env={KMS_KEY_VARIABLE: key_id})
        return S3Run(home, bucket, output, result, key_id)


RECOVERED_MONTHS = "1993-04:1993-04"
PARALLEL_MONTHS = ("1993-02", "1993-03")
"""The months the `parallel` scenario rescores at once, one run each."""
LAST_MONTH_DAY = "1993-04-"
"""How the last month of the small bank begins in a fin_* date (the dates are shifted by FIN_DATE_SHIFT_YEARS)."""


def change_one_line_of(path: Path, day_prefix: str) -> None:
    """Change the amount of the first transaction whose date starts with `day_prefix` (fin_* layout: its 4th field)."""
    from ads_assets.lib.berka.schema import FIN_DATE_SHIFT_YEARS

    shifted = f"{int(day_prefix[:4]) + FIN_DATE_SHIFT_YEARS}{day_prefix[4:]}"
    lines = path.read_text().splitlines(keepends=True)
    index = next(number for number, line in enumerate(lines) if line.split("\t")[2].startswith(shifted))
    fields = lines[index].split("\t")
    fields[3] = f"{float(fields[3]) + 1:.2f}"
    lines[index] = "\t".join(fields)
    path.write_text("".join(lines))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that name a background run go last (in their order), the others keep theirs."""
    items.sort(key=lambda item: bool(set(RUNS) & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small bank in the fin_* format: 400 accounts over 4 months, 1 % anomalies."""
    folder = tmp_path_factory.mktemp("generated")
    options = ["--accounts", "400", "--start", "1993-01", "--end", "1993-04", "--format", "fin"]
    options += ["--seed", "11", "--anomaly-rate", "0.01"]
    result = ads("generate", "--out", str(folder), *options, home=folder / "unused_home")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="session", autouse=True)
def end_to_end(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndToEnd]:
    """Starts, with the session's first test, the runs that the selected tests name."""
    runs = EndToEnd(request, tmp_path_factory)
    wanted = {name for item in request.session.items for name in getattr(item, "fixturenames", ())} & set(RUNS)
    # A bank that cannot be generated (or no moto) fails the tests that name a run when they ask again, not all.
    with contextlib.suppress(Exception):
        runs.start(wanted)
    try:
        yield runs
    finally:
        runs.close()


@pytest.fixture(scope="session")
def built(end_to_end: EndToEnd) -> Built:
    """One `ads run` of the small bank in a fresh ADS_HOME, shared by the end-to-end tests."""
    return end_to_end.result("built")


@pytest.fixture(scope="session")
def rescored(end_to_end: EndToEnd) -> Rerun | None:
    """`ads run --months 1993-02:1993-03 --retrain-every 1` on a copy of the built pipeline (None if not built)."""
    return end_to_end.result("rescored")


@pytest.fixture(scope="session")
def failed_run(end_to_end: EndToEnd) -> subprocess.CompletedProcess | None:
    """`ads run` on a copy of the built pipeline whose raw.fin_trans refuses every row (None if not built)."""
    return end_to_end.result("failed_run")


@pytest.fixture(scope="session")
def reran(end_to_end: EndToEnd) -> Reran | None:
    """`ads run` with nothing new, then with one line of the last month changed, on a copy of the built pipeline."""
    return end_to_end.result("reran")


@pytest.fixture(scope="session")
def recovery(end_to_end: EndToEnd) -> Recovery | None:
    """`ads run --months` killed after ingesting, then two at once, on a copy of the built pipeline."""
    return end_to_end.result("recovery")


@pytest.fixture(scope="session")
def parallel(end_to_end: EndToEnd) -> Parallel | None:
    """Two month runs of the scores at once, on a copy of the built pipeline (None if not built)."""
    return end_to_end.result("parallel")


@pytest.fixture(scope="session")
def s3_run(end_to_end: EndToEnd) -> S3Run:
    """`ads run --output s3://<new bucket>/runs/ads` of the small bank in a fresh ADS_HOME, against moto."""
    return end_to_end.result("s3_run")
