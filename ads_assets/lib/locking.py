"""One run at a time per ADS state, or per month: a lock file in ADS_HOME, and an advisory lock on an external
database.

The lock file (`$ADS_HOME/run.lock`) is held with `flock`, which the operating system releases when the
holding process ends, however it ends, so a killed run never leaves it held. It says who holds it (pid,
host, what, since when). On an external Postgres (ADS_DATABASE_URL) a session-level `pg_advisory_lock`
on that database is held as well, once the database has been checked, so two ADS states that share one
database exclude each other too; the server releases it when the holding connection closes.

A run confined to some months (every asset it materializes is month-partitioned: `months` given) holds the
state's locks shared and each of its months' locks (`$ADS_HOME/locks/month-YYYY-MM.lock`, and an advisory
lock per month) exclusively, so runs of different months go side by side while a whole run excludes them all.

A second holder waits up to `ADS_LOCK_TIMEOUT` seconds (default 0: it refuses at once) and then raises
`LockBusy`, a one-line `SettingsError` naming the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ads_assets.settings import Settings, SettingsError

LOCK_FILE = "run.lock"
TIMEOUT_VARIABLE = "ADS_LOCK_TIMEOUT"
POLL_SECONDS = 0.1
CONNECT_TIMEOUT_SECONDS = 5
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"ads run lock").digest()[:8], "big", signed=True)
"""The key of the advisory lock on an external database (one per database)."""
LOCKS_FOLDER = "locks"
"""The folder of ADS_HOME that holds the month locks and the canary database's lock."""


def month_key(month: str) -> int:
    """The advisory lock key of one month (YYYY-MM) of an external database."""
    return int.from_bytes(hashlib.sha256(f"ads month lock {month}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` for the block, waiting for as long as another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LockBusy(SettingsError):
    """Another process holds the run lock; the message names it and is one line."""


def lock_timeout() -> float:
    """ADS_LOCK_TIMEOUT in seconds: how long a run waits for the lock (0, the default, refuses at once)."""
    value = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise SettingsError(f"bad {TIMEOUT_VARIABLE} {value!r}: expected a number of seconds, 0 or more")
    return seconds


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as far as it said."""

    what: str
    pid: int | None = None
    host: str | None = None
    started: str | None = None
    """When it took the lock, ISO 8601 in local time."""

    def describe(self) -> str:
        where = [f"pid {self.pid}" if self.pid is not None else None]
        if self.host and self.host != socket.gethostname():
            where.append(f"on {self.host}")
        if self.started:
            where.append(f"started {self.started.replace('T', ' ')}")
        details = ", ".join(item for item in where if item)
        return f"{self.what} ({details})" if details else self.what


def _me(what: str) -> Holder:
    return Holder(
        what=what, pid=os.getpid(), host=socket.gethostname(), started=datetime.now().isoformat("T", "seconds")
    )


class FileLock:
    """A `flock` on a file, exclusive unless `shared`; an exclusive holder's description stays in the file while
    it holds it."""

    def __init__(self, path: Path, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._fd: int | None = None

    def try_acquire(self, holder: Holder) -> bool:
        """Take the lock without waiting; False when another process (or another open of it) holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder.__dict__).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            if not self.shared:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def holder(self) -> Holder:
        """Who holds it, as the holder wrote; an unnamed holder while it has not written yet."""
        with contextlib.suppress(OSError, ValueError, TypeError):
            return Holder(**json.loads(self.path.read_text()))
        return Holder(what="another process" if self.shared else "another process, or runs of single months")


class DatabaseLock:
    """A session-level advisory lock on a Postgres database, held by a connection of its own."""

    def __init__(self, conninfo: str, key: int = ADVISORY_KEY, shared: bool = False) -> None:
        self.conninfo = conninfo
        self.key = key
        self.shared = shared
        self._connection: Any = None

    def try_acquire(self, holder: Holder) -> bool:
        """Take the lock without waiting; False when another session holds it. Raises psycopg.Error."""
        import psycopg

        if self._connection is None:
            name = f"ads: {holder.what}, pid {holder.pid}"[:63]
            self._connection = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name=name
            )
        function = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
        row = self._connection.execute(f"SELECT {function}(%s)", (self.key,)).fetchone()  # noqa: S608 - one of two function names
        return bool(row and row[0])

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()  # ending the session releases the lock
            self._connection = None

    def holder(self) -> Holder:
        """The session holding the lock, from pg_locks and pg_stat_activity (as far as this user may see)."""
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        with contextlib.suppress(Exception):
            row = self._connection.execute(
                "SELECT a.application_name, a.backend_start, a.client_addr::text FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
                (unsigned >> 32, unsigned & 0xFFFFFFFF),
            ).fetchone()
            if row:
                name, started, address = row
                what = name.removeprefix("ads: ") if name and name.startswith("ads: ") else "another session"
                return Holder(
                    what=f"{what} on the same database",
                    host=address,
                    started=started.astimezone().replace(tzinfo=None).isoformat("T", "seconds") if started else None,
                )
        return Holder(what="another session on the same database")


class RunLock:
    """The locks one run of an ADS state holds: its lock file and, on an external database, its advisory lock.

    The file lock is taken first (`acquire`); the database's once the database has been checked
    (`lock_database`), so an unreachable one is reported by that check alone. `notify` shows a one-line
    notice to the user of the run holding it (stderr unless set).
    """

    def __init__(self, home: Path, what: str, months: Sequence[str] | None = None) -> None:
        self.home = home
        self.what = what
        self.months = sorted(set(months)) if months else None
        """The months (YYYY-MM) of a run confined to them; None for a run of the whole state."""
        self.timeout = 0.0
        self.file = FileLock(home / LOCK_FILE, shared=self.months is not None)
        self.month_files = [FileLock(home / LOCKS_FOLDER / f"month-{month}.lock") for month in self.months or ()]
        self.database: list[DatabaseLock] = []
        self.notify: Callable[[str], None] = _to_stderr

    def acquire(self, timeout: float) -> None:
        """Take the lock file (and those of its months), waiting up to `timeout` seconds (also the wait of
        `lock_database`); raises LockBusy."""
        self.timeout = timeout
        taken: list[FileLock] = []
        try:
            self._wait_for(self.file, f"the ADS state {self.home}")
            taken.append(self.file)
            for month, lock in zip(self.months or (), self.month_files, strict=True):
                self._wait_for(lock, f"the month {month} of the ADS state {self.home}")
                taken.append(lock)
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise

    def lock_database(self, conninfo: str) -> None:
        """Take the advisory lock of the database of `conninfo` as well, waiting as `acquire` did; raises
        LockBusy, or psycopg.Error when the database cannot be reached."""
        if self.database:
            return
        wanted = [(DatabaseLock(conninfo, shared=self.months is not None), "the ADS database")]
        wanted += [
            (DatabaseLock(conninfo, month_key(month)), f"the month {month} of the ADS database")
            for month in self.months or ()
        ]
        try:
            for lock, what in wanted:
                self._wait_for(lock, what)
                self.database.append(lock)
        except BaseException:
            for lock, _ in wanted:
                lock.release()
            self.database = []
            raise

    def _wait_for(self, lock: FileLock | DatabaseLock, what: str) -> None:
        me = _me(self.what)
        deadline = time.monotonic() + self.timeout
        waiting = False
        while not lock.try_acquire(me):
            holder = lock.holder()
            if time.monotonic() >= deadline:
                if self.timeout > 0:
                    raise LockBusy(
                        f"{holder.describe()} still holds {what} after {self.timeout:g} s of waiting "
                        f"({TIMEOUT_VARIABLE} sets how long to wait)"
                    )
                raise LockBusy(
                    f"{holder.describe()} holds {what}: one run at a time; wait for it to end, "
                    f"or set {TIMEOUT_VARIABLE}=SECONDS to wait for it"
                )
            if not waiting:
                self.notify(f"waiting up to {self.timeout:g} s for {holder.describe()}, which holds {what}")
                waiting = True
            time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))

    def release(self) -> None:
        for lock in reversed(self.database):
            lock.release()
        self.database = []
        for lock in reversed(self.month_files):
            lock.release()
        self.file.release()


_held: dict[Path, RunLock] = {}
"""The run locks this process holds, by ADS_HOME."""


def held_run_lock(home: Path) -> RunLock | None:
    """The run lock of `home` when this process holds it."""
    return _held.get(home.resolve())


@contextlib.contextmanager
def run_lock(
    settings: Settings,
    what: str,
    timeout: float | None = None,
    notify: Callable[[str], None] | None = None,
    months: Sequence[str] | None = None,
) -> Iterator[RunLock]:
    """Hold the run lock of `settings.home` for the block (see `RunLock`; the database's is taken apart):
    the whole state's, or, for a run confined to `months` (YYYY-MM), the state's shared and those months'.

    Re-entrant within a process. `timeout` defaults to ADS_LOCK_TIMEOUT; raises LockBusy (exit status 2).
    `notify` shows the notices, such as the one saying that it waits (default: stderr).
    """
    home = settings.home.resolve()
    if home in _held:
        yield _held[home]
        return
    lock = RunLock(home, what, months)
    if notify is not None:
        lock.notify = notify
    lock.acquire(lock_timeout() if timeout is None else timeout)
    _held[home] = lock
    try:
        yield lock
    finally:
        del _held[home]
        lock.release()


def _to_stderr(text: str) -> None:
    print(f"ads: {text}", file=sys.stderr, flush=True)
