"""Benchmark of the dbt feature marts on a synthetic Berka-sized ledger.

Starts a throw-away embedded Postgres, synthesises the eight raw relations directly in SQL
(~4,500 accounts over 1993-1998, about 1.1 million transactions with canonical PKDD'99 codes and
balances that chain), then times

1. a full build of `fct_transaction_features` (`dbt run --full-refresh`: every month),
2. Dagster partition runs of that asset for one month and for the month before it: the code
   location's `dbt_partitioned_models` materialized in this process, one `dbt build` of the model
   and its tests (the asset checks), the window passed as Dagster passes it (ADS_FEATURES_MIN_DATE
   / ADS_FEATURES_MAX_DATE, partial parsing kept), with what dbt re-parsed,
3. the model alone for that month, `dbt run` with the window in the environment (partial parsing
   kept) and by hand with `--vars '{"min_date": ..., "max_date": ...}'` (a new --vars value makes
   dbt re-parse the whole project),
4. a build of `fct_missing_payments`,
5. with --backfill, a Dagster single-run backfill of every month over the existing table,

and prints the seconds of each: wall clock, the nodes' time as dbt reports them, and the CPU
seconds of dbt (with Dagster, for its runs) and of the Postgres server (which a busy machine does
not inflate as it does the wall clock; autovacuum counts there too, so the raw tables and the
built feature table are vacuumed and analysed, as autovacuum would leave them, before they are
timed). Usage::

    python benchmarks/dbt_features.py [--accounts 4500] [--month 1998-06] [--backfill] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ads_assets.lib.db import PostgresTarget, connect, embedded_postgres  # noqa: E402
from ads_assets.lib.raw_schema import ensure_raw_schema  # noqa: E402

DBT_PROJECT = REPO / "dbt_project"
FIRST_MONTH, LAST_MONTH = "1993-01", "1998-12"

SYNTH_SQL = """
SELECT setseed(%(seed)s);

TRUNCATE raw.fin_trans, raw.fin_card, raw.fin_loan, raw.fin_order, raw.fin_disp, raw.fin_client,
         raw.fin_account, raw.fin_district;

INSERT INTO raw.fin_district
SELECT d, 'District ' || d,
       (ARRAY['Prague','central Bohemia','south Bohemia','west Bohemia','north Bohemia',
              'east Bohemia','south Moravia','north Moravia'])[1 + d %% 8],
       40000 + (random() * 1160000)::int,
       (random() * 150)::int, (random() * 70)::int, (random() * 20)::int, (random() * 5)::int,
       1 + (random() * 10)::int, round((30 + random() * 70)::numeric, 1),
       8000 + (random() * 4500)::int,
       CASE WHEN d = 69 THEN NULL ELSE round((0.3 + random() * 7)::numeric, 2) END,
       round((0.4 + random() * 9)::numeric, 2), 80 + (random() * 90)::int,
       CASE WHEN d = 69 THEN NULL ELSE 800 + (random() * 80000)::int END,
       800 + (random() * 90000)::int
FROM generate_series(1, 77) AS d;

INSERT INTO raw.fin_account
SELECT a, 1 + (a * 7) %% 77,
       CASE WHEN random() < 0.90 THEN 'POPLATEK MESICNE'
            WHEN random() < 0.5 THEN 'POPLATEK TYDNE' ELSE 'POPLATEK PO OBRATU' END,
       date '1993-01-01' + (random() * 1825)::int
FROM generate_series(1, %(accounts)s) AS a;

-- one owner per account, a disponent on every fifth account
INSERT INTO raw.fin_client
SELECT c, lpad(((20 + random() * 60)::int)::text, 2, '0')
          || lpad(((1 + random() * 11)::int + CASE WHEN random() < 0.5 THEN 50 ELSE 0 END)::text, 2, '0')
          || lpad(((1 + random() * 27)::int)::text, 2, '0'),
       1 + (c * 11) %% 77
FROM generate_series(1, %(accounts)s + %(accounts)s / 5) AS c;

INSERT INTO raw.fin_disp
SELECT a, a, a, 'OWNER' FROM generate_series(1, %(accounts)s) AS a
UNION ALL
SELECT %(accounts)s + k, %(accounts)s + k, 5 * k, 'DISPONENT' FROM generate_series(1, %(accounts)s / 5) AS k;

INSERT INTO raw.fin_card
SELECT row_number() OVER (ORDER BY a.account_id), a.account_id,
       CASE WHEN random() < 0.75 THEN 'classic' WHEN random() < 0.6 THEN 'junior' ELSE 'gold' END,
       a.date + 30 + (random() * 700)::int
FROM raw.fin_account AS a WHERE random() < 0.2;

INSERT INTO raw.fin_loan
SELECT row_number() OVER (ORDER BY a.account_id), a.account_id, a.date + 60 + (random() * 300)::int,
       amount, duration, round(amount / duration, 2),
       (ARRAY['A','B','C','D'])[1 + floor(random() * 4)::int]
FROM raw.fin_account AS a,
     LATERAL (SELECT (12 * (1 + (random() * 4)::int))::bigint AS duration,
                     round((5000 + random() * 400000)::numeric, 0) AS amount) AS l
WHERE random() < 0.15;

-- standing orders: household (SIPO) for most accounts, insurance for some, every loan's payment
INSERT INTO raw.fin_order
SELECT row_number() OVER (ORDER BY account_id, k_symbol NULLS LAST), account_id, bank_to, account_to, amount, k_symbol
FROM (
    SELECT account_id, (ARRAY['AB','CD','EF','GH','IJ','KL','MN','OP','QR','ST','UV','WX','YZ'])[1 + floor(random() * 13)::int] AS bank_to,
           lpad(((random() * 99999999)::bigint)::text, 8, '0') AS account_to,
           round((500 + random() * 6000)::numeric, 0) AS amount, 'SIPO' AS k_symbol
    FROM raw.fin_account WHERE random() < 0.7
    UNION ALL
    SELECT account_id, 'QR', lpad(((random() * 99999999)::bigint)::text, 8, '0'),
           round((100 + random() * 3000)::numeric, 0), 'POJISTNE'
    FROM raw.fin_account WHERE random() < 0.2
    UNION ALL
    SELECT account_id, 'ST', lpad(((random() * 99999999)::bigint)::text, 8, '0'),
           round((100 + random() * 3000)::numeric, 0), NULL
    FROM raw.fin_account WHERE random() < 0.15
    UNION ALL
    SELECT account_id, 'UV', lpad(loan_id::text, 8, '0'), payments, 'UVER' FROM raw.fin_loan
) AS o;

CREATE TEMP TABLE synth_months ON COMMIT DROP AS
SELECT a.account_id, a.date AS opened, m::date AS month_start,
       (m + interval '1 month' - interval '1 day')::date AS month_end,
       a.account_id %% 10 < 7 AS has_salary, a.account_id %% 10 = 9 AS has_pension,
       1000 + (a.account_id * 7919) %% 30000 AS salary,
       EXISTS (SELECT 1 FROM raw.fin_card AS c WHERE c.disp_id = a.account_id) AS has_card
FROM raw.fin_account AS a,
     generate_series(date_trunc('month', a.date), date '1998-12-01', interval '1 month') AS m;

CREATE TEMP TABLE synth_trans ON COMMIT DROP AS
SELECT account_id, date, type, operation, amount, k_symbol, bank, account, random() AS shuffle
FROM (
    -- the opening deposit
    SELECT account_id, date, 'PRIJEM' AS type, 'VKLAD' AS operation,
           round((300 + random() * 2000)::numeric, 0) AS amount, NULL AS k_symbol, NULL AS bank,
           NULL AS account
    FROM raw.fin_account
    UNION ALL
    -- salary from another bank, most months
    SELECT account_id, month_start + 9, 'PRIJEM', 'PREVOD Z UCTU',
           round((salary * (0.95 + random() * 0.1))::numeric, 0), NULL, 'AB',
           lpad((account_id * 31)::text, 8, '0')
    FROM synth_months WHERE has_salary AND month_start + 9 > opened AND random() < 0.95
    UNION ALL
    SELECT account_id, month_start + 14, 'PRIJEM', 'PREVOD Z UCTU', round(salary * 0.6, 0), 'DUCHOD',
           'CD', lpad((account_id * 17)::text, 8, '0')
    FROM synth_months WHERE has_pension AND month_start + 14 > opened
    UNION ALL
    -- cash deposits
    SELECT account_id, month_start + (random() * 27)::int, 'PRIJEM', 'VKLAD',
           round((200 + random() * 20000)::numeric, 0), NULL, NULL, NULL
    FROM synth_months WHERE random() < 0.7
    UNION ALL
    -- standing orders, now and then skipped
    SELECT sm.account_id, sm.month_start + 4 + (o.order_id %% 20)::int, 'VYDAJ', 'PREVOD NA UCET', o.amount,
           o.k_symbol, o.bank_to, o.account_to
    FROM synth_months AS sm JOIN raw.fin_order AS o USING (account_id)
    WHERE sm.month_start + 4 + (o.order_id %% 20)::int > sm.opened AND random() < 0.985
    UNION ALL
    -- cash withdrawals (VYDAJ and the rarer VYBER type)
    SELECT account_id, month_start + (random() * 27)::int,
           CASE WHEN random() < 0.1 THEN 'VYBER' ELSE 'VYDAJ' END, 'VYBER',
           round((100 + random() * 6000)::numeric, 0), NULL, NULL, NULL
    FROM synth_months, generate_series(1, 2) AS k WHERE random() < 0.5
    UNION ALL
    -- card withdrawals
    SELECT account_id, month_start + (random() * 27)::int, 'VYDAJ', 'VYBER KARTOU',
           round((100 + random() * 3000)::numeric, 0), NULL, NULL, NULL
    FROM synth_months, generate_series(1, 3) AS k WHERE has_card AND random() < 0.6
    UNION ALL
    -- one-off remittances to random payees
    SELECT account_id, month_start + (random() * 27)::int, 'VYDAJ', 'PREVOD NA UCET',
           round((100 + random() * 9000)::numeric, 0), NULL,
           (ARRAY['AB','CD','EF','GH','IJ','KL','MN','OP','QR','ST','UV','WX','YZ'])[1 + floor(random() * 13)::int],
           lpad(((random() * 99999999)::bigint)::text, 8, '0')
    FROM synth_months WHERE random() < 0.25
    UNION ALL
    -- month end: interest credited, statement fee
    SELECT account_id, month_end, 'PRIJEM', NULL, round((5 + random() * 200)::numeric, 1), 'UROK', NULL, NULL
    FROM synth_months WHERE month_end > opened
    UNION ALL
    SELECT account_id, month_end, 'VYDAJ', 'VYBER', 14.6, 'SLUZBY', NULL, NULL
    FROM synth_months WHERE month_end > opened AND account_id %% 10 < 6
) AS t;

INSERT INTO raw.fin_trans
SELECT row_number() OVER (ORDER BY date, shuffle), account_id, date, type, operation, amount,
       sum(CASE WHEN type = 'PRIJEM' THEN amount ELSE -amount END)
           OVER (PARTITION BY account_id ORDER BY date, amount DESC, shuffle ROWS UNBOUNDED PRECEDING),
       k_symbol, bank, account
FROM synth_trans;
"""


def synthesize(target: PostgresTarget, accounts: int = 4500, seed: float = 0.42) -> int:
    """Fill the raw schema with a synthetic ledger, vacuumed and analysed; returns the number of transactions."""
    with connect(target) as conn, psycopg.ClientCursor(conn) as cur:
        ensure_raw_schema(cur)
        cur.execute(SYNTH_SQL, {"seed": seed, "accounts": accounts})
        conn.commit()
    with connect(target, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        return int(conn.execute("SELECT count(*) FROM raw.fin_trans").fetchone()[0])


def dbt_env(target: PostgresTarget) -> dict[str, str]:
    return {**os.environ, **target.dbt_profile_env()}


def server_cpu_seconds(pgdata: Path) -> float:
    """CPU seconds the embedded server has used: the postmaster and its exited backends."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_dbt(target: PostgresTarget, work: Path, *args: str, environment: dict[str, str] | None = None) -> str:
    """Run one dbt command against `target` (with `environment` added to dbt's); returns its
    wall-clock and CPU seconds, described."""
    command = [
        "dbt",
        *args,
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    server_before = server_cpu_seconds(work / "pg")
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env={**dbt_env(target), **(environment or {})}, capture_output=True, text=True)  # noqa: S603 - fixed dbt argv, no shell
    elapsed = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    dbt_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    server_cpu = server_cpu_seconds(work / "pg") - server_before
    if result.returncode != 0:
        print(result.stdout[-5000:], result.stderr[-5000:], sep="\n")
        raise SystemExit(f"dbt {' '.join(args)} failed")
    results = json.loads((work / "target" / "run_results.json").read_text())["results"]
    node_seconds = sum(node["execution_time"] for node in results)
    return (
        f"{elapsed:.1f} s wall ({node_seconds:.1f} s in the nodes as dbt reports them; "
        f"CPU: dbt {dbt_cpu:.1f} s, postgres {server_cpu:.1f} s)"
    )


def dagster_run(target: PostgresTarget, work: Path, first_month: str, last_month: str) -> str:
    """Materialize the partitioned feature asset for the months first..last as Dagster does it.

    One run of the code location's `dbt_partitioned_models` (one `dbt build` of the model and its
    tests, which are the asset's checks) with the code location's dbt resource: a fresh target
    folder seeded with the prepared partial parse, the window in ADS_FEATURES_MIN/MAX_DATE.
    Returns the wall-clock and CPU seconds (this process, which runs Dagster, and its dbt child),
    the model's and the tests' node time as dbt reports them, and what dbt re-parsed.
    """
    import dagster as dg

    from ads_assets.defs.dbt.assets import dbt_partitioned_models
    from ads_assets.defs.dbt.project import dbt_project
    from ads_assets.defs.dbt.resource import dbt_resource
    from ads_assets.defs.resources import PostgresResource

    resources = {"dbt": dbt_resource(), "postgres": PostgresResource(pgdata=str(work / "pg"))}
    if first_month == last_month:
        partitions: dict[str, Any] = {"partition_key": f"{first_month}-01"}
    else:
        partitions = {
            "tags": {
                "dagster/asset_partition_range_start": f"{first_month}-01",
                "dagster/asset_partition_range_end": f"{last_month}-01",
            }
        }
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    logging.getLogger("dagster").setLevel(logging.WARNING)
    server_before = server_cpu_seconds(work / "pg")
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = dg.materialize([dbt_partitioned_models], resources=resources, run_config=quiet, **partitions)
    elapsed = time.perf_counter() - started
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = sum(
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        for before, after in ((own_before, own), (children_before, children))
    )
    server_cpu = server_cpu_seconds(work / "pg") - server_before
    if not result.success:
        raise SystemExit(f"Dagster run of {first_month}..{last_month} failed")
    target_root = dbt_project.project_dir / dbt_project.target_path
    (run_target,) = target_root.glob(f"dbt_partitioned_models-{result.run_id[:7]}-*")
    try:
        run_results = json.loads((run_target / "run_results.json").read_text())
        results = run_results["results"]
        log = (run_target / "dbt.log").read_text()
    finally:
        shutil.rmtree(run_target, ignore_errors=True)
    model_seconds = sum(node["execution_time"] for node in results if node["unique_id"].startswith("model."))
    tests = [node for node in results if node["unique_id"].startswith("test.")]
    test_seconds = sum(node["execution_time"] for node in tests)
    if "Unable to do partial parsing" in log:
        parsing = "full re-parse"
    else:
        changed = re.search(r"Partial parsing enabled: .*?(\d+) files changed", log)
        parsing = f"partial parse, {changed.group(1) if changed else '?'} files re-parsed"
    return (
        f"{elapsed:.1f} s wall, of which dbt's node phase {run_results['elapsed_time']:.1f} s (model "
        f"{model_seconds:.1f} s, {len(tests)} tests {test_seconds:.1f} s summed over dbt's threads); "
        f"{parsing}; CPU: dbt + Dagster {client_cpu:.1f} s, postgres {server_cpu:.1f} s"
    )


def month_window(month: str) -> dict[str, str]:
    """The vars of one month, YYYY-MM: [its first day, the next month's first day)."""
    year, number = (int(part) for part in month.split("-"))
    return {
        "min_date": f"{year:04d}-{number:02d}-01",
        "max_date": f"{year + number // 12:04d}-{number % 12 + 1:02d}-01",
    }


def previous_month(month: str) -> str:
    """The month before `month`, both YYYY-MM."""
    year, number = (int(part) for part in month.split("-"))
    return f"{year - (number == 1):04d}-{(number - 2) % 12 + 1:02d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=4500)
    parser.add_argument("--month", default="1998-06", help="month of the incremental run, YYYY-MM")
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder instead of a temporary one")
    parser.add_argument("--backfill", action="store_true", help="also time a Dagster backfill of every month")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="ads-dbt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update({"ADS_HOME": str(work / "ads_home"), "ADS_MONTHS": f"{FIRST_MONTH}:{LAST_MONTH}"})
    os.environ.pop("ADS_DATABASE_URL", None)
    try:
        target = embedded_postgres(work / "pg")
        started = time.perf_counter()
        rows = synthesize(target, args.accounts)
        print(f"synthesised {rows:,} transactions in {time.perf_counter() - started:.1f} s", flush=True)

        timing = run_dbt(target, work, "run", "--exclude", "fct_transaction_features fct_missing_payments")
        print(f"staging + intermediate views: {timing}", flush=True)
        timing = run_dbt(target, work, "run", "--select", "fct_transaction_features", "--full-refresh")
        print(f"fct_transaction_features full build: {timing}", flush=True)
        with connect(target, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE marts.fct_transaction_features")

        from ads_assets.defs.dbt.assets import dbt_project  # loads the code location: prepares the manifest
        from ads_assets.defs.dbt.project import ensure_partial_parse

        started = time.perf_counter()
        ensure_partial_parse(dbt_env(target), dbt_project)
        print(
            f"saved parse prepared for this connection (once per connection, by the first run): "
            f"{time.perf_counter() - started:.1f} s wall",
            flush=True,
        )
        for month in (args.month, previous_month(args.month)):
            timing = dagster_run(target, work, month, month)
            print(f"Dagster partition run {month} (dbt build, model + checks): {timing}", flush=True)
        window = month_window(args.month)
        environment = {f"ADS_FEATURES_{name.upper()}": value for name, value in window.items()}
        timing = run_dbt(target, work, "run", "--select", "fct_transaction_features", environment=environment)
        print(f"the model alone for {args.month}, dbt run with the window in the environment: {timing}", flush=True)
        vars_json = json.dumps(window)
        timing = run_dbt(target, work, "run", "--select", "fct_transaction_features", "--vars", vars_json)
        print(f"the same by hand, dbt run --vars '{vars_json}': {timing}", flush=True)
        timing = run_dbt(target, work, "run", "--select", "fct_missing_payments")
        print(f"fct_missing_payments build: {timing}", flush=True)
        if args.backfill:
            timing = dagster_run(target, work, FIRST_MONTH, LAST_MONTH)
            print(
                f"Dagster backfill {FIRST_MONTH}..{LAST_MONTH} in one run over the existing table: {timing}",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
