"""The `ads` command: its help, its one-line errors for each bad input, and the pipeline end to end.

The end-to-end tests share one built pipeline (the `built` fixture: one `ads run` on a small generated
bank in a fresh ADS_HOME); a second run rescores a window of it and a third fails a step on purpose, each on
a copy of it, and `ads dev` and `ads psql` open the same state. One more run publishes to S3 (moto). The runs
are made in the background while the other tests run (`tests/end_to_end.py`), and the tests that assert on
them run last.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from ads_assets.cli import build_parser, main
from ads_assets.console import LineTap, Reporter, strip_ansi
from ads_assets.defs.detection.assets import DetectionConfig
from ads_assets.environment import default_dataset, embedded_postgres_running, stop_embedded_postgres
from ads_assets.lib.berka.schema import LOAD_ORDER
from ads_assets.lib.db import connect, embedded_postgres, table_count
from ads_assets.lib.storage import OutputStore, s3_endpoint_url, s3_region
from ads_assets.lib.tables import MISSING_TABLE, SCORES_TABLE, read_query
from ads_assets.pipeline import (
    RunSummary,
    StepOutcome,
    TableCount,
    failure_message,
    lost_database,
    run_pipeline,
    stage_of,
)
from ads_assets.settings import DEFAULT_ANOMALY_RATE, DEFAULT_MONTHS, Settings, SettingsError, check_months
from tests.end_to_end import Built, Reran, Rerun, S3Run, ads, db_counts

MAX_SUMMARY_LINES = 45
REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["']https?://""", re.IGNORECASE)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, one line on stderr starting `ads: error:`, no traceback; returns the line."""
    message = result.stderr.strip()
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert message.startswith("ads: error:") and "\n" not in message, message
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in message, message
    return message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the command line ----------------------------------------------------------------------------------


def test_help_shows_defaults_and_environment_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as top:
        main(["--help"])
    assert top.value.code == 0
    text = capsys.readouterr().out
    for variable in ("ADS_HOME", "ADS_DATABASE_URL", "ADS_SOURCE", "ADS_OUTPUT", "ADS_S3_ENDPOINT_URL", "ADS_MONTHS"):
        assert variable in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fragment in (
        "env ADS_SOURCE",
        "env ADS_OUTPUT",
        "default: ./ads_output",
        "--months",
        "--retrain-every",
        f"default: {DetectionConfig().retrain_every_months}",
    ):
        assert fragment in text, fragment
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("ads ")


def test_generate_plants_the_same_anomaly_rate_as_run_by_default() -> None:
    args = build_parser().parse_args(["generate", "--out", "somewhere"])
    assert args.anomaly_rate == DEFAULT_ANOMALY_RATE == default_dataset().anomaly_rate == 0.005


def test_dev_passes_dagster_dev_options_through_unchanged() -> None:
    args, passed_on = build_parser().parse_known_args(
        ["dev", "-h", "127.0.0.1", "-p", "3001", "--source", "bank", "--log-level", "debug"]
    )
    assert args.command == "dev" and args.source == "bank"
    assert passed_on == ["-h", "127.0.0.1", "-p", "3001", "--log-level", "debug"]


def test_months_are_checked() -> None:
    assert check_months("1997-01:1997-03") == ("1997-01", "1997-03")
    assert check_months("1997-05") == ("1997-05", "1997-05")
    for bad in ("1997-13", "97-01:97-03", "1997-03:1997-01", "soon"):
        with pytest.raises(SettingsError):
            check_months(bad)


# --- output ----------------------------------------------------------------------------------------------


def test_reporter_writes_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    reporter = Reporter(out)
    with reporter.stage("ingest") as stage:
        stage.detail = "8 relations"
    reporter.start("train models", total=4)
    reporter.update("train models", completed=2)
    reporter.finish("train models", "2 models", ok=False)
    reporter.close()
    text = out.getvalue()
    assert "\x1b" not in text
    assert re.search(r"\] ingest: 8 relations, ok in \d", text)
    assert "train models: 2 models, FAILED in" in text


def test_captured_lines_lose_their_colour_codes() -> None:
    log = io.StringIO()
    tap = LineTap(log)
    seen: list[str] = []
    tap.listeners.append(seen.append)
    tap.write("1 of 2 OK created view \x1b[32mCREATE VIEW\x1b[0m\npart")
    tap.write("ial\n")
    assert log.getvalue() == "1 of 2 OK created view CREATE VIEW\npartial\n"
    assert seen == ["1 of 2 OK created view CREATE VIEW", "partial"]
    assert strip_ansi("\x1b[1;31mred\x1b[0m") == "red"


def test_steps_map_to_stages() -> None:
    assert stage_of("raw__fin_trans") == "ingest"
    assert stage_of("fin_trans_quality") == "raw checks"
    assert stage_of("fct_transaction_features_quality") == "feature checks"
    assert stage_of("dbt_partitioned_models") == "features (dbt)"
    assert stage_of("detection__anomaly_models") == "train models"
    assert stage_of("anomaly__labels") == "analyst labels"
    assert stage_of("detection__model_selection") == "model selection"
    assert stage_of("anomaly__transaction_scores") == "score and explain"
    assert stage_of("anomaly__missing_payments") == "missing payments"
    assert stage_of("quality__report") == "quality report"


def test_a_failed_step_is_summarized_in_one_line() -> None:
    cause = SimpleNamespace(
        cls_name="SourceError",
        message="ads_assets.lib.berka.formats.SourceError: /x/account.asc: first line is 'a;b'\n",
        cause=None,
    )
    wrapper = SimpleNamespace(cls_name="DagsterExecutionStepExecutionError", message="Error occurred", cause=cause)
    event = SimpleNamespace(event_specific_data=SimpleNamespace(error=wrapper))
    assert failure_message(event) == "SourceError: /x/account.asc: first line is 'a;b'"

    summary = RunSummary(
        success=False,
        run_id="r1",
        seconds=12.0,
        months=("1996-01", "1996-06"),
        tables=[TableCount("raw.fin_account", 200), TableCount("raw.fin_trans", None, "failed")],
        steps=[
            StepOutcome("raw__fin_trans", "ingest", "failed", 1.0, "CheckViolation: new row violates"),
            StepOutcome("dbt_models", "features (dbt)", "skipped"),
        ],
        stage_times=[("ingest", "0/1", 1.0)],
    )
    text = summary.render()
    assert "FAILED after 12.0 s" in text
    assert "failed step raw__fin_trans (ingest): CheckViolation: new row violates" in text
    assert "did not run (1 step): dbt_models" in text
    assert "raw.fin_account 200" in text and "raw.fin_trans (not written: failed)" in text
    assert text.splitlines()[-1].split()[:1] == ["total"]


def test_data_docs_work_offline(tmp_path: Path) -> None:
    """Every page of the Data Docs loads its styles and scripts from the site itself, never from a CDN."""
    from ads_assets.lib.quality.docs import build_data_docs
    from ads_assets.lib.quality.suites import feature_suite_spec, raw_suite_specs

    index = build_data_docs(tmp_path / "quality", [*raw_suite_specs().values(), feature_suite_spec()], [])
    assert_offline_site(index.parent)


def assert_offline_site(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not REMOTE_ASSET.search(text), page
        assert "great-expectations-web-assets" not in text, page
        for reference in re.findall(r"""(?:src|href)=["']([^"'#?]+\.(?:js|css))["']""", text):
            assert (page.parent / reference).resolve().is_file(), (page, reference)
    for stylesheet in (site / "static" / "styles").glob("*.css"):
        assert "https://" not in stylesheet.read_text(encoding="utf-8")
    assert (site / "static" / "vendor" / "js" / "jquery-3.7.1.min.js").is_file()


def test_dbt_invocation_folders_are_pruned(tmp_path: Path) -> None:
    from ads_assets.defs.dbt.project import ads_dbt_project, prune_invocation_folders

    target = tmp_path / "target"
    for number in range(5):
        folder = target / f"dbt_models-run{number}-abc"
        folder.mkdir(parents=True)
        os.utime(folder, (1_000_000 + number, 1_000_000 + number))
    (target / "parse-scratch").mkdir()
    (target / "manifest.json").write_text("{}")
    removed = prune_invocation_folders(ads_dbt_project(target), keep=2)
    assert sorted(path.name for path in removed) == [f"dbt_models-run{n}-abc" for n in range(3)]
    assert sorted(path.name for path in target.iterdir()) == [
        "dbt_models-run3-abc",
        "dbt_models-run4-abc",
        "manifest.json",
        "parse-scratch",
    ]


def test_data_docs_keep_the_last_runs(fresh_database: Any) -> None:
    from ads_assets.lib.quality.store import VALIDATION_RESULTS_TABLE, ensure_quality_schema, validations_for_report

    with connect(fresh_database, autocommit=True) as connection:
        ensure_quality_schema(connection)
        for number, run in enumerate(("r1", "r2", "r3")):
            connection.execute(
                f"INSERT INTO {VALIDATION_RESULTS_TABLE} (run_id, suite, batch, success, evaluated, written, result, "
                "evaluated_at) VALUES (%s, 'raw.fin_trans', 'all', true, 1, 1, '{}', now() + %s * interval '1 minute')",
                (run, number),
            )
        assert {v.run_id for v in validations_for_report(connection, "r3", history=2)} == {"r3", "r2"}
        assert {v.run_id for v in validations_for_report(connection, "r2", history=1)} == {"r2"}
        assert {v.run_id for v in validations_for_report(connection, "unknown", history=2)} == {"r3"}


# --- one-line errors -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bank in the PKDD'99 format (with headers), for the checks that fail before any work."""
    folder = tmp_path_factory.mktemp("small_bank")
    result = ads(
        "generate",
        "--out",
        str(folder),
        "--accounts",
        "30",
        "--start",
        "1996-01",
        "--end",
        "1996-02",
        home=folder / "unused_home",
    )
    assert result.returncode == 0, result.stderr
    return folder


def test_database_url_that_is_not_a_url(small_bank: Path, tmp_path: Path) -> None:
    result = ads("run", "--source", str(small_bank), home=tmp_path / "home", env={"ADS_DATABASE_URL": "not-a-url"})
    assert_one_line_error(result, "ADS_DATABASE_URL", "not a database URL")


def test_database_that_refuses_connections_fails_fast(small_bank: Path, tmp_path: Path) -> None:
    url = f"postgresql://ads:secret@127.0.0.1:{free_port()}/ads"
    started = time.monotonic()
    result = ads("run", "--source", str(small_bank), home=tmp_path / "home", env={"ADS_DATABASE_URL": url})
    message = assert_one_line_error(result, "cannot connect", "127.0.0.1")
    assert "secret" not in message
    assert time.monotonic() - started < 30


def test_s3_output_without_credentials(small_bank: Path, tmp_path: Path) -> None:
    no_credentials: dict[str, str | None] = {
        name: None
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        )
    }
    no_credentials |= {
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    started = time.monotonic()
    result = ads(
        "run", "--source", str(small_bank), "--output", "s3://ads-nowhere/x", home=tmp_path, env=no_credentials
    )
    assert_one_line_error(result, "no AWS credentials", "s3://ads-nowhere/x")
    assert time.monotonic() - started < 30


def test_s3_endpoint_that_cannot_be_reached(small_bank: Path, tmp_path: Path, s3_endpoint: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = ads(
        "run",
        "--source",
        str(small_bank),
        "--output",
        "s3://ads-bucket/x",
        home=tmp_path,
        env={"ADS_S3_ENDPOINT_URL": endpoint},
    )
    assert_one_line_error(result, "cannot reach the S3 endpoint", endpoint)


def test_s3_bucket_that_does_not_exist(small_bank: Path, tmp_path: Path, s3_endpoint: str) -> None:
    result = ads("run", "--source", str(small_bank), "--output", "s3://ads-no-such-bucket/x", home=tmp_path)
    assert_one_line_error(result, "no bucket ads-no-such-bucket")


def test_s3_output_is_checked_with_the_bucket(s3_bucket: str) -> None:
    from ads_assets.environment import check_s3_output

    check_s3_output(f"s3://{s3_bucket}/runs/ads")


def test_wrong_header_is_one_line_and_the_source_is_not_remembered(small_bank: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_bank"
    bad.mkdir()
    for path in small_bank.iterdir():
        if path.is_file():
            (bad / path.name).write_bytes(path.read_bytes())
    lines = (bad / "account.asc").read_text().splitlines(keepends=True)
    (bad / "account.asc").write_text('"account_id";"branch";"frequency";"date"\n' + "".join(lines[1:]))
    home = tmp_path / "home"
    home.mkdir()
    remembered = {"source": str(small_bank), "output": str(tmp_path / "out"), "months": "1996-01:1996-02"}
    (home / "state.json").write_text(json.dumps(remembered))

    result = ads("run", "--source", str(bad), "--output", str(tmp_path / "never" / "out"), home=home)
    assert_one_line_error(result, "account.asc", "expected the header")
    assert not (tmp_path / "never").exists(), "checking the output leaves no folder behind"
    dev = ads("dev", "--source", str(bad), home=home)
    assert_one_line_error(dev, "account.asc")
    assert json.loads((home / "state.json").read_text()) == remembered


def test_folder_in_neither_format(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    result = ads("run", "--source", str(tmp_path / "nothing"), home=tmp_path / "home")
    assert_one_line_error(result, "no Berka files")


def test_bad_options_are_one_line(small_bank: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert_one_line_error(ads("run", "--source", str(small_bank), "--months", "1996-13", home=home), "--months")
    assert_one_line_error(
        ads("run", "--source", str(small_bank), "--months", "1999-01:1999-02", home=home),
        "outside the source's months 1996-01:1996-02",
    )
    assert_one_line_error(ads("run", "--source", str(small_bank), "--retrain-every", "0", home=home), "--retrain-every")
    assert_one_line_error(
        ads("backfill", "--source", str(small_bank), "--from", "1996-02", "--to", "1996-01", home=home), "--from/--to"
    )
    assert_one_line_error(
        ads("backfill", "--source", str(small_bank), "--from", "1999-01", "--to", "1999-02", home=home),
        "outside the source's months 1996-01:1996-02",
    )
    assert_one_line_error(
        ads("run", "--source", str(small_bank), "--output", "/proc/ads-output", home=home), "cannot write"
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = ads("--debug", "run", "--source", str(tmp_path / "missing"), home=tmp_path / "home")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("ads: error:")


# --- end to end ------------------------------------------------------------------------------------------


def test_generate_writes_eight_relations_and_labels(generated: Path) -> None:
    names = sorted(path.name for path in generated.glob("*.tsv"))
    assert names == sorted(f"fin_{name}.tsv" for name in LOAD_ORDER)
    labels = (generated / "labels.csv").read_text().splitlines()
    assert labels[0].split(",")[:2] == ["trans_id", "account_id"]
    assert len(labels) > 1


def test_run_prints_a_short_plain_summary(built: Built) -> None:
    result = built.result
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr == ""
    out = result.stdout
    lines = out.splitlines()
    assert len(lines) <= MAX_SUMMARY_LINES, out
    assert "\x1b" not in out
    assert "succeeded" in out and "raw.fin_trans" in out and "anomaly.transaction_scores" in out
    for stage in ("ingest", "raw checks", "features (dbt)", "feature checks", "train models", "score and explain"):
        assert re.search(rf"\] {re.escape(stage)}: .*ok in ", out), stage
    table = out[out.index("\nstage ") :]
    assert re.search(r"\n  total +[\d.]+ (s|min)", table)
    report = (built.output / "quality" / "index.html").resolve()
    assert f"data-quality report: {report.as_posix()}" in out
    anomalies = (built.output / "report" / "index.html").resolve()
    run_id = re.search(r"ADS run (\S+): succeeded", out).group(1)
    assert f"anomaly report:      {anomalies.as_posix()}" in out and run_id in anomalies.read_text(encoding="utf-8")
    assert 'ads psql -c "SELECT' in out
    assert "duckdb -c" in out and f"{built.output}/transaction_scores/" in out
    assert lines[-1].startswith("open the UI:") and "ads dev" in lines[-1] and "http://127.0.0.1:3000" in lines[-1]

    log = Path(re.search(r"logs in (\S+\.log)", out).group(1))
    assert log.parent == built.home / "logs"
    logged = log.read_text()
    assert re.search(r"\d+ of \d+ OK created", logged), "dbt's lines go to the log"
    assert "\x1b" not in logged


def test_run_keeps_its_state_in_ads_home(built: Built) -> None:
    assert built.result.returncode == 0
    assert built.source_tree_after == built.source_tree, "nothing is written into dbt_project/ or expectations/"
    target = built.home / "dbt" / "target"
    assert (target / "manifest.json").is_file() and (target / "partial_parse.msgpack").is_file()
    assert [path for path in target.iterdir() if path.is_dir() and path.name.startswith("dbt_")]
    assert (built.home / "state.json").is_file()


def test_run_publishes_scores_and_parquet(built: Built) -> None:
    assert built.result.returncode == 0
    counts = db_counts(built.home)
    trans_lines = sum(1 for _ in (built.source / "fin_trans.tsv").open())
    assert counts["trans"] + counts["quarantine"] == trans_lines
    assert counts["account"] == 400 and counts["runs"] == 1
    assert_published_outputs(built.home, built.output, counts["trans"])


def test_data_docs_hold_named_runs_and_the_feature_table_offline(built: Built) -> None:
    assert built.result.returncode == 0
    site = built.output / "quality"
    assert_offline_site(site)
    run_id = re.search(r"ADS run (\S+): succeeded", built.result.stdout).group(1)
    assert sorted(path.name for path in (site / "validations" / "raw" / "fin_trans").iterdir()) == [run_id]
    features = list((site / "validations" / "marts" / "fct_transaction_features").rglob("*.html"))
    assert len(features) == 4
    page = features[0].read_text(encoding="utf-8")
    assert "__none__" not in page and run_id in page


def assert_published_outputs(home: Path, output: Path, transactions: int) -> None:
    """Scores for every transaction in Postgres and Parquet, reasons for every alert, missing payments by month."""
    with connect(embedded_postgres(home / "pgdata")) as connection:
        scores = read_query(connection, f"SELECT * FROM {SCORES_TABLE}")
        months = {row[0] for row in connection.execute("SELECT DISTINCT to_char(date, 'YYYY-MM') FROM raw.fin_trans")}
        missing = table_count(connection.cursor(), MISSING_TABLE)
    assert len(scores) == transactions
    assert set(scores["month"]) == months
    assert scores["score"].between(0, 1).all()
    flagged = scores[scores["is_anomaly"]]
    assert 0 < len(flagged) <= 0.05 * len(scores)
    for reasons in flagged["reasons"]:
        explanation = json.loads(reasons)
        assert explanation["sentence"].strip()
    parquet = OutputStore(str(output)).read_table("transaction_scores").to_pandas()
    assert len(parquet) == transactions
    assert sorted(parquet["month"].astype(str).unique()) == sorted(months)
    assert sorted(path.name for path in (output / "transaction_scores").glob("month=*")) == [
        f"month={month}" for month in sorted(months)
    ]
    assert sorted(path.name for path in (output / "missing_payments").glob("month=*")) == [
        f"month={month}" for month in sorted(months)
    ]
    assert len(OutputStore(str(output)).read_table("missing_payments")) == missing


def test_rescoring_a_window_with_another_cadence(built: Built, rescored: Rerun | None) -> None:
    """`--months` reruns only those months, `--retrain-every` reaches the models' run config, counts stay."""
    assert built.result.returncode == 0
    result = rescored.result
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "months 1993-02..1993-03" in result.stdout
    assert db_counts(rescored.home) == {**rescored.before, "runs": rescored.before["runs"] + 1}
    with connect(embedded_postgres(rescored.home / "pgdata")) as connection:
        scored = dict(connection.execute(f"SELECT month, max(scored_at) FROM {SCORES_TABLE} GROUP BY month"))
        run_body = connection.execute("SELECT run_body FROM runs ORDER BY create_timestamp DESC LIMIT 1").fetchone()[0]
    assert {month for month, at in scored.items() if at > rescored.started} == {"1993-02", "1993-03"}
    run_config = json.loads(run_body)["run_config"]
    assert run_config["ops"]["detection__anomaly_models"]["config"] == {"retrain_every_months": 1}
    runs = list((rescored.output / "quality" / "validations" / "raw" / "fin_trans").iterdir())
    assert len(runs) == 2, "the Data Docs keep the earlier run"


def test_a_second_run_skips_the_unchanged_months(built: Built, reran: Reran | None) -> None:
    """Nothing new: no Dagster run, and the summary says so. One changed line: only its month is redone."""
    assert built.result.returncode == 0
    unchanged = reran.unchanged
    assert unchanged.returncode == 0, unchanged.stdout[-3000:] + unchanged.stderr[-3000:]
    assert "ADS run: nothing new, nothing run" in unchanged.stdout
    assert "months 1993-01..1993-04 unchanged since run" in unchanged.stdout
    assert reran.runs_after_unchanged == reran.runs_before
    changed = reran.changed
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert "months 1993-01..1993-03 unchanged since run" in changed.stdout
    assert "running 1993-04..1993-04" in changed.stdout
    scored = reran.scored_after_changed
    assert sorted(scored) == ["1993-01", "1993-02", "1993-03", "1993-04"]
    assert {month for month, at in scored.items() if at > reran.changed_started} == {"1993-04"}


def test_a_new_label_reruns_from_its_transactions_month(reran: Reran | None) -> None:
    """`ads label` of a transaction of 1993-04: the next run redoes that month alone, and says why."""
    labelled = reran.labelled
    assert labelled.returncode == 0, labelled.stdout[-3000:] + labelled.stderr[-3000:]
    assert "analyst labels of 1993-04 changed: running 1993-04..1993-04" in labelled.stdout
    assert "analyst labels: 1 labels" in labelled.stdout
    with connect(embedded_postgres(reran.home / "pgdata")) as connection:
        scored = dict(connection.execute(f"SELECT month, max(scored_at) FROM {SCORES_TABLE} GROUP BY month"))
        (label,) = connection.execute("SELECT label FROM anomaly.labels").fetchone()
    assert label == "confirmed"
    assert {month for month, at in scored.items() if at > reran.labelled_started} == {"1993-04"}


def test_ads_psql_queries_the_embedded_database(built: Built) -> None:
    assert built.result.returncode == 0
    stop_embedded_postgres(built.home / "pgdata")
    result = ads("psql", "-At", "-c", "SELECT count(*) > 0 FROM anomaly.transaction_scores", home=built.home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"
    assert not embedded_postgres_running(built.home / "pgdata")


def test_ads_dev_passes_its_options_to_dagster_and_stops_postgres_on_ctrl_c(built: Built) -> None:
    assert built.result.returncode == 0
    stop_embedded_postgres(built.home / "pgdata")
    state = (built.home / "state.json").read_text()
    port = free_port()
    environment = {**os.environ, "ADS_HOME": str(built.home)}
    environment.pop("DAGSTER_HOME", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ads_assets.cli", "dev", "-h", "127.0.0.1", "-p", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        answered = False
        while time.monotonic() < deadline and process.poll() is None and not answered:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                    answered = response.status == 200
            except OSError:
                time.sleep(0.5)
        assert answered, "the Dagster UI did not answer on the host and port given to `ads dev`"
        assert embedded_postgres_running(built.home / "pgdata")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=180)
    assert process.returncode == 130, err[-3000:]
    assert "stopped the embedded Postgres" in err
    assert not embedded_postgres_running(built.home / "pgdata")
    assert (built.home / "state.json").read_text() == state


def test_a_failed_step_names_its_error_and_counts_only_this_run(
    built: Built, failed_run: subprocess.CompletedProcess | None
) -> None:
    """A load that fails in its step: the summary names the error, lists what did not run, counts this run only."""
    assert built.result.returncode == 0
    result = failed_run
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr == ""
    out = result.stdout
    assert "FAILED after" in out
    assert re.search(r"failed step raw__fin_trans \(ingest\): CheckViolation: .*ads_test_broken", out), out
    assert re.search(r"did not run \(\d+ steps\): \w", out), out
    assert re.search(r"\] ingest: .*FAILED in", out) and re.search(r"\] raw checks: .*steps did not run, ok in", out)
    assert "raw.fin_account 400" in out
    assert "raw.fin_trans (not written: failed)" in out
    assert "anomaly.transaction_scores (not written" in out
    assert len(out.splitlines()) <= MAX_SUMMARY_LINES + 3


def test_run_publishes_parquet_and_data_docs_to_s3(s3_run: S3Run, s3: Any) -> None:
    """`ads run --output s3://...` against moto: the endpoint and credentials reach it through the environment."""
    home, output, s3_bucket, result = s3_run.home, s3_run.output, s3_run.bucket, s3_run.result
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"outputs: {output}" in result.stdout
    assert f"data-quality report: {output}/quality/index.html" in result.stdout

    with connect(embedded_postgres(home / "pgdata")) as connection:
        months = sorted(row[0] for row in connection.execute("SELECT DISTINCT month FROM anomaly.transaction_scores"))
        scores = connection.execute(f"SELECT * FROM {SCORES_TABLE}")
        score_rows = [dict(zip([c.name for c in scores.description], row, strict=True)) for row in scores]
        missing = connection.execute(f"SELECT * FROM {MISSING_TABLE}")
        missing_rows = [dict(zip([c.name for c in missing.description], row, strict=True)) for row in missing]
    assert months and score_rows and missing_rows

    keys = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for item in page.get("Contents", [])
    }
    for table in ("transaction_scores", "missing_payments"):
        assert {f"runs/ads/{table}/month={month}/part-0.parquet" for month in months} <= keys
    assert "runs/ads/quality/index.html" in keys and "runs/ads/report/index.html" in keys
    assert "runs/ads/quality/static/vendor/css/bootstrap.min.css" in keys
    assert not [key for key in keys if ".ads-write-check" in key]
    ordered = sorted(keys)
    with ThreadPoolExecutor(max_workers=8) as pool:
        heads = list(pool.map(lambda key: s3.head_object(Bucket=s3_bucket, Key=key), ordered))
    encryption = {
        key: (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId", ""))
        for key, head in zip(ordered, heads, strict=True)
    }
    assert not {
        key: found
        for key, found in encryption.items()
        if found[0] != "aws:kms" or not found[1].endswith(s3_run.kms_key_id)
    }
    index = s3.get_object(Bucket=s3_bucket, Key="runs/ads/quality/index.html")
    assert index["ContentType"].startswith("text/html")
    assert not REMOTE_ASSET.search(index["Body"].read().decode("utf-8"))

    filesystem = pafs.S3FileSystem(endpoint_override=s3_endpoint_url(), region=s3_region())
    month_partitioning = ds.partitioning(pa.schema([("month", pa.string())]), flavor="hive")

    def parquet_rows(table: str) -> list[dict[str, Any]]:
        dataset = ds.dataset(
            f"{s3_bucket}/runs/ads/{table}", filesystem=filesystem, format="parquet", partitioning=month_partitioning
        )
        return dataset.to_table().to_pylist()

    assert comparable_rows(parquet_rows("transaction_scores")) == comparable_rows(score_rows)
    assert comparable_rows(parquet_rows("missing_payments")) == comparable_rows(missing_rows)


def comparable(column: str, value: Any) -> Any:
    """A value as both stores should hold it: JSON text parsed, Parquet maps (lists of key-value pairs) as
    mappings, empty collections alike, numerics as float (-0.0 as 0.0), instants in UTC."""
    if column == "reasons" and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, list) and value and all(isinstance(item, tuple) and len(item) == 2 for item in value):
        value = dict(value)
    if isinstance(value, dict | list) and not value:
        return []
    if isinstance(value, dict):
        return {key: comparable(key, item) for key, item in value.items()}
    if isinstance(value, float):
        return value + 0.0  # -0.0 and 0.0 alike
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def comparable_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted JSON documents of their comparable values, for comparing two stores."""
    return sorted(
        json.dumps({column: comparable(column, value) for column, value in row.items()}, sort_keys=True, default=str)
        for row in rows
    )


def test_a_lost_database_is_one_line_naming_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=None, source=None, output="out", months=DEFAULT_MONTHS)
    refused = psycopg.OperationalError('connection to server on socket "/x/.s.PGSQL.5432" failed: No such file')
    try:
        try:
            raise refused
        except psycopg.OperationalError as inner:
            raise RuntimeError("step failed") from inner
    except RuntimeError as error:
        line = lost_database(error, settings)
    assert line == (
        f"lost the connection to the embedded Postgres in {settings.pgdata} during the run (OperationalError): "
        "the run stopped part-way; months already published stay whole, and the next ads run redoes the rest"
    )
    assert lost_database(ValueError("connection"), settings) is None


def test_a_run_that_loses_its_database_ends_with_a_failed_summary_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from ads_assets.environment import Environment
    from ads_assets.lib.db import PostgresTarget

    def stopped(*_args: Any, **_kwargs: Any) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dg.JobDefinition, "execute_in_process", stopped)
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = Settings(
        home=tmp_path, database_url=None, source=None, output=str(tmp_path / "out"), months=DEFAULT_MONTHS
    )
    gone = PostgresTarget(
        host=str(tmp_path / "no_server"), port=5432, user="postgres", password=None, dbname="postgres"
    )
    summary = run_pipeline(Environment(settings=settings, postgres=gone, source="unused", months=DEFAULT_MONTHS))

    assert not summary.success
    text = summary.render()
    assert text.startswith("ADS run (not recorded): FAILED after ")
    assert f"lost the connection to the embedded Postgres in {settings.pgdata} during the run" in text
    assert "anomaly.transaction_scores (not written: not run)" in text
