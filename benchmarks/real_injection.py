"""Detection on REAL Berka transactions with anomalies planted by an injector independent of the generator.

Reads the real PKDD'99 files beside the repository (`../shared/data/berka/pkdd99`: the complete
relations and the first 49,102 transactions), plants labelled anomalies of every kind the design
names, writes the result as a PKDD'99 folder, runs `ads run --source` on it in a fresh ADS_HOME and
reads back the published Parquet (`{output}/transaction_scores/month=YYYY-MM/`). Prints the planted
counts, a re-derivation of every balance chain (where it breaks, by kind), then per kind and overall
the average precision and the recall within each month's top 1 % of the ensemble's `score`, of each
published detector score, and of a plain Isolation Forest on the raw columns (amount, balance,
one-hot type / operation / category) fitted on all transactions; the kinds the machine-learning part
alone (`ml`) finds at >= 0.5 top-1 % recall; whether the ensemble's overall AP is at least the plain
forest's; and the recall and precision of the published missing payments against the removed
standing-order payments. Exit status 1 when `ads run` fails or a balance chain breaks where no kind
explains it.

The injector is `ads_assets.lib.canaries.Injector`, which model selection plants its canaries with.
The partial file stops within its last day (some of that day's postings are missing, which breaks
those accounts' ledgers for real), so that day is left out; the rest of the real file's chains hold
(within 0.10: interest is rounded at times). The injector keeps every balance chain consistent
except where the kind is a broken ledger or an amount typed wrong while the balance was posted right
(`data_entry`); a planted posting continues from the posted balance its account-day closes at.
About `--per-kind` rows of each kind are planted, or `--per-kind // 6` groups for the kinds of
several postings (`burst`, `sequence_change`, `month_overspend`):

- `wrong_amount`: a posting at 10x or 100x its amount, balances carried forward;
- `data_entry`: the amount's digits transposed or a zero appended, the balance left as posted;
- `duplicate`: a payment posted a second time the same day, under a new id;
- `burst`: 5 to 8 cash withdrawals of one account on one day;
- `unusual_payee`: a payment of 2 to 5 times the account's largest earlier payment to an unseen account;
- `ledger_break`: one balance shifted by 100 to 10,000 without the rest of its chain;
- `beyond_habits`: a cash withdrawal of 4 to 10 times the account's largest earlier withdrawal;
- `missing_bill`: a standing-order payment removed (labelled by account and month);
- `wrong_price`: a recurring payment (SIPO household, POJISTNE insurance, UVER loan, or a transfer
  repeated to the same payee at the same amount, at least twice before) posted at 1.15 to 1.6 or
  0.4 to 0.85 times its usual amount, balances carried forward;
- `sequence_change`: a quiet pension account (DUCHOD credits, never more than 2 cash withdrawals in
  8 days) that withdraws every day for 5 to 8 days, each 0.5 to 1.5 times its median withdrawal
  (cash, or by card where the account used its card before); every withdrawal labelled;
- `month_overspend`: 4 to 8 extra cash withdrawals on different days of one month, each 1 to 2
  times the account's median withdrawal, the month's withdrawals at least 3 times its usual month;
  every withdrawal labelled;
- `omitted_posting`: a posting without counterparty (cash, fee or interest of 100 or more) removed
  with the later balances left as posted; the account's next posting, the first whose balance no
  longer follows, is labelled.

The first eight kinds are planted first and draw the same rows for a seed as before; the last four
avoid every account-day within a few days of another kind's (and one another's).

The published scores are read robustly: the ensemble `score`, each key of the map `detector_scores`
(`iforest`, `lof`, `lstm`, ..., `ml` for the machine-learning part, `rules` for the rules') and, in
an output without the map, the columns `iforest_score` / `lof_score` instead.

Usage::

    python benchmarks/real_injection.py [--per-kind 40] [--seed 7] [--keep DIR] [--ads-args "..."]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(REPO))

from ads_assets.lib.canaries import (  # noqa: E402
    BROKEN_LEDGER_KINDS,
    TRANS_COLUMNS,
    Injector,
    ledger_breaks,
    ledger_walk,
    unexplained_breaks,
)

__all__ = ["Injector", "ledger_breaks", "ledger_walk", "plant_all", "read_transactions", "unexplained_breaks"]


REAL = REPO.parent / "shared" / "data" / "berka" / "pkdd99"
RELATIONS = ("account", "card", "client", "disp", "district", "loan", "order")


def read_transactions(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep=";", dtype={"date": str, "bank": str, "account": str, "k_symbol": str})
    frame["day"] = pd.to_datetime(frame["date"], format="%y%m%d")
    frame["signed"] = np.where(frame["type"] == "PRIJEM", frame["amount"], -frame["amount"])
    frame["position"] = np.arange(len(frame), dtype=float)
    frame["label"] = "normal"
    return frame


def write_source(frame: pd.DataFrame, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for relation in RELATIONS:
        shutil.copyfile(REAL / f"{relation}.asc", folder / f"{relation}.asc")
    out = frame[TRANS_COLUMNS].copy()
    out["amount"] = out["amount"].map(lambda value: f"{value:.2f}")
    out["balance"] = out["balance"].map(lambda value: f"{value:.2f}")
    text = ['"' + '";"'.join(TRANS_COLUMNS) + '"']
    for record in out.itertuples(index=False):
        quoted = [str(record.trans_id), str(record.account_id), record.date]
        quoted += [f'"{record.type}"', f'"{record.operation}"' if isinstance(record.operation, str) else '""']
        quoted += [record.amount, record.balance, f'"{record.k_symbol}"' if isinstance(record.k_symbol, str) else '""']
        quoted += [f'"{record.bank}"' if isinstance(record.bank, str) and record.bank else ""]
        quoted += [f'"{record.account}"' if isinstance(record.account, str) and record.account else ""]
        text.append(";".join(quoted))
    (folder / "trans.asc").write_text("\r\n".join(text) + "\r\n", encoding="latin-1")


def plant_all(trans: pd.DataFrame, orders: pd.DataFrame, per_kind: int, seed: int) -> tuple[pd.DataFrame, Injector]:
    """The transactions with every kind planted: about `per_kind` rows (or `per_kind // 6` groups) each."""
    injector = Injector(trans, orders, seed)
    groups = max(1, per_kind // 6)
    for plant, count in (
        (injector.missing_bills, per_kind),
        (injector.wrong_amounts, per_kind),
        (injector.data_entry, per_kind),
        (injector.duplicates, per_kind),
        (injector.bursts, groups),
        (injector.unusual_payees, per_kind),
        (injector.beyond_habits, per_kind),
        (injector.ledger_breaks, per_kind),
        (injector.wrong_prices, per_kind),
        (injector.omitted_postings, per_kind),
        (injector.sequence_changes, groups),
        (injector.month_overspends, groups),
    ):
        plant(count)
    return injector.result(), injector


def check_ledger(planted: pd.DataFrame) -> tuple[str, int]:
    """Where the planted file's balance chains break, by label; and how many breaks no kind explains."""
    broken, unexplained = unexplained_breaks(planted)
    label = planted["label"]
    counts = label[broken].value_counts()
    parts = ", ".join(f"{kind} {counts.get(kind, 0)}/{int((label == kind).sum())}" for kind in BROKEN_LEDGER_KINDS)
    after = int((broken & ~unexplained & ~label.isin(BROKEN_LEDGER_KINDS)).sum())
    return (
        f"balance chains re-derived: {int(broken.sum())} postings break ({parts}, {after} right after a "
        f"shifted balance); {int(unexplained.sum())} elsewhere",
        int(unexplained.sum()),
    )


def read_scores(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The published scores (trans_id, score, is_anomaly), one column per detector score, and where those came from.

    Detector scores come from the map column `detector_scores` (map<string, double>) where the
    output has it, else from the columns `iforest_score`, `lof_score` (and `ml_score`, `rules_score`)
    of an older output. Partitions written with and without the map are read together (the missing
    column reads as null).
    """
    dataset = ds.dataset(folder, partitioning="hive")
    fragments = list(dataset.get_fragments())
    if fragments:
        schema = pa.unify_schemas([fragment.physical_schema for fragment in fragments])
        dataset = ds.dataset(folder, schema=schema, partitioning="hive")
    table = dataset.to_table()
    frame = table.select([name for name in ("trans_id", "score", "is_anomaly") if name in table.column_names])
    frame = frame.to_pandas()
    parts = pd.DataFrame(index=frame.index)
    if "detector_scores" in table.column_names:
        records = [dict(value) if value else {} for value in table.column("detector_scores").to_pylist()]
        parts = pd.DataFrame.from_records(records, index=frame.index).astype(float)
    for name in ("iforest", "lof", "lstm", "ml", "rules"):
        if f"{name}_score" in table.column_names:
            column = pd.Series(table.column(f"{name}_score").to_pandas().astype(float).to_numpy(), index=frame.index)
            parts[name] = parts[name].fillna(column) if name in parts else column
    parts = parts.loc[:, parts.notna().any()]
    first = [name for name in ("ml", "rules") if name in parts]
    parts = parts[first + sorted(set(parts.columns) - set(first))]
    fallback = [f"`{name}`" for name in table.column_names if name.endswith("_score") and name != "score"]
    origin = " and ".join(
        ["the map `detector_scores`"] * ("detector_scores" in table.column_names)
        + [f"the columns {', '.join(fallback)}"] * bool(fallback)
    )
    return frame, parts, origin or "nowhere (no detector scores published)"


def metric_table(results: dict[str, pd.DataFrame], metric: str, title: str) -> str:
    """One metric: a row per kind (overall first), a column per scorer."""
    names = list(results)
    any_result = next(iter(results.values()))
    width = max(len(kind) for kind in any_result.index) + 2
    columns = [max(9, len(name) + 2) for name in names]
    header = f"{title:<{width}}{'rows':>7}" + "".join(f"{name:>{w}}" for name, w in zip(names, columns, strict=True))
    lines = [header, "-" * len(header)]
    for kind in any_result.index:
        cells = "".join(f"{results[name].loc[kind, metric]:>{w}.3f}" for name, w in zip(names, columns, strict=True))
        lines.append(f"{kind:<{width}}{any_result.loc[kind, 'rows']:>7,}{cells}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=40, help="planted anomalies (or bursts) of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder instead of a temporary one")
    parser.add_argument(
        "--ads-args", default="", help='further arguments of `ads run`, one string split as a shell would: "--x y"'
    )
    args = parser.parse_args()
    if not REAL.exists():
        print(f"the real Berka files are not at {REAL}; nothing to measure")
        return 2
    # The metrics and the baseline of the generated-data benchmark (imported here, not at the top, so
    # that the injector can be used without the project's modules).
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    from detection import detection_metrics, raw_columns, raw_isolation_forest

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-real-"))
    trans = read_transactions(REAL / "trans_partial.asc")
    trans = trans.loc[trans["day"] < trans["day"].max()].reset_index(drop=True)
    orders = pd.read_csv(REAL / "order.asc", sep=";", dtype={"account_to": str, "bank_to": str})
    planted, injector = plant_all(trans, orders, args.per_kind, args.seed)
    write_source(planted, work / "source")
    planted[["trans_id", "account_id", "day", "label"]].to_csv(work / "labels.csv", index=False)
    counts = planted["label"].value_counts().drop("normal", errors="ignore").sort_index()
    print(
        f"{len(planted):,} real transactions with {int(counts.sum())} planted rows and "
        f"{len(injector.missing)} removed standing-order payments (seed {args.seed})",
        flush=True,
    )
    print("planted: " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    ledger, unexplained = check_ledger(planted)
    print(ledger, flush=True)

    environment = {**os.environ, "ADS_HOME": str(work / "home"), "GX_ANALYTICS_ENABLED": "false"}
    environment.pop("DAGSTER_HOME", None)
    environment.pop("ADS_MONTHS", None)
    started = time.perf_counter()
    command = [sys.executable, "-m", "ads_assets.cli", "run", "--source", str(work / "source")]
    command += ["--output", str(work / "out"), *shlex.split(args.ads_args)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=REPO)  # noqa: S603 - runs this interpreter's ads CLI with the benchmark's own arguments, no shell
    print(f"ads run: exit {result.returncode} in {time.perf_counter() - started:.0f} s")
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    scores_path = work / "out" / "transaction_scores"
    if not scores_path.exists():
        print(f"no published scores at {scores_path}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 1

    published, parts, origin = read_scores(scores_path)
    detectors = list(parts.columns)
    parts = parts.add_prefix("detector ").assign(trans_id=published["trans_id"].to_numpy())
    scored = planted.merge(published, on="trans_id", how="left").merge(parts, on="trans_id", how="left")
    unscored = int(scored["score"].isna().sum())
    kinds = scored["label"].to_numpy(dtype=object)
    months = scored["day"].dt.strftime("%Y-%m").to_numpy()
    raw = scored.rename(
        columns={"balance": "balance_after", "type": "transaction_type", "k_symbol": "category"}
    ).assign(amount=scored["amount"].astype(float))
    baseline = -raw_isolation_forest(raw, random_state=0).score_samples(raw_columns(raw))

    def lowest_filled(values: pd.Series) -> np.ndarray:
        """Scores with the unscored rows ranked last."""
        floor = values.min() if values.notna().any() else 0.0
        return values.fillna(floor).to_numpy(dtype=float)

    scorers = {"ensemble": lowest_filled(scored["score"])}
    scorers.update({name: lowest_filled(scored[f"detector {name}"]) for name in detectors})
    scorers["raw IF"] = baseline
    results = {name: detection_metrics(values, kinds, months) for name, values in scorers.items()}

    print(f"\n{unscored} transactions without a score; {int(scored['is_anomaly'].fillna(False).sum()):,} flagged")
    print(
        f"scorers: the ensemble's `score`; {', '.join(detectors) or 'no detector'} from {origin}; raw IF, a plain "
        "Isolation Forest on the raw columns (amount, balance, one-hot type / operation / category)"
    )
    print()
    print(metric_table(results, "ap", "average precision"))
    print()
    print(metric_table(results, "recall_top1", "recall in top 1 %"))
    print()
    if "ml" in results:
        recall = results["ml"]["recall_top1"].drop(index="overall")
        found = [kind for kind, value in recall.items() if value >= 0.5]
        print(f"the ML part alone (ml) finds at >= 0.5 top-1 % recall: {', '.join(found) or 'no kind'}")
    else:
        print("the ML part alone (ml): not in this output (no `ml` key in detector_scores)")
    ours, plain = results["ensemble"].loc["overall", "ap"], results["raw IF"].loc["overall", "ap"]
    print(
        f"ensemble overall AP {ours:.3f} {'>=' if ours >= plain else '<'} plain raw-column forest {plain:.3f}: "
        f"{'at least' if ours >= plain else 'below'} the plain forest"
    )

    missing_path = work / "out" / "missing_payments"
    found = (
        ds.dataset(missing_path, partitioning="hive").to_table().to_pandas()
        if missing_path.exists()
        else pd.DataFrame()
    )
    reported = {
        (int(a), f"{pd.Timestamp(m):%Y-%m}")
        for a, m in zip(found.get("account_id", []), found.get("month", []), strict=True)
    }
    expected = set(injector.missing)
    hits = len(expected & reported)
    print(
        f"\nmissing payments: {len(expected)} removed, {len(reported)} reported account-months, "
        f"recall {hits / max(1, len(expected)):.3f}, precision {hits / max(1, len(reported)):.3f}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result.returncode == 0 and unexplained == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
