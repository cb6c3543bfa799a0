"""Ingestion speed: the default generated data set (about 1.05 million transactions) into a fresh embedded Postgres.

Target: all eight relations in at most 30 s on 2 cores. Prints rows and seconds per relation and the total.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from ads_assets.lib.berka.formats import detect_source
from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.berka.schema import LOAD_ORDER
from ads_assets.lib.db import connect, embedded_postgres
from ads_assets.lib.ingest import load_relation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--format", choices=["asc", "fin"], default="asc")
    parser.add_argument("--accounts", type=int, default=4500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ads-bench-ingest-") as scratch:
        folder = Path(scratch) / "data"
        write_dataset(generate(GeneratorConfig(accounts=args.accounts, anomaly_rate=0.005)), folder, args.format)
        target = embedded_postgres(Path(scratch) / "pgdata")
        sources = detect_source(folder)
        total_started = time.perf_counter()
        with connect(target) as connection:
            for name in LOAD_ORDER:
                started = time.perf_counter()
                report = load_relation(connection, sources[name])
                print(
                    f"{name:<10} read {report.rows_read:>10,}  accepted {report.rows_accepted:>10,}  "
                    f"quarantined {report.rows_quarantined:>6,}  {time.perf_counter() - started:6.2f} s"
                )
        total = time.perf_counter() - total_started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        verdict = "OK" if total <= 30 else "OVER TARGET"
        print(f"total ingestion ({args.format}): {total:.2f} s (target 30 s) {verdict}; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
