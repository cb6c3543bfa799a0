"""Benchmark of model selection: the leaderboard per anomaly kind on a generated bank of an unseen seed.

Generates a bank (`ads generate`, a seed never used for tuning, no generated anomalies unless
`--anomaly-rate`: the canaries are then the only anomalies of the validation months), runs `ads run`
on it in a fresh ADS_HOME (the default ensemble, LSTM included), reads the published leaderboard
(`{output}/model_leaderboard/month=YYYY-MM/`) and prints, per retrain month, every candidate's
average precision, recall within the top 1 % and top-1 % recall per kind (the plain raw-column
Isolation Forest is the `baseline` candidate); then, per retrain and on average, the champion's gain
in AP over the best single candidate (a detector alone or the baseline), and the seconds that
`detection/model_selection` took (its log line). Last, the labelled retail-bank result of
`benchmarks/labelled_retail.py` (`labelled_retail_result()`), or that it is missing.

Exit status 1 when `ads run` fails or a champion's AP is below the best single candidate's.

Usage::

    python benchmarks/model_selection.py [--accounts 4500] [--start 1993-01] [--end 1998-12]
                                         [--seed 20261202] [--anomaly-rate 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parents[1]
SINGLE_EXCLUDED = ("default", "equal")
LEFT_OUT = "without_"
SELECTION_LOG = re.compile(r"model selection: .*")


def is_single(candidate: str) -> bool:
    """A detector alone or the baseline (what the champion must never fall below)."""
    return candidate not in SINGLE_EXCLUDED and not candidate.startswith(LEFT_OUT)


def read_leaderboard(folder: Path) -> pd.DataFrame:
    frame = ds.dataset(folder, partitioning="hive").to_table().to_pandas()
    frame["per_kind"] = frame["per_kind"].map(json.loads)
    return frame.sort_values(["month", "rank"]).reset_index(drop=True)


def leaderboard_table(board: pd.DataFrame) -> str:
    """One retrain's leaderboard: rank, candidate, AP, top-1 % recall and per-kind top-1 % recall."""
    kinds = sorted({kind for per_kind in board["per_kind"] for kind in per_kind})
    rows = {
        f"{row.rank:>2} {row.candidate}{' *' if row.is_champion else ''}": {
            "AP": row.average_precision,
            "R@1%": row.recall_at_1pct,
            **{kind: (row.per_kind.get(kind) or {}).get("recall_at_1pct") for kind in kinds},
        }
        for row in board.itertuples(index=False)
    }
    table = pd.DataFrame.from_dict(rows, orient="index").astype(float)
    positives = {kind: int(next(p[kind]["positives"] for p in board["per_kind"] if kind in p)) for kind in kinds}
    header = "positives: " + ", ".join(f"{kind} {count}" for kind, count in positives.items())
    return header + "\n" + table.to_string(float_format=lambda value: f"{value:.3f}", na_rep="-")


def gains(frame: pd.DataFrame) -> pd.DataFrame:
    """Per retrain month: the champion, its AP, the best single candidate and its AP, and the gain."""
    rows = []
    for month, board in frame.groupby("month"):
        champion = board.loc[board["is_champion"]].iloc[0]
        singles = board.loc[board["candidate"].map(is_single)]
        best = singles.loc[singles["average_precision"].idxmax()]
        rows.append(
            {
                "retrain": month,
                "champion": champion["candidate"],
                "champion AP": champion["average_precision"],
                "best single": best["candidate"],
                "single AP": best["average_precision"],
                "gain": champion["average_precision"] - best["average_precision"],
            }
        )
    return pd.DataFrame(rows)


def labelled_retail(work: Path) -> str:
    """The labelled retail-bank result of `benchmarks/labelled_retail.py` at its own defaults, or that it is missing."""
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import labelled_retail as retail
    except ImportError:
        return "labelled retail-bank result: missing (benchmarks/labelled_retail.py with labelled_retail_result())"
    features, labels = retail.retail_bank(retail.ACCOUNTS, retail.SEED, retail.START, retail.END, 0.005, work, False)
    result = retail.labelled_retail_result(features, labels)
    lines = [
        f"labelled retail-bank result ({retail.ACCOUNTS} accounts, seed {retail.SEED}, weeks {', '.join(result['weeks'])}: "
        f"{result['rows']:,} rows, {result['frauds']} frauds)"
    ]
    for scorer, ap in result["ap"].items():
        recall = result.get("recall_top1", {}).get(scorer)
        lines.append(
            f"  {scorer:<12} AP {ap:.3f}" + (f"  recall in top 1 % {recall:.3f}" if recall is not None else "")
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=4500)
    parser.add_argument("--start", default="1993-01")
    parser.add_argument("--end", default="1998-12")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--anomaly-rate", type=float, default=0.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the work folder here")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-selection-"))
    environment = {**os.environ, "ADS_HOME": str(work / "home"), "GX_ANALYTICS_ENABLED": "false"}
    for variable in ("DAGSTER_HOME", "ADS_MONTHS", "ADS_SOURCE", "ADS_OUTPUT", "ADS_DATABASE_URL"):
        environment.pop(variable, None)
    ads = [sys.executable, "-m", "ads_assets.cli"]
    generate = [*ads, "generate", "--out", str(work / "bank"), "--accounts", str(args.accounts)]
    generate += ["--start", args.start, "--end", args.end, "--seed", str(args.seed)]
    generate += ["--anomaly-rate", str(args.anomaly_rate)]
    subprocess.run(generate, env=environment, check=True, capture_output=True, cwd=REPO)  # noqa: S603 - this interpreter's ads CLI, no shell
    started = time.perf_counter()
    run = [*ads, "run", "--source", str(work / "bank"), "--output", str(work / "out")]
    result = subprocess.run(run, env=environment, capture_output=True, text=True, cwd=REPO)  # noqa: S603 - this interpreter's ads CLI, no shell
    print(
        f"bank: {args.accounts:,} accounts, {args.start}..{args.end}, seed {args.seed}, "
        f"generated anomaly rate {args.anomaly_rate}; ads run: exit {result.returncode} in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        return 1
    logged = [
        match.group(0)
        for log in sorted((work / "home" / "logs").glob("run-*.log"))
        for match in SELECTION_LOG.finditer(log.read_text(errors="replace"))
    ]
    print(logged[-1] if logged else "model selection: no log line found")

    frame = read_leaderboard(work / "out" / "model_leaderboard")
    for month, board in frame.groupby("month"):
        validation = pd.Timestamp(board["validation_month"].iloc[0])
        print(f"\nretrain {month} (validation month {validation:%Y-%m}); * the champion")
        print(leaderboard_table(board))
    table = gains(frame)
    print("\nchampion against the best single candidate (a detector alone or the baseline):")
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(f"mean gain in AP over the best single candidate: {table['gain'].mean():+.3f}")
    print(f"\n{labelled_retail(work / 'retail')}", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if (table["gain"] >= -1e-12).all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
