"""The `ads` runs of the end-to-end tests, run in background threads while the other tests run.

Use as a plugin (`pytest_plugins` in the top-level conftest). Each run is made once per session and the
tests of `tests/test_cli.py` assert on it:

- `built`: one `ads run` of a small generated bank (`generated`) in a fresh ADS_HOME, local output;
- `rescored`: `ads run --months 1993-02:1993-03 --retrain-every 1` on a copy of the built home and output;
- `failed_run`: `ads run` on another copy, whose raw.fin_trans refuses every row (a CHECK constraint);
- `s3_run`: `ads run --output s3://<new bucket>/runs/ads` in a fresh ADS_HOME, against moto.

The runs the selected tests name start with the session's first test, two at a time: the built pipeline
beside the S3 run, then the two runs on copies of the built pipeline. The copies are made as the build
ends, before any test opens it, and keep the built home and output as that one run left them, so its
tests read the same whatever order the tests run in. The tests that name a run go last, after every
other test, so that the runs go on meanwhile on the second core instead of being waited for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ads_assets.environment import embedded_postgres_running
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import connect, embedded_postgres, table_count
from ads_assets.lib.raw_schema import QUARANTINE_TABLE, raw_table
from ads_assets.lib.storage import s3_region
from ads_assets.lib.tables import SCORES_TABLE

REPO = Path(__file__).resolve().parents[1]
RUNS = ("built", "rescored", "failed_run", "s3_run")
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
class S3Run:
    home: Path
    bucket: str
    output: str
    result: subprocess.CompletedProcess


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
        for name in runs & {"rescored", "failed_run"}:
            self.copies[name] = (new_home(name), self.factory.mktemp(f"{name}_output"))
        if runs & {"built", "rescored", "failed_run"} and "built" not in self.futures:
            home, output = new_home("built"), self.factory.mktemp("built") / "out"
            self.futures["built"] = self.pool.submit(self._built, source, home, output, dict(self.copies))
        for name, job in (("s3_run", self._s3_run), ("rescored", self._rescored), ("failed_run", self._failed_run)):
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

    def ads(self, *args: str, home: Path) -> subprocess.CompletedProcess:
        if self.closing:
            raise RuntimeError("the session is over")
        return ads(*args, home=home, base=self.environment, started=self.processes)

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
            connection.execute("ALTER TABLE raw.fin_trans ADD CONSTRAINT ads_test_broken CHECK (amount < 0) NOT VALID")
        try:
            return self.ads("run", "--source", str(source), "--output", str(output), home=home)
        finally:
            with connect(target, autocommit=True) as connection:
                connection.execute("ALTER TABLE raw.fin_trans DROP CONSTRAINT ads_test_broken")

    def _s3_run(self, source: Path) -> S3Run:
        import boto3

        # A session of its own: boto3's default session is not to be shared between threads.
        session = boto3.session.Session()
        s3 = session.client("s3", endpoint_url=self.environment["ADS_S3_ENDPOINT_URL"], region_name=s3_region())
        bucket = f"ads-test-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        home, output = new_home("s3"), f"s3://{bucket}/runs/ads"
        return S3Run(home, bucket, output, self.ads("run", "--source", str(source), "--output", output, home=home))


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
def s3_run(end_to_end: EndToEnd) -> S3Run:
    """`ads run --output s3://<new bucket>/runs/ads` of the small bank in a fresh ADS_HOME, against moto."""
    return end_to_end.result("s3_run")
