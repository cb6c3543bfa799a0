"""Benchmark of the supervised detector on a retail bank whose analysts confirm frauds a week late.

Generates the retail shape (a compromised merchant, compromised customers, large amounts; see
`lib/berka/generator/retail.py`) with a seed never used for tuning, builds the marts in a throw-away
embedded Postgres (`benchmarks/detection.py`), and evaluates `weeks` whole weeks (Monday to Sunday),
`every` weeks apart up to the data's last, each on its own as the detection would run in it:

- labels: the generator's frauds dated more than `DELAY_DAYS` (7) before the week's first day, as
  `analyst_label` = 'confirmed' on every row the models and the history see;
- training: the rows of the `TRAINING_DAYS` before the week; the unsupervised detectors leave out the
  labelled rows and the rule hits (as the assets do), the supervised one learns from them all;
- scoring: the week's rows, with the rows of the lookback before it (and their labels) as history.

Prints the average precision over the evaluated weeks' rows (frauds of every kind against the rest),
per kind and per week, of: the supervised detector alone, the default unsupervised ensemble, a plain
Isolation Forest on the raw columns, and the default ensemble with the supervised detector added
(weight `SUPERVISED_WEIGHT`). Target: the supervised detector's AP >= 0.5. Exit status 1 when missed.

Usage::

    python benchmarks/labelled_retail.py [--accounts 600] [--seed 20261202] [--start 1997-01 --end 1997-12]
                                         [--weeks 4] [--every 4] [--supervised-weight 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ads_assets.defs.detection.assets import DetectionConfig  # noqa: E402
from ads_assets.lib.detection.base import Detector  # noqa: E402
from ads_assets.lib.detection.ensemble import EnsembleDetector  # noqa: E402
from ads_assets.lib.detection.supervised import CONFIRMED, DELAY_DAYS, LABEL_COLUMN, SupervisedDetector  # noqa: E402
from benchmarks.detection import (  # noqa: E402
    detection_metrics,
    generated_features,
    machine,
    metrics_table,
    raw_columns,
    raw_isolation_forest,
)

TARGET_AP = 0.5
SUPERVISED_WEIGHT = 1.0
"""The supervised detector's weight beside the default ensemble's (0.4, 0.4, 0.2)."""
TRAINING_DAYS = 365
SEED = 20261202
"""Never used for tuning."""
ACCOUNTS = 600
START, END = "1997-01", "1997-12"
SCORERS = ("supervised", "ensemble", "raw IF", "ens+sup")
"""The supervised detector alone, the default ensemble, the raw-column forest, the ensemble with it added."""


class AlreadyFitted(Detector):
    """A fitted detector whose `fit` keeps the fit it has: an ensemble of detectors fitted on different rows."""

    def __init__(self, detector: Detector) -> None:
        super().__init__(detector.random_state)
        self.detector = detector
        self.name = detector.name  # type: ignore[misc]
        self.lookback_days = detector.lookback_days  # type: ignore[misc]
        self.calibrator_ = detector.calibrator()

    def fit(self, frame: pd.DataFrame) -> Self:
        return self

    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        return self.detector.raw_score(frame, history)

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        return self.detector.explain(frame, top, history)


def evaluation_weeks(days: pd.Series, count: int, every: int) -> list[pd.Timestamp]:
    """The first days (Mondays) of `count` whole weeks of `days`, `every` weeks apart up to the last one, earliest first."""
    last = pd.Timestamp(days.max()).normalize()
    last_monday = last - pd.Timedelta(days=(last.day_of_week + 1) % 7 + 6)
    return [last_monday - pd.Timedelta(weeks=back * every) for back in range(count - 1, -1, -1)]


def labelled_as_of(features: pd.DataFrame, fraud: np.ndarray, week: pd.Timestamp) -> pd.DataFrame:
    """`features` with `analyst_label` 'confirmed' on the frauds dated more than DELAY_DAYS before `week`."""
    known = fraud & (pd.to_datetime(features["trans_date"]) < week - pd.Timedelta(days=DELAY_DAYS)).to_numpy()
    return features.assign(**{LABEL_COLUMN: np.where(known, CONFIRMED, None)})


def score_week(
    features: pd.DataFrame,
    fraud: np.ndarray,
    week: pd.Timestamp,
    detectors: Mapping[str, float],
    supervised_weight: float,
    random_state: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The week's rows (positions in `features`) and each scorer's scores of them."""
    labelled = labelled_as_of(features, fraud, week)
    days = pd.to_datetime(labelled["trans_date"])
    in_week = ((days >= week) & (days < week + pd.Timedelta(days=7))).to_numpy()
    train = labelled.loc[((days >= week - pd.Timedelta(days=TRAINING_DAYS)) & (days < week)).to_numpy()]
    test = labelled.loc[in_week].reset_index(drop=True)
    confirmed = train.loc[train[LABEL_COLUMN] == CONFIRMED, "trans_id"].astype(int).tolist()

    config = DetectionConfig()
    ensemble = EnsembleDetector(
        detectors=dict(detectors),
        threshold=config.threshold,
        alert_budget=config.alert_budget,
        random_state=random_state,
    ).fit(train, confirmed=confirmed)
    supervised = SupervisedDetector(random_state=random_state).fit(train)
    combined = EnsembleDetector(
        detectors=[AlreadyFitted(detector) for detector in (*ensemble.detectors, supervised)],
        weights={**ensemble.weights, supervised.name: supervised_weight},
        threshold=config.threshold,
        alert_budget=config.alert_budget,
        random_state=random_state,
    ).fit(train, confirmed=confirmed)

    lookback = max(ensemble.lookback_days, supervised.lookback_days)
    history = labelled.loc[((days >= week - pd.Timedelta(days=lookback)) & (days < week)).to_numpy()]
    history = history.reset_index(drop=True)
    scores = {
        "supervised": supervised.evidence(test, history),
        "ensemble": ensemble.score(test, history),
        "raw IF": -raw_isolation_forest(train, random_state).score_samples(raw_columns(test)),
        "ens+sup": combined.score(test, history),
    }
    print(
        f"  week {week:%Y-%m-%d}: {len(test):,} rows, {int(fraud[in_week].sum())} frauds, "
        f"{len(confirmed)} labels to learn from ({supervised.confirmed_count_} settled)",
        flush=True,
    )
    return np.flatnonzero(in_week), scores


def labelled_retail_result(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    weeks: int = 4,
    every: int = 4,
    detectors: Mapping[str, float] | None = None,
    supervised_weight: float = SUPERVISED_WEIGHT,
    random_state: int = 0,
) -> dict[str, Any]:
    """AP of each scorer over `weeks` weeks, `every` weeks apart up to the last of a labelled bank's feature table.

    Pooled over the weeks' rows, per kind and per week.

    `features`: `marts.fct_transaction_features`; `labels`: the generator's (trans_id, kind). Returns
    {"weeks", "rows", "frauds", "ap" {scorer: AP}, "ap_by_kind" {scorer: {kind: AP}},
    "ap_by_week" {scorer: [AP per week]}, "recall_top1" {scorer: share of frauds in each week's top 1 %},
    "seconds"}.
    """
    started = time.perf_counter()
    features = features.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True)
    labelled = labels.loc[labels["trans_id"].notna()]
    kind_of = dict(zip(labelled["trans_id"].astype(int), labelled["kind"].astype(str), strict=True))
    kinds = features["trans_id"].astype(int).map(kind_of).fillna("normal").to_numpy(dtype=object)
    fraud = kinds != "normal"
    starts = evaluation_weeks(pd.to_datetime(features["trans_date"]), weeks, every)
    rows: list[np.ndarray] = []
    by_scorer: dict[str, list[np.ndarray]] = {name: [] for name in SCORERS}
    for week in starts:
        positions, scores = score_week(
            features, fraud, week, detectors or DetectionConfig().detectors, supervised_weight, random_state
        )
        rows.append(positions)
        for name in SCORERS:
            by_scorer[name].append(scores[name])
    positions = np.concatenate(rows)
    week_of = np.concatenate([np.full(len(part), f"{week:%Y-%m-%d}") for part, week in zip(rows, starts, strict=True)])
    metrics = {
        name: detection_metrics(np.concatenate(parts), kinds[positions], week_of) for name, parts in by_scorer.items()
    }
    return {
        "weeks": [f"{week:%Y-%m-%d}" for week in starts],
        "rows": int(len(positions)),
        "frauds": int(fraud[positions].sum()),
        "ap": {name: float(table.loc["overall", "ap"]) for name, table in metrics.items()},
        "ap_by_kind": {name: table["ap"].drop("overall").to_dict() for name, table in metrics.items()},
        "ap_by_week": {
            name: [
                float(average_precision_score(fraud[part], values)) if fraud[part].any() else float("nan")
                for part, values in zip(rows, parts, strict=True)
            ]
            for name, parts in by_scorer.items()
        },
        "recall_top1": {name: float(table.loc["overall", "recall_top1"]) for name, table in metrics.items()},
        "metrics": metrics,
        "seconds": time.perf_counter() - started,
    }


def retail_bank(accounts: int, seed: int, start: str, end: str, anomaly_rate: float, work: Path, keep: bool):
    """The generated retail bank's feature table and labels (cached in `work` when `keep`)."""
    options = argparse.Namespace(
        shape="retail", accounts=accounts, seed=seed, anomaly_rate=anomaly_rate, start=start, end=end, keep=keep
    )
    features, _, labels = generated_features(options, work)
    return features, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed (never used for tuning)")
    parser.add_argument("--start", default=START, help="first generated month, YYYY-MM")
    parser.add_argument("--end", default=END, help="last generated month, YYYY-MM")
    parser.add_argument("--anomaly-rate", type=float, default=0.005)
    parser.add_argument("--weeks", type=int, default=4, help="whole weeks evaluated, up to the data's last")
    parser.add_argument("--every", type=int, default=4, help="weeks between two evaluated weeks")
    parser.add_argument("--supervised-weight", type=float, default=SUPERVISED_WEIGHT)
    parser.add_argument("--keep", type=Path, help="work in (and keep) this folder instead of a temporary one")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-labelled-retail-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    print(f"{date.today().isoformat()}; {machine()}; retail shape, {args.accounts} accounts, seed {args.seed}")
    features, labels = retail_bank(
        args.accounts, args.seed, args.start, args.end, args.anomaly_rate, work, args.keep is not None
    )
    print(f"features ready in {time.perf_counter() - started:.0f} s: {len(features):,} rows", flush=True)
    result = labelled_retail_result(features, labels, args.weeks, args.every, supervised_weight=args.supervised_weight)
    print()
    print(
        f"evaluated weeks {', '.join(result['weeks'])}: {result['rows']:,} rows, {result['frauds']} frauds; "
        f"labels: frauds dated more than {DELAY_DAYS} days before each week"
    )
    print()
    print("average precision over the evaluated weeks")
    print(metrics_table(result["metrics"], "ap"))
    print()
    print("recall in each week's top 1 %")
    print(metrics_table(result["metrics"], "recall_top1"))
    print()
    print("average precision per week")
    for name, values in result["ap_by_week"].items():
        print(f"  {name:<22}" + "".join(f"{value:>8.3f}" for value in values))
    print(f"\nscoring the weeks: {result['seconds']:.0f} s; total {time.perf_counter() - started:.0f} s")
    met = result["ap"]["supervised"] >= TARGET_AP
    print(f"\n{'met   ' if met else 'MISSED'} supervised detector AP >= {TARGET_AP}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
