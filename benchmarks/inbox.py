"""The transactions inbox: a 10,000-row batch file from drop to scored rows and alerts (target: ≤ 30 s of processing).

Runs on an `ADS_HOME` where `ads run` has already run on the default data set (so models are recorded):
writes a PKDD'99 batch file of `--rows` new transactions copied from the last month's postings of the source
(new trans_ids; the same accounts, days and amounts), runs the `inbox_batch` job on it in process (what the
`transactions_inbox` sensor starts under `ads dev`), and prints the job's own counts and wall time, the stages
inside it, and where the file went. The sensor's interval (15 s) comes on top under `ads dev`.

Usage::

    ADS_HOME=/path/to/home python benchmarks/inbox.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg


def batch_file(source: Path, rows: int, folder: Path, first_id: int) -> tuple[Path, str]:
    """A batch of `rows` postings of the source's last month under new ids from `first_id`; its path and month."""
    header, *lines = (source / "trans.asc").read_text(encoding="latin-1").splitlines()
    months = sorted({line.split(";")[2][:4] for line in lines})
    last = [line.split(";") for line in lines if line.split(";")[2].startswith(months[-1])][:rows]
    batch = [";".join([str(first_id + index), *fields[1:]]) for index, fields in enumerate(last)]
    path = folder / f"batch-{len(batch)}.asc"
    path.write_text("\n".join([header, *batch]) + "\n", encoding="latin-1")
    return path, f"19{months[-1][:2]}-{months[-1][2:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args(argv)

    from ads_assets.environment import prepare_environment
    from ads_assets.lib.db import connect

    environment = prepare_environment()
    with connect(environment.postgres) as connection:
        (top,) = connection.execute("SELECT max(trans_id) FROM raw.fin_trans").fetchone()
    inbox = Path(tempfile.mkdtemp(prefix="ads-inbox-"))
    path, month = batch_file(Path(environment.source), args.rows, inbox, int(top) + 1)

    from ads_assets.definitions import defs

    job = defs.get_job_def("inbox_batch")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config={"ops": {"score_inbox_batch": {"config": {"path": str(path)}}}}, instance=instance
        )
    seconds = time.perf_counter() - started
    output = result.output_for_node("score_inbox_batch") if result.success else None
    metadata = {
        event.step_key: event.event_specific_data.metadata
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT" and event.event_specific_data is not None
    }.get("score_inbox_batch", {})
    print(
        f"batch: {args.rows:,} new transactions of {month} in {path.name}; inbox_batch {'succeeded' if result.success else 'FAILED'}"
    )
    for name in ("rows_read", "rows_accepted", "rows_quarantined", "months", "scored", "flagged", "seconds"):
        if name in metadata:
            print(f"  {name}: {metadata[name].value}")
    print(
        f"job wall time in process: {seconds:.1f} s (target: ≤ 30 s of processing): {'met' if seconds <= 30 else 'NOT met'}"
    )
    print(f"file now in: {[str(p.relative_to(inbox)) for p in inbox.rglob('*') if p.is_file()]}")
    del output
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
