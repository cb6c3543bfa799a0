"""Benchmark of the LSTM next-transaction detector: fit time, scoring throughput and AP per anomaly kind.

Generates the default data set (`GeneratorConfig()`: 4,500 accounts, 1993-01..1998-12) with labelled
anomalies (`--anomaly-rate`, a seed never used for tuning), builds the dbt marts in a throw-away
embedded Postgres (`detection.build_marts`) and reads `marts.fct_transaction_features`. Then:

- fits `LstmDetector` on all rows (target: at most 180 s);
- scores the last 12 months in one `raw_score` call with the previous `lookback_days` (60) days as
  history (target: at least 100,000 rows per second);
- prints, for the scored months, the average precision of the LSTM's raw score per labelled kind
  (positives: the kind's rows; negatives: unlabelled rows) and overall, the recall within each
  month's top 1 %, and the parts `explain` names for the labelled rows.

Prints the date and the machine, and met / MISSED per target; exit status 1 when a target is missed.

Usage::

    python benchmarks/lstm.py [--accounts 4500] [--seed 20261126] [--anomaly-rate 0.005] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from detection import build_marts, detection_metrics  # noqa: E402

from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset  # noqa: E402
from ads_assets.lib.db import connect  # noqa: E402
from ads_assets.lib.detection.lstm import LstmDetector  # noqa: E402
from ads_assets.lib.tables import read_query  # noqa: E402

TARGETS = {"fit_seconds": 180.0, "rows_per_second": 100_000}
SCORED_MONTHS = 12


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=GeneratorConfig.accounts)
    parser.add_argument("--seed", type=int, default=20261126, help="generator seed (never used for tuning)")
    parser.add_argument("--anomaly-rate", type=float, default=0.005)
    parser.add_argument("--keep", type=Path, help="work in (and keep) this folder instead of a temporary one")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-lstm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    print(
        f"{date.today().isoformat()}; os.cpu_count() = {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} "
        f"at start (Python {sys.version.split()[0]})",
        flush=True,
    )
    config = GeneratorConfig(accounts=args.accounts, seed=args.seed, anomaly_rate=args.anomaly_rate)
    data = generate(config)
    write_dataset(data, work / "source", "asc")
    labels = data.labels
    print(f"generated {len(data.relations['trans']):,} transactions, {len(labels):,} labels (seed {args.seed})")
    target = build_marts(work / "source", work)
    with connect(target) as connection:
        features = read_query(connection, "SELECT * FROM marts.fct_transaction_features")
    features = features.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True)
    print(f"loaded and built the marts in {time.perf_counter() - started:.0f} s: {len(features):,} rows", flush=True)

    detector = LstmDetector()
    load = os.getloadavg()[0]
    fit_started, fit_cpu = time.perf_counter(), time.process_time()
    detector.fit(features)
    fit_seconds, fit_cpu = time.perf_counter() - fit_started, time.process_time() - fit_cpu
    print(
        f"fit on all {len(features):,} rows: {fit_seconds:.1f} s wall, {fit_cpu:.1f} s CPU (load average "
        f"{load:.1f} before); {detector.training_rows_:,} training rows, {detector.calibration_rows_:,} "
        f"calibration rows of held-out accounts; settings {detector.parameters()}",
        flush=True,
    )

    trans_months = pd.to_datetime(features["trans_date"]).dt.to_period("M")
    first = (trans_months.max() - (SCORED_MONTHS - 1)).to_timestamp()
    dates = pd.to_datetime(features["trans_date"])
    frame = features.loc[dates >= first].reset_index(drop=True)
    history = features.loc[(dates < first) & (dates >= first - pd.Timedelta(days=detector.lookback_days))]
    load = os.getloadavg()[0]
    score_started, score_cpu = time.perf_counter(), time.process_time()
    raw = detector.raw_score(frame, history=history)
    score_seconds, score_cpu = time.perf_counter() - score_started, time.process_time() - score_cpu
    rows_per_second = len(frame) / score_seconds
    print(
        f"raw_score of {len(frame):,} rows ({first:%Y-%m}..{trans_months.max()}) with {len(history):,} history rows "
        f"({detector.lookback_days} days): {score_seconds:.2f} s wall, {score_cpu:.2f} s CPU, "
        f"{rows_per_second:,.0f} rows/s (load average {load:.1f} before)",
        flush=True,
    )

    kind_of = dict(
        zip(labels["trans_id"].dropna().astype(int), labels.loc[labels["trans_id"].notna(), "kind"], strict=True)
    )
    kinds = frame["trans_id"].map(kind_of).fillna("normal").to_numpy(dtype=object)
    months = pd.to_datetime(frame["trans_date"]).dt.strftime("%Y-%m").to_numpy()
    table = detection_metrics(raw, kinds, months)
    print()
    print(f"LSTM raw score on the scored months ({(kinds != 'normal').sum():,} labelled rows of {len(frame):,}):")
    print(f"{'kind':<20}{'rows':>7}{'AP':>8}{'top-1%':>9}")
    for kind, row in table.iterrows():
        print(f"{kind:<20}{int(row['rows']):>7,}{row['ap']:>8.3f}{row['recall_top1']:>9.3f}")

    labelled = np.flatnonzero(kinds != "normal")
    explain_started = time.perf_counter()
    context = pd.concat([history, frame.drop(index=labelled)])
    reasons = detector.explain(frame.iloc[labelled], history=context)
    explain_seconds = time.perf_counter() - explain_started
    named = pd.crosstab(pd.Series(kinds[labelled], name="kind"), pd.Series([r["part"] for r in reasons], name="part"))
    print()
    print(
        f"explain for the {len(labelled):,} labelled rows, the other rows as context ({explain_seconds:.1f} s): "
        "the part named, per kind"
    )
    print(named.to_string())
    print()
    print("example reasons (the most surprising labelled row of each kind):")
    for kind in table.index.drop("overall"):
        rows = np.flatnonzero(kinds[labelled] == kind)
        best = rows[np.argmax(raw[labelled][rows])]
        print(f"  [{kind}] score {reasons[best]['score']:.4f}: {reasons[best]['features'][0]['text']}")
    print(f"total: {time.perf_counter() - started:.0f} s")

    checks = {
        f"fit on all rows <= {TARGETS['fit_seconds']:.0f} s ({fit_seconds:.1f} s)": fit_seconds
        <= TARGETS["fit_seconds"],
        f"scoring >= {TARGETS['rows_per_second']:,} rows/s ({rows_per_second:,.0f})": rows_per_second
        >= TARGETS["rows_per_second"],
    }
    print()
    for name, passed in checks.items():
        print(f"{'PASS  ' if passed else 'MISSED'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
