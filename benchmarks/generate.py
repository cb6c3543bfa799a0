"""Benchmark: generate the default Berka data set and write it as PKDD'99 files (target: 30 s).

Prints the rows per relation, the seconds spent generating and writing, and the peak RSS.
Run with `python benchmarks/generate.py [--accounts N] [--format asc|fin] [--anomaly-rate R]`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset

TARGET_SECONDS = 30.0


def _peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; exit status 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=GeneratorConfig.accounts)
    parser.add_argument("--format", choices=["asc", "fin"], default="asc")
    parser.add_argument("--anomaly-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = GeneratorConfig(accounts=args.accounts, seed=args.seed, anomaly_rate=args.anomaly_rate)
    with tempfile.TemporaryDirectory(prefix="ads-generate-") as folder:
        started = time.perf_counter()
        data = generate(config)
        generated = time.perf_counter()
        paths = write_dataset(data, Path(folder), args.format)
        written = time.perf_counter()
        size = sum(path.stat().st_size for path in paths.values())
    for relation, frame in data.relations.items():
        print(f"{relation:<10} {len(frame):>12,} rows")
    print(f"{'labels':<10} {len(data.labels):>12,} rows")
    total = written - started
    print(f"generate   {generated - started:>12.2f} s")
    print(f"write      {written - generated:>12.2f} s  ({args.format}, {size / 1e6:,.1f} MB)")
    print(
        f"total      {total:>12.2f} s  (target {TARGET_SECONDS:.0f} s: {'met' if total <= TARGET_SECONDS else 'MISSED'})"
    )
    print(f"peak RSS   {_peak_rss_mib():>12,.0f} MiB")
    return 0 if total <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
