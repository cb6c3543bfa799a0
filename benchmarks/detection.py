"""Benchmark of anomaly detection: generalization, not tuning, on generated banks of two shapes.

Generates a bank with labelled anomalies (a seed never used for tuning): the Berka shape (`--shape
berka`: wrong amounts, duplicate postings, large new payees, bursts, ledger breaks, missing bills) or
a retail bank whose customers make tens of small payments a month to many merchants (`--shape
retail`: a compromised merchant, a compromised customer, large amounts). Loads it into a throw-away
embedded Postgres, builds the dbt marts, then trains and scores month by month as the detection
assets do (`training.training_windows`, history for sequence detectors). Prints, per kind and
overall, side by side from one run:

- average precision and recall within each month's top 1 % of: the ensemble, the ML part alone,
  the rules alone, each ML detector alone, and a plain Isolation Forest on the raw columns (amount,
  balance, one-hot type / operation / category) trained on the same windows;
- leave one kind out: for each labelled kind, the rules written for it are switched off, the
  models refitted, and the ML part's top-1 % recall on that kind reported (the ML must find what
  no rule names);
- the missing-payment recall and precision (Berka shape), the scoring throughput of the whole
  ensemble (rows per second, without reasons), the seconds the reasons of one month take, and the
  peak memory of this process.

Exit status 1 when a target is missed. The AP and leave-one-kind-out targets are the Berka shape's;
on the retail shape, whose frauds no rule was written for, the targets are to stay above the plain
forest, the throughput and the memory. `--keep DIR` keeps the work folder and reuses its feature
table on the next run with the same arguments.

Usage::

    python benchmarks/detection.py [--shape berka|retail] [--accounts N] [--seed 20261126]
                                   [--score-from 1998-01] [--retrain-every N] [--keep DIR]
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
from ads_assets.lib.detection.ensemble import EnsembleDetector  # noqa: E402
from ads_assets.lib.detection.rules import RuleSet, default_rules  # noqa: E402
from ads_assets.lib.detection.training import TrainingWindow, training_frame, training_windows  # noqa: E402
from ads_assets.lib.ingest import load_relation  # noqa: E402
from ads_assets.lib.tables import read_query  # noqa: E402

DBT_PROJECT = REPO / "dbt_project"
TARGETS = {
    "ap_ensemble": 0.9,
    "ap_ml": 0.5,
    "leave_one_out_recall": 0.5,
    "missing_recall": 0.9,
    "missing_precision": 0.8,
    "rows_per_second": 50_000,
    "explain_seconds": 20.0,
    "peak_gib": 4.0,
}
DETECTION = DetectionConfig()
RETAIL_ACCOUNTS = 800
RETAIL_START = "1997-01"
"""The retail shape's default size: its customers post about seven times the Berka rows each."""
RAW_NUMERIC = ["amount", "balance_after"]
RAW_CATEGORICAL = ["transaction_type", "operation", "category"]
RULES_FOR_KIND: dict[str, tuple[str, ...]] = {
    "wrong_amount": ("amount_beyond_history",),
    "duplicate_posting": ("duplicate_posting",),
    "new_payee": ("new_payee_large",),
    "burst": ("burst",),
    "ledger_break": ("ledger_break",),
    "compromised_merchant": (),
    "compromised_customer": ("new_payee_large", "burst"),
    "large_amount": ("amount_beyond_history", "new_payee_large", "overdraft"),
}
"""The rules written for each labelled kind: leave-one-kind-out switches them off."""


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
    result = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603 - fixed dbt argv, no shell
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


def metrics_table(results: dict[str, pd.DataFrame], metric: str) -> str:
    """One row per kind, one column per scorer, of `metric` ('ap' or 'recall_top1')."""
    scorers = list(results)
    kinds = list(next(iter(results.values())).index)
    width = max(len(kind) for kind in kinds) + 2
    column = max(10, *(len(name) + 1 for name in scorers))
    header = f"{'kind':<{width}}{'rows':>7}" + "".join(f"{name:>{column}}" for name in scorers)
    lines = [header, "-" * len(header)]
    first = results[scorers[0]]
    for kind in kinds:
        values = "".join(f"{results[name].loc[kind, metric]:>{column}.3f}" for name in scorers)
        lines.append(f"{kind:<{width}}{first.loc[kind, 'rows']:>7,}{values}")
    return "\n".join(lines)


@dataclass
class Bench:
    """The bank's feature table, its labels, and models fitted on demand per training window and rule set."""

    features: pd.DataFrame
    labels: pd.DataFrame
    plan: dict[date, TrainingWindow]
    models: dict[tuple[TrainingWindow, tuple[str, ...]], EnsembleDetector] = field(default_factory=dict)
    baselines: dict[TrainingWindow, Pipeline] = field(default_factory=dict)
    fit_seconds: float = 0.0

    def model(self, window: TrainingWindow, rules_off: tuple[str, ...] = ()) -> EnsembleDetector:
        key = (window, rules_off)
        if key not in self.models:
            rules = RuleSet([rule for rule in default_rules() if rule.name not in rules_off])
            started = time.perf_counter()
            self.models[key] = EnsembleDetector(
                detectors=DETECTION.detectors,
                rules=rules,
                threshold=DETECTION.threshold,
                alert_budget=DETECTION.alert_budget,
                random_state=DETECTION.random_state,
            ).fit(training_frame(self.features, window))
            self.fit_seconds += time.perf_counter() - started
        return self.models[key]

    def baseline(self, window: TrainingWindow) -> Pipeline:
        if window not in self.baselines:
            self.baselines[window] = raw_isolation_forest(training_frame(self.features, window), random_state=0)
        return self.baselines[window]


@dataclass
class Scoring:
    table: pd.DataFrame
    baseline: np.ndarray
    seconds: float
    cpu_seconds: float


def score_months(bench: Bench, test: pd.DataFrame, months: np.ndarray, rules_off: tuple[str, ...] = ()) -> Scoring:
    """Score each month with the model of its training window and the month's history, as the assets do."""
    tables, baseline = [], np.zeros(len(test))
    seconds = cpu_seconds = 0.0
    days = pd.to_datetime(bench.features["trans_date"])
    for month in sorted(set(months)):
        rows = np.flatnonzero(months == month)
        first = date.fromisoformat(f"{month}-01")
        window = bench.plan[first]
        ensemble = bench.model(window, rules_off)
        frame = test.iloc[rows].reset_index(drop=True)
        history = None
        if ensemble.lookback_days:
            start = pd.Timestamp(first) - pd.Timedelta(days=ensemble.lookback_days)
            history = bench.features.loc[(days >= start) & (days < pd.Timestamp(first))].reset_index(drop=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        tables.append(ensemble.score_frame(frame, history).table.set_index(pd.Index(rows)))
        seconds += time.perf_counter() - started
        cpu_seconds += time.process_time() - cpu_started
        if not rules_off:
            baseline[rows] = -bench.baseline(window).score_samples(raw_columns(frame))
    return Scoring(pd.concat(tables).sort_index(), baseline, seconds, cpu_seconds)


def generated_features(args: argparse.Namespace, work: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The feature table, fct_missing_payments and the labels of the generated bank (cached under --keep)."""
    key = f"{args.shape}-{args.accounts}-{args.seed}-{args.anomaly_rate}-{args.start}-{args.end}"
    cached = work / f"features-{key}.parquet"
    if cached.exists():
        return (
            pd.read_parquet(cached),
            pd.read_parquet(work / f"missing-{key}.parquet"),
            pd.read_parquet(work / f"labels-{key}.parquet"),
        )
    config = GeneratorConfig(
        accounts=args.accounts,
        seed=args.seed,
        anomaly_rate=args.anomaly_rate,
        start=args.start,
        end=args.end,
        **({"shape": args.shape} if args.shape != "berka" else {}),
    )
    data = generate(config)
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    write_dataset(data, source, "asc")
    print(f"generated {len(data.relations['trans']):,} transactions, {len(data.labels):,} labels", flush=True)
    shutil.rmtree(work / "pg", ignore_errors=True)
    target = build_marts(source, work)
    with connect(target) as connection:
        features = read_query(connection, "SELECT * FROM marts.fct_transaction_features")
        missing = read_query(connection, "SELECT * FROM marts.fct_missing_payments")
    labels = data.labels.astype({"trans_id": "Int64"})
    if args.keep:
        features.to_parquet(cached)
        missing.to_parquet(work / f"missing-{key}.parquet")
        labels.to_parquet(work / f"labels-{key}.parquet")
    return features, missing, labels


def main(argv: list[str] | None = None) -> int:
    global DETECTION
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["berka", "retail"], default="berka")
    parser.add_argument(
        "--accounts", type=int, help=f"default {GeneratorConfig.accounts}, or {RETAIL_ACCOUNTS} for the retail shape"
    )
    parser.add_argument(
        "--start", help=f"first generated month, YYYY-MM (default {GeneratorConfig.start}, retail {RETAIL_START})"
    )
    parser.add_argument("--end", default=GeneratorConfig.end, help="last generated month, YYYY-MM")
    parser.add_argument("--seed", type=int, default=20261126, help="generator seed (never used for tuning)")
    parser.add_argument("--anomaly-rate", type=float, default=0.005)
    parser.add_argument("--score-from", default="1998-01", help="first scored month, YYYY-MM")
    parser.add_argument("--retrain-every", type=int, default=DETECTION.retrain_every_months)
    parser.add_argument(
        "--detectors", help="name=weight,... of the ML detectors (default: DetectionConfig's)", default=""
    )
    parser.add_argument("--skip-leave-one-out", action="store_true", help="skip the refits of leave-one-kind-out")
    parser.add_argument("--keep", type=Path, help="work in (and keep) this folder instead of a temporary one")
    args = parser.parse_args(argv)
    retail = args.shape == "retail"
    args.accounts = args.accounts or (RETAIL_ACCOUNTS if retail else GeneratorConfig.accounts)
    args.start = args.start or (RETAIL_START if retail else GeneratorConfig.start)
    if args.detectors:
        weights = {name: float(weight) for name, weight in (item.split("=") for item in args.detectors.split(","))}
        DETECTION = DetectionConfig(detectors=weights)

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-detection-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    print(f"{date.today().isoformat()}; {machine()}; shape {args.shape}, seed {args.seed}", flush=True)
    features, missing, labels = generated_features(args, work)
    features = features.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True)
    features["trans_month"] = pd.to_datetime(features["trans_month"])
    labelled = labels.loc[labels["trans_id"].notna()]
    kind_of = dict(zip(labelled["trans_id"].astype(int), labelled["kind"].astype(str), strict=True))
    score_from = pd.Timestamp(f"{args.score_from}-01")
    test = features.loc[features["trans_month"] >= score_from].reset_index(drop=True)
    kinds = test["trans_id"].map(kind_of).fillna("normal").to_numpy(dtype=object)
    months = test["trans_month"].dt.strftime("%Y-%m").to_numpy()
    monthly_rows = features.groupby(features["trans_month"].dt.date).size().to_dict()
    plan = training_windows(
        [date.fromisoformat(f"{month}-01") for month in sorted(set(months))],
        pd.Timestamp(features["trans_date"].min()).date(),
        monthly_rows,
        args.retrain_every,
        DETECTION.training_months,
        DETECTION.min_training_weeks,
        DETECTION.min_training_rows,
    )
    bench = Bench(features, labels, plan)
    print(f"features ready in {time.perf_counter() - started:.0f} s: {len(features):,} rows", flush=True)

    load_before = os.getloadavg()[0]
    scoring = score_months(bench, test, months)
    table = scoring.table
    scorers = {"ensemble": table["score"].to_numpy(), "ml": table["ml_score"].to_numpy()}
    scorers["rules"] = table["rules_score"].to_numpy()
    for name in DETECTION.detectors:
        scorers[name] = table[f"{name}_score"].to_numpy()
    scorers["raw IF"] = scoring.baseline
    results = {name: detection_metrics(values, kinds, months) for name, values in scorers.items()}

    leave_one_out: dict[str, float] = {}
    if not args.skip_leave_one_out:
        for kind in sorted(set(kinds) - {"normal"}):
            rules_off = RULES_FOR_KIND.get(kind, ())
            if rules_off:
                without = score_months(bench, test, months, rules_off).table
                top = top_share_by_month(without["ml_score"].to_numpy(), months)
            else:
                top = top_share_by_month(scorers["ml"], months)
            leave_one_out[kind] = float(top[kinds == kind].mean())

    last_month = months.max()
    month_rows = np.flatnonzero(months == last_month)
    month_frame = test.iloc[month_rows].reset_index(drop=True)
    last_model = bench.model(plan[date.fromisoformat(f"{last_month}-01")])
    first = pd.Timestamp(f"{last_month}-01")
    days = pd.to_datetime(features["trans_date"])
    history = features.loc[(days >= first - pd.Timedelta(days=last_model.lookback_days)) & (days < first)]
    month_scored = last_model.score_frame(month_frame, history.reset_index(drop=True))
    explain_started = time.perf_counter()
    reasons = last_model.explain(month_frame, scored=month_scored, only_flagged=True, history=history)
    explain_seconds = time.perf_counter() - explain_started
    json.dumps(reasons)
    rows_per_second = len(test) / scoring.seconds
    peak = peak_rss_gib()

    windows = sorted(set(plan.values()), key=lambda window: window.start)
    print()
    print(
        f"training: {len(windows)} windows ({', '.join(window.label() for window in windows)}), rule hits excluded; "
        f"detectors {DETECTION.detectors}; {len(bench.models)} fits in {bench.fit_seconds:.0f} s"
    )
    print(
        f"scored: {len(test):,} rows, {args.score_from}..{last_month}; threshold {DETECTION.threshold:.2f}, "
        f"flagged {table['flagged'].mean():.2%}"
    )
    print()
    print("average precision")
    print(metrics_table(results, "ap"))
    print()
    print("recall in each month's top 1 %")
    print(metrics_table(results, "recall_top1"))
    if leave_one_out:
        print()
        print("leave one kind out: the ML part's top-1 % recall on a kind with the rules written for it switched off")
        for kind, recall in leave_one_out.items():
            off = ", ".join(RULES_FOR_KIND.get(kind, ())) or "no rule names it"
            print(f"  {kind:<22} {recall:.3f}   (off: {off})")
    if args.shape == "berka":
        all_months = missing_payment_metrics(missing, labels, None)
        print()
        print(
            f"missing payments (fct_missing_payments vs missing_bill): recall {all_months['recall']:.3f}, "
            f"precision {all_months['precision']:.3f} ({all_months['reported']:,} reported, "
            f"{all_months['labelled']:,} labelled)"
        )
    print()
    print(
        f"scoring throughput (whole ensemble, {', '.join(DETECTION.detectors)}, rules): {rows_per_second:,.0f} rows/s "
        f"({len(test):,} rows month by month in {scoring.seconds:.1f} s wall, without reasons; "
        f"{scoring.cpu_seconds:.1f} s CPU; load average {load_before:.1f} before scoring)"
    )
    print(f"reasons for {last_month}'s {len(reasons)} flagged rows: {explain_seconds:.1f} s")
    print(f"peak memory (this process): {peak:.2f} GiB")
    print(f"total: {time.perf_counter() - started:.0f} s")
    if reasons:
        print()
        print("example reasons:")
        for reason in reasons[:6]:
            print(f"  [{kind_of.get(reason['trans_id'], 'normal')}] {reason['sentence']}")

    overall = {name: result.loc["overall", "ap"] for name, result in results.items()}
    checks = {
        "ensemble AP >= the plain raw-column Isolation Forest's": overall["ensemble"] >= overall["raw IF"],
        f"throughput >= {TARGETS['rows_per_second']:,} rows/s": rows_per_second >= TARGETS["rows_per_second"],
        f"reasons for one month < {TARGETS['explain_seconds']:.0f} s": explain_seconds < TARGETS["explain_seconds"],
        f"peak memory < {TARGETS['peak_gib']:.0f} GiB": peak < TARGETS["peak_gib"],
    }
    if args.shape == "berka":
        checks[f"ensemble AP >= {TARGETS['ap_ensemble']}"] = overall["ensemble"] >= TARGETS["ap_ensemble"]
        checks[f"ML part AP >= {TARGETS['ap_ml']}"] = overall["ml"] >= TARGETS["ap_ml"]
    if leave_one_out and args.shape == "berka":
        checks[f"leave one kind out: ML top-1 % recall >= {TARGETS['leave_one_out_recall']} on every kind"] = (
            min(leave_one_out.values()) >= TARGETS["leave_one_out_recall"]
        )
    if args.shape == "berka":
        checks[f"missing-payment recall >= {TARGETS['missing_recall']}"] = (
            all_months["recall"] >= TARGETS["missing_recall"]
        )
        checks[f"missing-payment precision >= {TARGETS['missing_precision']}"] = (
            all_months["precision"] >= TARGETS["missing_precision"]
        )
    print()
    for name, passed in checks.items():
        print(f"{'met   ' if passed else 'MISSED'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
