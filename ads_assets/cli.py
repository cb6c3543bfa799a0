"""The `ads` command: run the pipeline, generate Berka data, open the Dagster UI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ads_assets.lib.berka.formats import SourceError


def _run(args: argparse.Namespace) -> int:
    from ads_assets.environment import fix_partition_span, prepare_environment
    from ads_assets.lib.berka.formats import detect_source
    from ads_assets.lib.ingest import month_span
    from ads_assets.pipeline import run_pipeline

    environment = prepare_environment(args.source, args.output)
    sources = detect_source(environment.source)
    fix_partition_span(environment.settings, *month_span(sources["trans"]))
    summary = run_pipeline(environment)
    print(summary.render())
    return 0 if summary.success else 1


def _generate(args: argparse.Namespace) -> int:
    from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset

    config = GeneratorConfig(
        accounts=args.accounts,
        start=args.start,
        end=args.end,
        seed=args.seed,
        anomaly_rate=args.anomaly_rate,
    )
    data = generate(config)
    paths = write_dataset(data, Path(args.out), args.format)
    for relation, frame in data.relations.items():
        print(f"{relation:<10} {len(frame):>10,} rows")
    print(f"labelled anomalies: {len(data.labels):,}")
    print(f"written to {Path(args.out).resolve()} ({len(paths)} files, {args.format} format)")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from ads_assets.environment import fix_partition_span, prepare_environment
    from ads_assets.lib.berka.formats import detect_source
    from ads_assets.lib.ingest import month_span
    from ads_assets.settings import Settings, load_state

    state = load_state(Settings.from_env().home)
    environment = prepare_environment(
        args.source or os.environ.get("ADS_SOURCE") or state.get("source"),
        args.output or os.environ.get("ADS_OUTPUT") or state.get("output"),
    )
    if "ADS_MONTHS" not in os.environ and "months" not in state:
        fix_partition_span(environment.settings, *month_span(detect_source(environment.source)["trans"]))
    return subprocess.call(["dagster", "dev", "-m", "ads_assets.definitions", *args.dagster_args])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ads", description="ADS: anomaly detection for bank settlement data.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="materialize every asset for every month, then print a summary")
    run.add_argument("--source", help="folder of .asc or fin_*.tsv files, or a database URL (default: generated)")
    run.add_argument("--output", help="folder or s3://bucket/prefix for published outputs (default ./ads_output)")
    run.set_defaults(handler=_run)

    generate = commands.add_parser("generate", help="write a calibrated Berka data set with labelled anomalies")
    generate.add_argument("--out", required=True, help="folder to write the eight relations and labels.csv to")
    generate.add_argument("--accounts", type=int, default=4500)
    generate.add_argument("--start", default="1993-01", help="first month, YYYY-MM")
    generate.add_argument("--end", default="1998-12", help="last month, YYYY-MM")
    generate.add_argument("--format", choices=["asc", "fin"], default="asc")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--anomaly-rate", type=float, default=0.0, help="share of transactions made anomalous")
    generate.set_defaults(handler=_generate)

    dev = commands.add_parser(
        "dev",
        help="open the Dagster UI on the same state as `ads run`",
        epilog="Other options are passed on to `dagster dev`, e.g. `ads dev -p 3001`.",
    )
    dev.add_argument("--source", help="as for `ads run`")
    dev.add_argument("--output", help="as for `ads run`")
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, passed_on = parser.parse_known_args(argv)
    if passed_on and args.command != "dev":
        parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
    args.dagster_args = passed_on
    try:
        return args.handler(args)
    except SourceError as error:
        print(f"ads: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
