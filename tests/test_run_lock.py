"""One run at a time per ADS state, and what a killed run leaves behind.

The lock tests hold the lock in a helper process (`HOLDER`) that takes it, prints `held` and keeps it until
its stdin closes. The end-to-end test runs `ads run` on a tiny generated bank: the first run is killed with
SIGKILL once it has ingested; then two runs start at once, one refuses in one line with exit status 2, and
the other recovers what the killed one left (its postmaster, its STARTED Dagster run) and succeeds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ads_assets.defs.executor import locked_executor
from ads_assets.environment import embedded_postgres_running, start_postgres
from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.locking import ADVISORY_KEY, DatabaseLock, Holder, LockBusy, RunLock, run_lock
from ads_assets.settings import DEFAULT_MONTHS, Settings, SettingsError
from tests.end_to_end import Built, Recovery, published_ids

HOLDER = """
import sys
from pathlib import Path
from ads_assets.lib.locking import run_lock
from ads_assets.settings import Settings

settings = Settings(home=Path(sys.argv[1]), database_url=None, source=None, output="unused", months=("1996-01", "1996-01"))
with run_lock(settings, "the test holder"):
    print("held", flush=True)
    sys.stdin.read()
"""
RUN_TIMEOUT = 600


def settings_for(home: Path, database_url: str | None = None) -> Settings:
    return Settings(home=home, database_url=database_url, source=None, output=str(home / "out"), months=DEFAULT_MONTHS)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A process holding the run lock of `tmp_path / 'home'` until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "home")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_second_run_is_refused_at_once_in_one_line_naming_the_holder(
    holder: subprocess.Popen, tmp_path: Path
) -> None:
    with pytest.raises(LockBusy) as busy, run_lock(settings_for(tmp_path / "home"), "a second run"):
        pytest.fail("took a lock another process holds")
    message = str(busy.value)
    assert isinstance(busy.value, SettingsError) and "\n" not in message
    assert re.match(rf"the test holder \(pid {holder.pid}, started \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\) holds ", message)
    assert "ADS_LOCK_TIMEOUT" in message


def test_a_run_waits_for_the_holder_up_to_the_timeout(
    holder: subprocess.Popen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notices: list[str] = []

    def release_on_notice(text: str) -> None:
        notices.append(text)
        assert holder.stdin is not None
        holder.stdin.close()

    monkeypatch.setenv("ADS_LOCK_TIMEOUT", "120")
    with run_lock(settings_for(tmp_path / "home"), "the waiting run", notify=release_on_notice) as lock:
        assert lock.file.holder().what == "the waiting run"
        assert lock.file.holder().pid == os.getpid()
    assert holder.wait() == 0
    assert len(notices) == 1 and notices[0].startswith(f"waiting up to 120 s for the test holder (pid {holder.pid}")


def test_a_killed_holder_leaves_no_lock(holder: subprocess.Popen, tmp_path: Path) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(settings_for(tmp_path / "home"), "the next run", timeout=0) as lock:
        assert lock.file.holder().pid == os.getpid()
    assert (tmp_path / "home" / "run.lock").read_text() == ""


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_bad_lock_timeout_is_a_settings_error(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADS_LOCK_TIMEOUT", value)
    with pytest.raises(SettingsError, match="bad ADS_LOCK_TIMEOUT"), run_lock(settings_for(tmp_path), "a run"):
        pass


def advisory_locks(target: PostgresTarget) -> int:
    with connect(target) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s",
            (ADVISORY_KEY & 0xFFFFFFFF,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_runs_of_two_states_on_one_external_database_exclude_each_other(
    fresh_database: PostgresTarget, tmp_path: Path
) -> None:
    url = f"postgresql://{fresh_database.user}@/{fresh_database.dbname}?host={fresh_database.host}&port={fresh_database.port}"
    settings = settings_for(tmp_path / "other", url)
    first = DatabaseLock(fresh_database.conninfo())
    assert first.try_acquire(Holder(what="ads run", pid=4242))
    try:
        with run_lock(settings, "ads run"), pytest.raises(LockBusy) as busy:
            start_postgres(settings)
        assert str(busy.value).startswith("ads run, pid 4242 on the same database (started ")
        assert "holds the ADS database: one run at a time" in str(busy.value)
    finally:
        first.release()
    with run_lock(settings, "ads run"):
        assert start_postgres(settings) == (fresh_database, False)
        assert advisory_locks(fresh_database) == 1
    assert advisory_locks(fresh_database) == 0


@dg.op
def one() -> int:
    return 1


@dg.job(executor_def=locked_executor)
def locked_job() -> None:
    one()


def test_a_dagster_ui_run_takes_the_lock_in_its_executor(
    holder: subprocess.Popen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADS_DATABASE_URL", raising=False)
    in_process = {"execution": {"config": {"in_process": {}}}}
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        refused = dg.execute_job(dg.reconstructable(locked_job), instance=instance, run_config=in_process)
        assert not refused.success
        failure = next(event for event in refused.all_events if event.event_type == dg.DagsterEventType.RUN_FAILURE)
        assert f"the test holder (pid {holder.pid}, started" in str(failure.event_specific_data)
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
        assert dg.execute_job(dg.reconstructable(locked_job), instance=instance, run_config=in_process).success


# --- ads run, killed, then two at once (a background run of tests/end_to_end.py) ------------------------


def test_of_two_runs_at_once_one_refuses_in_one_line_and_the_other_succeeds(recovery: Recovery) -> None:
    loser, winner = recovery.loser, recovery.winner
    assert winner.returncode == 0, winner.stdout[-3000:] + winner.stderr[-3000:]
    assert re.search(r"^ADS run [0-9a-f-]{36}: succeeded in ", winner.stdout, re.MULTILINE)
    message = loser.stderr.strip()
    assert loser.returncode == 2 and loser.stdout == "", loser.stdout + loser.stderr
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"ads: error: ads run (pid {recovery.winner_pid}, started ")
    assert f"holds the ADS state {recovery.home}: one run at a time" in message


def test_the_next_run_marks_the_killed_run_failed_and_says_so(recovery: Recovery) -> None:
    assert recovery.statuses[recovery.killed_in_ingest] == "FAILURE"
    assert recovery.statuses[recovery.killed_run_id] == "FAILURE"
    assert [status for status in recovery.statuses.values() if status != "FAILURE"] == ["SUCCESS"], (
        "the run that recovered is the only other one since the copy"
    )
    notice = (
        "marked 1 run(s) that a killed process left unfinished as FAILURE: "
        f"{recovery.killed_run_id} (pid {recovery.killed_pid})"
    )
    assert recovery.winner.stdout.splitlines().count(notice) == 1, recovery.winner.stdout


def test_the_next_run_reuses_the_killed_runs_postmaster_and_leaves_none_running(recovery: Recovery) -> None:
    notice = (
        f"reusing the embedded Postgres (pid {recovery.postmaster_after_kill}) that a killed run left running in "
        f"{recovery.home / 'pgdata'}; it stops when this run ends"
    )
    assert recovery.winner.stdout.splitlines().count(notice) == 1, recovery.winner.stdout
    assert not recovery.postmaster_after_run
    assert not embedded_postgres_running(recovery.home / "pgdata")


def test_after_the_kill_every_table_holds_the_ids_of_a_clean_run(built: Built, recovery: Recovery) -> None:
    """Runs killed while ingesting and while scoring leave no trace once the next run is done: every table
    (and the Parquet scores) holds the ids of the clean run."""
    assert built.result.returncode == 0
    clean = published_ids(built.home, built.output)
    assert all(clean.values())
    assert recovery.ids == clean


def test_month_runs_of_different_months_go_together_and_a_whole_run_excludes_them(tmp_path: Path) -> None:
    february, march = RunLock(tmp_path, "run of 1993-02", ["1993-02"]), RunLock(tmp_path, "run of 1993-03", ["1993-03"])
    february.acquire(0)
    march.acquire(0)
    with pytest.raises(LockBusy, match=r"holds the month 1993-02 of the ADS state"):
        RunLock(tmp_path, "another run of 1993-02", ["1993-02", "1993-04"]).acquire(0)
    with pytest.raises(LockBusy, match="holds the ADS state"):
        RunLock(tmp_path, "ads run").acquire(0)
    february.release()
    march.release()
    whole = RunLock(tmp_path, "ads run")
    whole.acquire(0)
    with pytest.raises(LockBusy, match=r"ads run \(pid \d+.*holds the ADS state"):
        RunLock(tmp_path, "run of 1993-04", ["1993-04"]).acquire(0)
    whole.release()
    april = RunLock(tmp_path, "run of 1993-04", ["1993-04"])
    april.acquire(0)
    april.release()
