"""What `ads run` shows a person: one line per stage, progress bars on a terminal, other tools' logs in a file.

`capture_output` sends everything that Dagster, dbt and Great Expectations print (Python's stdout and
stderr, the process's file descriptors 1 and 2, Python logging and warnings) to a log file under
`$ADS_HOME/logs/`, and with `verbose` to the terminal as well, with colour codes stripped. The
`Reporter` writes to the real terminal: on a terminal a live progress display (rich) with a bar per
running stage, elsewhere plain lines without escape codes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
KEEP_LOG_FILES = 20
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


class LineTap(io.TextIOBase):
    """A text stream that writes whole lines, without colour codes, to a log file, and hands each to listeners.

    With `echo`, lines also go to that stream (stripped of colour codes unless it is a terminal).
    """

    def __init__(self, log: TextIO, echo: TextIO | None = None) -> None:
        super().__init__()
        self.log = log
        self.echo = echo
        self.echo_colours = bool(echo is not None and _isatty(echo))
        self.listeners: list[Callable[[str], None]] = []
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.log.flush()
            if self.echo is not None:
                self.echo.flush()

    def close_pending(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        plain = strip_ansi(line).rstrip("\r")
        with contextlib.suppress(ValueError, OSError):
            self.log.write(plain + "\n")
            self.log.flush()
            if self.echo is not None:
                self.echo.write((line if self.echo_colours else plain) + "\n")
                self.echo.flush()
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(plain)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@dataclass
class Terminal:
    """The real standard output and error while a run's output is captured, and the captured stdout's tap."""

    out: TextIO
    err: TextIO
    log_path: Path
    stdout_tap: LineTap
    verbose: bool


def new_log_path(folder: Path, prefix: str = "run") -> Path:
    """A new log file name in `folder` (created); older logs beyond the newest KEEP_LOG_FILES are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    logs = sorted(folder.glob(f"{prefix}-*.log"), key=lambda path: path.stat().st_mtime, reverse=True)
    for old in logs[KEEP_LOG_FILES - 1 :]:
        with contextlib.suppress(OSError):
            old.unlink()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{prefix}-{stamp}.log"
    number = 1
    while path.exists():
        number += 1
        path = folder / f"{prefix}-{stamp}-{number}.log"
    return path


@contextlib.contextmanager
def capture_output(log_path: Path, *, verbose: bool = False) -> Iterator[Terminal]:
    """Send every other tool's output to `log_path` (and, with `verbose`, to the terminal too) for the block.

    Without `verbose`, file descriptors 1 and 2 point at the log file, so subprocesses and C libraries
    are captured as well; the returned Terminal writes to the real ones.
    """
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    out = os.fdopen(os.dup(saved_out), "w", encoding="utf-8", errors="replace", buffering=1)
    err = os.fdopen(os.dup(saved_err), "w", encoding="utf-8", errors="replace", buffering=1)
    if not verbose:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    previous_stdout, previous_stderr = sys.stdout, sys.stderr
    stdout_tap = LineTap(log, echo=out if verbose else None)
    stderr_tap = LineTap(log, echo=err if verbose else None)
    sys.stdout, sys.stderr = stdout_tap, stderr_tap  # type: ignore[assignment]

    root = logging.getLogger()
    handler = logging.StreamHandler(stderr_tap)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    previous_level = root.level
    previous_handlers = root.handlers[:]
    for existing in previous_handlers:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            yield Terminal(out=out, err=err, log_path=log_path, stdout_tap=stdout_tap, verbose=verbose)
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
            for existing in previous_handlers:
                root.addHandler(existing)
            root.setLevel(previous_level)
            stdout_tap.close_pending()
            stderr_tap.close_pending()
            sys.stdout, sys.stderr = previous_stdout, previous_stderr
            with contextlib.suppress(OSError):
                os.dup2(saved_out, 1)
                os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            for stream in (out, err, log):
                with contextlib.suppress(OSError, ValueError):
                    stream.close()


def seconds(value: float) -> str:
    """`4.2 s`, `3 min 07 s`."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes} min {rest:02d} s"


@dataclass
class Stage:
    """A stage of a run as the reporter shows it."""

    name: str
    started: float
    ended: float | None = None
    seconds: float = 0.0
    ok: bool = True
    detail: str = ""
    task: int | None = None
    extra: dict = field(default_factory=dict)


class Reporter:
    """Progress of a run on the real terminal: live bars there, plain `[elapsed] stage: detail` lines elsewhere."""

    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        from rich.console import Console

        self.out = out or sys.stdout
        terminal = _isatty(self.out) and os.environ.get("TERM") != "dumb"
        self.live = terminal if live is None else live
        self.console = Console(
            file=self.out,
            force_terminal=terminal,
            no_color=not terminal,
            highlight=False,
            emoji=False,
            soft_wrap=True,
            width=None if terminal else 200,
        )
        self.started = time.monotonic()
        self.stages: dict[str, Stage] = {}
        self._progress = None
        self.lines = 0

    # --- display ---------------------------------------------------------------------------------

    def _ensure_progress(self):
        if self._progress is None and self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        return self._progress

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def line(self, text: str = "") -> None:
        """Print one line above the live display (or plainly)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.lines += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # --- stages ----------------------------------------------------------------------------------

    def start(self, name: str, total: int | None = None, description: str | None = None) -> Stage:
        """Begin a stage (again, when it was begun before); a bar or spinner shows it on a terminal."""
        stage = self.stages.get(name)
        if stage is None:
            stage = self.stages[name] = Stage(name=name, started=time.monotonic())
        progress = self._ensure_progress()
        if progress is not None and stage.task is None:
            stage.task = progress.add_task(description or name, total=total)
        return stage

    def update(
        self, name: str, *, completed: int | None = None, total: int | None = None, description: str | None = None
    ) -> None:
        stage = self.stages.get(name)
        if stage is None or stage.task is None or self._progress is None:
            return
        changes: dict = {}
        if completed is not None:
            changes["completed"] = completed
        if total is not None:
            changes["total"] = total
        if description is not None:
            changes["description"] = description
        self._progress.update(stage.task, **changes)

    def finish(
        self, name: str, detail: str = "", *, ok: bool = True, seconds_spent: float | None = None, show: bool = True
    ) -> None:
        """End a stage: its bar goes, and (with `show`) one line says how it went and how long it took."""
        stage = self.stages.get(name) or self.start(name)
        stage.ended = time.monotonic()
        stage.seconds = seconds_spent if seconds_spent is not None else stage.ended - stage.started
        stage.ok = ok
        stage.detail = detail
        if stage.task is not None and self._progress is not None:
            self._progress.remove_task(stage.task)
            stage.task = None
        if show:
            mark = "ok" if ok else "FAILED"
            done = f"{mark} in {seconds(stage.seconds)}"
            self.line(f"[{seconds(self.elapsed()):>10}] {name}: {detail + ', ' if detail else ''}{done}")

    @contextlib.contextmanager
    def stage(
        self, name: str, description: str | None = None, announce: str | None = None, show: bool = True
    ) -> Iterator[Stage]:
        """A stage around a block: started, then finished with the block's `stage.detail` (FAILED on an error).

        `announce` is printed when the stage begins where no live display shows it (a long wait ahead);
        without `show` the finished stage prints no line (the caller sums several up in one).
        """
        if announce and not self.live:
            self.line(f"[{seconds(self.elapsed()):>10}] {announce}")
        stage = self.start(name, description=description)
        try:
            yield stage
        except BaseException:
            stage_task, stage.task = stage.task, None
            if stage_task is not None and self._progress is not None:
                self._progress.remove_task(stage_task)
            stage.ended = time.monotonic()
            stage.seconds = stage.ended - stage.started
            stage.ok = False
            raise
        self.finish(name, stage.detail, ok=stage.ok, show=show)
