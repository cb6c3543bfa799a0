"""A backfill of the 72 months of the default data set (target: ≤ 5 minutes on 2 cores).

Runs `ads backfill --from 1993-01 --to 1998-12` in a fresh `ADS_HOME` (a temporary folder unless `--home` names
one), after `ads generate` has written the default data set there (not timed), and prints the backfill's wall time,
its peak memory (the largest resident set of one of its processes, from `getrusage` of the children) and the stage
table the run summary ends with.

Usage::

    python benchmarks/backfill.py [--home DIR] [--from 1993-01 --to 1998-12]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--from", dest="first", default="1993-01")
    parser.add_argument("--to", dest="last", default="1998-12")
    args = parser.parse_args(argv)

    home = (args.home or Path(tempfile.mkdtemp(prefix="ads-backfill-"))).resolve()
    environment = {**os.environ, "ADS_HOME": str(home), "ADS_OUTPUT": str(home / "output")}
    environment.pop("DAGSTER_HOME", None)
    source = home / "bank"
    if not source.exists():
        generate = [sys.executable, "-m", "ads_assets.cli", "generate", "--out", str(source)]
        subprocess.run(generate, env=environment, check=True)  # noqa: S603 - this interpreter running ADS's own CLI
    command = [sys.executable, "-m", "ads_assets.cli", "backfill", "--from", args.first, "--to", args.last]
    command += ["--source", str(source)]
    started = time.perf_counter()
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)  # noqa: S603 - ADS's own CLI
    seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(finished.stdout[-4000:])
    if finished.returncode:
        print(finished.stderr[-2000:], file=sys.stderr)
    verdict = "met" if seconds <= TARGET_SECONDS and finished.returncode == 0 else "NOT met"
    print(
        f"backfill {args.first}..{args.last}: exit {finished.returncode}, {seconds:.0f} s wall "
        f"(target ≤ {TARGET_SECONDS} s: {verdict}), peak RSS {peak_gib:.2f} GiB, {os.cpu_count()} cores; home {home}"
    )
    return finished.returncode


if __name__ == "__main__":
    sys.exit(main())
