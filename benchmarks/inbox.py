"""The transactions inbox: a 10,000-row batch file from drop to scored rows and alerts (target: ≤ 30 s of processing).

Runs on an `ADS_HOME` where `ads run` has already run on the default data set (so models are recorded):
writes a PKDD'99 batch file of `--rows` new transactions copied from the last month's postings of the source
(new trans_ids; the same accounts, days and amounts), runs the `inbox_batch` job on it in process (what the
`transactions_inbox` sensor starts under `ads dev`), and prints the job's own counts and wall time, the stages
inside it, and where the file went. The sensor's interval (15 s) comes on top under `ads dev`.

With `--via s3` the file goes through the S3 inbox instead, on a moto server on loopback: it is uploaded under
`ADS_INBOX_S3`, the `transactions_s3_inbox` sensor is evaluated (it downloads the object into the inbox's
staging folder), the job scores the staged file and settles the object to `processed/`; the time printed then
runs from the sensor's evaluation to the settled object.

Usage::

    ADS_HOME=/path/to/home python benchmarks/inbox.py [--rows 10000] [--via file|s3]
"""

from __future__ import annotations

import argparse
import os
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


def through_s3(path: Path) -> tuple[Path, float]:
    """Upload `path` to a bucket of a moto server on loopback set as ADS_INBOX_S3, then evaluate the S3 inbox
    sensor; returns the staged file it downloaded and the time the evaluation started."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        {
            "ADS_S3_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "benchmark",
            "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_REGION": "us-east-1",
            "ADS_INBOX_S3": "s3://ads-inbox/batches",
            "ADS_INBOX": str(path.parent / "inbox"),
        }
    )
    client = boto3.client("s3", endpoint_url=os.environ["ADS_S3_ENDPOINT_URL"], region_name="us-east-1")
    client.create_bucket(Bucket="ads-inbox")
    client.upload_file(str(path), "ads-inbox", f"batches/{path.name}")
    from ads_assets.defs.automation.s3_inbox import transactions_s3_inbox

    started = time.perf_counter()
    result = transactions_s3_inbox(dg.build_sensor_context())
    (request,) = result.run_requests
    print(f"S3 sensor: staged the object in {time.perf_counter() - started:.1f} s")
    return Path(request.run_config["ops"]["score_inbox_batch"]["config"]["path"]), started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--via", choices=("file", "s3"), default="file")
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
    if args.via == "s3":
        path, started = through_s3(path)
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
    if args.via == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=os.environ["ADS_S3_ENDPOINT_URL"], region_name="us-east-1")
        keys = [item["Key"] for item in client.list_objects_v2(Bucket="ads-inbox").get("Contents", [])]
        print(f"objects now in s3://ads-inbox: {keys}")
    del output
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
