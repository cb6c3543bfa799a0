"""Benchmark of anomaly detection on a generated ledger with labelled anomalies of every kind.

Generates the Berka relations with labelled anomalies (a seed never used for tuning), loads them into
a throw-away embedded Postgres, builds the dbt marts and trains and scores month by month as the
detection assets do: an ensemble (rules + Isolation Forest + LOF) for every retrain month (every
`--retrain-every` months, by default DetectionConfig's `retrain_every_months`), fitted on the
`--train-months` months before it, scores each month from `--score-from` on up to the next retrain
month. Prints, per anomaly kind and overall:

- average precision (positives: the kind's labelled rows; negatives: unlabelled rows);
- recall within the top 1 % of each month's scores (the alert budget of one month);

beside a plain Isolation Forest on raw columns (amount, balance, one-hot type / operation /
category) trained on the same months; then how the retrain cadences of `--compare` differ in models
fitted, fit time and accuracy (a retrain month's model is the same whatever the cadence, so they
share models), the missing-payment recall and precision of `marts.fct_missing_payments` against the
`missing_bill` labels (account and month), the scoring throughput (rows per second, without SHAP),
the seconds SHAP and the reasons take for one month's flagged rows, and the peak memory of this
process. Exit status 1 when a target is missed.

Usage::

    python benchmarks/detection.py [--accounts 4500] [--seed 20261126] [--score-from 1998-01]
                                   [--retrain-every N] [--compare 1,3,6,12] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ads_assets.defs.detection.assets import DetectionConfig  # noqa: E402
from ads_assets.lib.berka.formats import detect_source  # noqa: E402
from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset  # noqa: E402
from ads_assets.lib.berka.schema import LOAD_ORDER  # noqa: E402
from ads_assets.lib.db import PostgresTarget, connect, embedded_postgres  # noqa: E402
from ads_assets.lib.detectors.ensemble import EnsembleDetector, retrain_month, training_frame  # noqa: E402
from ads_assets.lib.ingest import load_relation  # noqa: E402
from ads_assets.lib.tables import read_query  # noqa: E402

DBT_PROJECT = REPO / "dbt_project"
TARGETS = {
    "ap_overall": 0.6,
    "recall_top1_per_kind": 0.85,
    "missing_recall": 0.9,
    "missing_precision": 0.8,
    "rows_per_second": 50_000,
    "shap_seconds": 20.0,
    "peak_gib": 4.0,
}
DETECTION = DetectionConfig()
RAW_NUMERIC = ["amount", "balance_after"]
RAW_CATEGORICAL = ["transaction_type", "operation", "category"]


def peak_rss_gib() -> float:
    """Peak resident set size of this process, GiB (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 30) if sys.platform == "darwin" else peak / (1 << 20)


def build_marts(folder: Path, work: Path) -> PostgresTarget:
    """Load the generated folder into a fresh embedded Postgres and build every dbt model."""
    target = embedded_postgres(work / "pg")
    with connect(target) as connection:
        sources = detect_source(folder)
        for name in LOAD_ORDER:
            load_relation(connection, sources[name])
    env = {**os.environ, **target.dbt_profile_env()}
    command = ["dbt", "run", "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT)]
    command += ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-2000:], sep="\n")
        raise SystemExit("dbt run failed")
    return target


def top_share_by_month(scores: np.ndarray, months: np.ndarray, share: float = 0.01) -> np.ndarray:
    """True for the rows within the top `share` of their month's scores (ties broken by position)."""
    top = np.zeros(len(scores), dtype=bool)
    for month in np.unique(months):
        rows = np.flatnonzero(months == month)
        count = max(1, int(np.ceil(share * len(rows))))
        top[rows[np.argsort(-scores[rows], kind="stable")[:count]]] = True
    return top


def detection_metrics(scores: np.ndarray, kinds: np.ndarray, months: np.ndarray) -> pd.DataFrame:
    """AP and recall in each month's top 1 %, per kind (negatives: unlabelled rows) and overall."""
    labelled = kinds != "normal"
    top = top_share_by_month(scores, months)
    rows = [("overall", int(labelled.sum()), average_precision_score(labelled, scores), top[labelled].mean())]
    for kind in sorted(set(kinds) - {"normal"}):
        positive = kinds == kind
        keep = positive | ~labelled
        rows.append(
            (kind, int(positive.sum()), average_precision_score(positive[keep], scores[keep]), top[positive].mean())
        )
    return pd.DataFrame(rows, columns=["kind", "rows", "ap", "recall_top1"]).set_index("kind")


def raw_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The baseline's inputs: amount, balance and the type / operation / category codes."""
    out = frame[RAW_NUMERIC + RAW_CATEGORICAL].copy()
    out[RAW_NUMERIC] = out[RAW_NUMERIC].astype("float64")
    out[RAW_CATEGORICAL] = out[RAW_CATEGORICAL].astype("object").fillna("none")
    return out


def raw_isolation_forest(train: pd.DataFrame, random_state: int) -> Pipeline:
    """The baseline: IsolationForest on amount, balance and one-hot type/operation/category."""
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", RAW_NUMERIC),
            ("codes", OneHotEncoder(handle_unknown="ignore"), RAW_CATEGORICAL),
        ]
    )
    model = Pipeline([("columns", columns), ("forest", IsolationForest(random_state=random_state))])
    return model.fit(raw_columns(train))


def metrics_table(ours: pd.DataFrame, plain: pd.DataFrame, name: str, short: str) -> str:
    """Per kind: rows, AP and top-1 % recall of `ours` (called `name`) beside the plain IsolationForest."""
    width = max(len(kind) for kind in ours.index) + 4
    header = f"{'kind':<{width}}{'rows':>7}{'AP ' + name:>{len(name) + 5}}{'AP raw IF':>11}"
    header += f"{'top-1% ' + short:>{len(short) + 9}}{'top-1% raw':>12}"
    lines = [header, "-" * len(header)]
    for kind in ours.index:
        lines.append(
            f"{kind:<{width}}{ours.loc[kind, 'rows']:>7,}{ours.loc[kind, 'ap']:>{len(name) + 5}.3f}"
            f"{plain.loc[kind, 'ap']:>11.3f}{ours.loc[kind, 'recall_top1']:>{len(short) + 9}.3f}"
            f"{plain.loc[kind, 'recall_top1']:>12.3f}"
        )
    return "\n".join(lines)


def missing_payment_metrics(found: pd.DataFrame, labels: pd.DataFrame, since: pd.Timestamp | None) -> dict[str, float]:
    """Recall and precision of (account, month) pairs of fct_missing_payments against missing_bill labels."""
    truth = labels.loc[labels["kind"] == "missing_bill", ["account_id", "month"]].copy()
    truth_month = pd.to_datetime(truth["month"])
    found_month = pd.to_datetime(found["missing_month"]) if len(found) else pd.Series(dtype="datetime64[ns]")
    if since is not None:
        truth, truth_month = truth.loc[truth_month >= since], truth_month[truth_month >= since]
        found, found_month = found.loc[found_month >= since], found_month[found_month >= since]
    expected = set(zip(truth["account_id"].astype(int), truth_month.dt.strftime("%Y-%m"), strict=True))
    reported = set(zip(found["account_id"].astype(int), found_month.dt.strftime("%Y-%m"), strict=True))
    hits = len(expected & reported)
    return {
        "labelled": len(expected),
        "reported": len(reported),
        "recall": hits / len(expected) if expected else float("nan"),
        "precision": hits / len(reported) if reported else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=GeneratorConfig.accounts)
    parser.add_argument("--seed", type=int, default=20261126, help="generator seed (never used for tuning)")
    parser.add_argument("--anomaly-rate", type=float, default=0.005)
    parser.add_argument("--score-from", default="1998-01", help="first scored month, YYYY-MM")
    parser.add_argument("--train-months", type=int, default=DETECTION.training_months)
    parser.add_argument(
        "--retrain-every",
        type=int,
        default=DETECTION.retrain_every_months,
        help="months between retrains (default: DetectionConfig's)",
    )
    parser.add_argument(
        "--compare",
        default="1,3,6,12",
        help="retrain cadences to compare (comma-separated; their models are shared, so it costs scoring only)",
    )
    parser.add_argument("--keep", type=Path, help="work in (and keep) this folder instead of a temporary one")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-detection-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


@dataclass
class MonthlyModels:
    """The ensemble of every retrain month, fitted on demand as the detection assets fit them."""

    features: pd.DataFrame
    training_months: int
    models: dict[date, EnsembleDetector] = field(default_factory=dict)
    fit_seconds: dict[date, float] = field(default_factory=dict)
    training_rows: dict[date, int] = field(default_factory=dict)
    baselines: dict[date, Pipeline] = field(default_factory=dict)

    def model(self, month: date) -> EnsembleDetector:
        if month not in self.models:
            train = training_frame(self.features, pd.Timestamp(month), self.training_months)
            started = time.perf_counter()
            self.models[month] = EnsembleDetector(
                threshold=DETECTION.threshold, alert_budget=DETECTION.alert_budget, random_state=DETECTION.random_state
            ).fit(train)
            self.fit_seconds[month] = time.perf_counter() - started
            self.training_rows[month] = len(train)
        return self.models[month]

    def baseline(self, month: date) -> Pipeline:
        if month not in self.baselines:
            self.baselines[month] = raw_isolation_forest(
                training_frame(self.features, pd.Timestamp(month), self.training_months), random_state=0
            )
        return self.baselines[month]


@dataclass
class Scoring:
    """One cadence's scores of the scored months, in the order of the scored frame."""

    every: int
    table: pd.DataFrame
    baseline: np.ndarray
    retrain_months: list[date]
    seconds: float
    cpu_seconds: float


def score_with_cadence(monthly: MonthlyModels, test: pd.DataFrame, months: np.ndarray, every: int) -> Scoring:
    """Score each month with the model of its retrain month, as `anomaly/transaction_scores` does."""
    tables, baseline = [], np.zeros(len(test))
    seconds = cpu_seconds = 0.0
    retrains = []
    for month in sorted(set(months)):
        rows = np.flatnonzero(months == month)
        retrain = retrain_month(date.fromisoformat(f"{month}-01"), every)
        retrains.append(retrain)
        ensemble = monthly.model(retrain)
        frame = test.iloc[rows].reset_index(drop=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        tables.append(ensemble.score_frame(frame).table.set_index(pd.Index(rows)))
        seconds += time.perf_counter() - started
        cpu_seconds += time.process_time() - cpu_started
        baseline[rows] = -monthly.baseline(retrain).score_samples(raw_columns(frame))
    return Scoring(every, pd.concat(tables).sort_index(), baseline, sorted(set(retrains)), seconds, cpu_seconds)


def machine() -> str:
    """Cores, memory and load of this machine, for the record."""
    memory = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return (
        f"{os.cpu_count()} cores, {memory / (1 << 20):.0f} GiB, load average {os.getloadavg()[0]:.1f} at start "
        f"(Python {sys.version.split()[0]})"
    )


def run(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    print(f"{date.today().isoformat()}; {machine()}", flush=True)
    config = GeneratorConfig(accounts=args.accounts, seed=args.seed, anomaly_rate=args.anomaly_rate)
    data = generate(config)
    write_dataset(data, work / "source", "asc")
    labels = data.labels
    print(
        f"generated {len(data.relations['trans']):,} transactions, {len(labels):,} labels (seed {args.seed})",
        flush=True,
    )
    target = build_marts(work / "source", work)
    print(f"loaded and built the marts in {time.perf_counter() - started:.0f} s", flush=True)

    with connect(target) as connection:
        features = read_query(connection, "SELECT * FROM marts.fct_transaction_features")
        missing = read_query(connection, "SELECT * FROM marts.fct_missing_payments")
    features = features.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True)
    features["trans_month"] = pd.to_datetime(features["trans_month"])
    kind_of = dict(
        zip(labels["trans_id"].dropna().astype(int), labels.loc[labels["trans_id"].notna(), "kind"], strict=True)
    )
    score_from = pd.Timestamp(f"{args.score_from}-01")
    test = features.loc[features["trans_month"] >= score_from].reset_index(drop=True)
    kinds = test["trans_id"].map(kind_of).fillna("normal").to_numpy(dtype=object)
    months = test["trans_month"].dt.strftime("%Y-%m").to_numpy()
    monthly = MonthlyModels(features, args.train_months)

    cadences = sorted({args.retrain_every, *(int(every) for every in args.compare.split(",") if every.strip())})
    load_before = os.getloadavg()[0]
    scorings = {every: score_with_cadence(monthly, test, months, every) for every in cadences}
    main_scoring = scorings[args.retrain_every]
    table = main_scoring.table

    last_month = months.max()
    month_rows = np.flatnonzero(months == last_month)
    month_frame = test.iloc[month_rows].reset_index(drop=True)
    last_model = monthly.model(retrain_month(date.fromisoformat(f"{last_month}-01"), args.retrain_every))
    month_scored = last_model.score_frame(month_frame)
    explain_started = time.perf_counter()
    reasons = last_model.explain(month_frame, scored=month_scored, only_flagged=True)
    explain_seconds = time.perf_counter() - explain_started
    json.dumps(reasons)

    ours = detection_metrics(table["score"].to_numpy(), kinds, months)
    plain = detection_metrics(main_scoring.baseline, kinds, months)
    parts = {
        name: detection_metrics(table[column].to_numpy(), kinds, months)
        for name, column in (
            ("rules", "rules_score"),
            ("ml", "ml_score"),
            ("iforest", "iforest_score"),
            ("lof", "lof_score"),
        )
    }
    all_months = missing_payment_metrics(missing, labels, None)
    scored_months = missing_payment_metrics(missing, labels, score_from)
    rows_per_second = len(test) / main_scoring.seconds
    peak = peak_rss_gib()
    fits = [monthly.fit_seconds[month] for month in main_scoring.retrain_months]
    rows = [monthly.training_rows[month] for month in main_scoring.retrain_months]

    print()
    print(
        f"training: one model per retrain month (every {args.retrain_every} months: "
        f"{', '.join(f'{month:%Y-%m}' for month in main_scoring.retrain_months)}), each on the "
        f"{args.train_months} months before it ({min(rows):,}..{max(rows):,} rows, rule hits excluded); "
        f"{len(fits)} fits in {sum(fits):.1f} s ({np.mean(fits):.1f} s each)"
    )
    print(
        f"scored: {len(test):,} rows, {args.score_from}..{last_month}, each month by its retrain month's model; "
        f"threshold {DETECTION.threshold:.2f}, flagged {table['flagged'].mean():.2%}"
    )
    print()
    print(metrics_table(ours, plain, "ensemble", "ens"))
    print()
    print("parts of the ensemble, AP overall / top-1% recall overall:")
    for name, metrics in parts.items():
        print(f"  {name:<8} {metrics.loc['overall', 'ap']:.3f} / {metrics.loc['overall', 'recall_top1']:.3f}")
    print()
    print("retrain cadence (models are shared between cadences; fit time is that of the cadence's own models):")
    header = f"{'every':>5}{'models':>8}{'fit s':>8}{'AP overall':>12}{'min top-1%':>12}  AP per kind"
    print(header)
    print("-" * (len(header) + 50))
    for every, scoring in scorings.items():
        metrics = detection_metrics(scoring.table["score"].to_numpy(), kinds, months)
        per_kind = metrics.drop(index="overall")
        fit = sum(monthly.fit_seconds[month] for month in scoring.retrain_months)
        print(
            f"{every:>5}{len(scoring.retrain_months):>8}{fit:>8.1f}{metrics.loc['overall', 'ap']:>12.3f}"
            f"{per_kind['recall_top1'].min():>12.3f}  "
            + " ".join(f"{kind} {value:.3f}" for kind, value in per_kind["ap"].items())
        )
    print()
    print(
        f"missing payments (fct_missing_payments vs missing_bill), all months: recall {all_months['recall']:.3f}, "
        f"precision {all_months['precision']:.3f} ({all_months['reported']:,} reported, {all_months['labelled']:,} labelled)"
    )
    print(
        f"missing payments, scored months: recall {scored_months['recall']:.3f}, "
        f"precision {scored_months['precision']:.3f} ({scored_months['reported']:,} reported, "
        f"{scored_months['labelled']:,} labelled)"
    )
    print(
        f"scoring throughput: {rows_per_second:,.0f} rows/s ({len(test):,} rows month by month in "
        f"{main_scoring.seconds:.1f} s wall, without SHAP); {len(test) / main_scoring.cpu_seconds:,.0f} rows per "
        f"CPU-second ({main_scoring.cpu_seconds:.1f} s CPU on {os.cpu_count()} cores; load average "
        f"{load_before:.1f} before scoring)"
    )
    print(f"SHAP + reasons for {last_month}'s {len(reasons)} flagged rows: {explain_seconds:.1f} s")
    print(f"peak memory (this process): {peak:.2f} GiB")
    print(f"total: {time.perf_counter() - started:.0f} s")
    if reasons:
        print()
        print("example reasons:")
        for reason in reasons[:5]:
            print(f"  [{kind_of.get(reason['trans_id'], 'normal')}] {reason['sentence']}")

    kinds_ok = ours.drop(index="overall")["recall_top1"].min() >= TARGETS["recall_top1_per_kind"]
    checks = {
        f"AP overall >= {TARGETS['ap_overall']}": ours.loc["overall", "ap"] >= TARGETS["ap_overall"],
        f"top-1% recall >= {TARGETS['recall_top1_per_kind']} for every kind": kinds_ok,
        f"missing-payment recall >= {TARGETS['missing_recall']}": all_months["recall"] >= TARGETS["missing_recall"],
        f"missing-payment precision >= {TARGETS['missing_precision']}": all_months["precision"]
        >= TARGETS["missing_precision"],
        f"throughput >= {TARGETS['rows_per_second']:,} rows/s": rows_per_second >= TARGETS["rows_per_second"],
        f"SHAP for one month < {TARGETS['shap_seconds']:.0f} s": explain_seconds < TARGETS["shap_seconds"],
        f"peak memory < {TARGETS['peak_gib']:.0f} GiB": peak < TARGETS["peak_gib"],
    }
    print()
    for name, passed in checks.items():
        print(f"{'met   ' if passed else 'MISSED'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
