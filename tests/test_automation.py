"""Schedules and sensors, evaluated with Dagster's own test contexts against a real Postgres."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ads_assets.defs.automation.inbox import transactions_inbox
from ads_assets.defs.automation.months import new_months
from ads_assets.defs.automation.schedules import monthly_retrain_schedule, nightly_quality_schedule
from ads_assets.defs.automation.sensors import drift_retrain, run_failure_alert
from ads_assets.defs.partitions import add_months, month_keys, months_between
from ads_assets.defs.resources import AlertsResource, BerkaSourceResource, PostgresResource
from ads_assets.lib.alerting import model_performance, raise_events
from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.db import PostgresTarget, connect
from ads_assets.lib.detection.drift import write_drift
from ads_assets.lib.metrics import Metric
from ads_assets.lib.metrics import record as record_metrics
from ads_assets.lib.raw_schema import ensure_raw_schema
from ads_assets.lib.retrain_triggers import flag_rate_band
from tests.test_alerts import url_of


def test_both_schedules_are_off_until_turned_on() -> None:
    assert nightly_quality_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert monthly_retrain_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert nightly_quality_schedule.cron_schedule == "0 2 * * *"
    assert monthly_retrain_schedule.cron_schedule == "0 3 1 * *"


def test_the_nightly_quality_report_asks_for_the_report_job() -> None:
    with dg.instance_for_test() as instance:
        result = nightly_quality_schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    (request,) = result.run_requests
    assert request.partition_key is None
    assert nightly_quality_schedule.job_name == "nightly_quality_report"


def test_the_monthly_retrain_asks_for_the_latest_month_once() -> None:
    with dg.instance_for_test() as instance:
        assert isinstance(monthly_retrain_schedule(dg.build_schedule_context(instance=instance)), dg.SkipReason)
        add_months(instance, ["1996-01", "1996-03"])
        request = monthly_retrain_schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(request, dg.RunRequest)
    assert (request.partition_key, request.run_key) == ("1996-03-01", "retrain-1996-03-01")


@dg.op
def broken_step() -> None:
    raise RuntimeError("the feature table is gone")


@dg.job
def broken_job() -> None:
    broken_step()


@pytest.fixture
def failed_run_context(fresh_database: PostgresTarget, tmp_path: Path):
    with dg.instance_for_test() as instance:
        result = broken_job.execute_in_process(instance=instance, raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        failure = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.PIPELINE_FAILURE)
        resources = {
            "postgres": PostgresResource(pgdata=str(tmp_path / "pgdata"), database_url=url_of(fresh_database)),
            "alerts": AlertsResource(),
        }
        yield (
            dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=run,
                resources=resources,
            ).for_run_failure(),
            result.run_id,
        )


def test_a_failed_run_raises_one_alert_naming_its_step(failed_run_context, fresh_database: PostgresTarget) -> None:
    context, run_id = failed_run_context
    run_failure_alert(context)
    run_failure_alert(context)
    with connect(fresh_database) as connection:
        rows = connection.execute(
            "SELECT kind, severity, subject, message, delivery_status FROM anomaly.alerts"
        ).fetchall()
    assert len(rows) == 1
    kind, severity, subject, message, status = rows[0]
    assert (kind, severity, subject, status) == ("run_failure", "critical", f"run {run_id}", "log-only")
    assert message.startswith("broken_job failed in broken_step: ")


def test_drift_a_flag_rate_out_of_band_or_lost_canary_recall_request_the_next_months_retrain_once(
    fresh_database: PostgresTarget, tmp_path: Path
) -> None:
    report = pd.DataFrame(
        {
            "month": ["1996-03", "1996-03", "1996-04", "1998-12"],
            "subject": ["amount", "balance_after", "amount", "amount"],
            "psi": [0.4, 0.05, 0.2, 0.9],
            "band": ["major", "stable", "moderate", "major"],
            "reference": ["1995-01-01..1996-01-01"] * 4,
        }
    )
    recorded = datetime(2026, 12, 1, tzinfo=UTC)
    rates = {"1996-01": 0.010, "1996-02": 0.012, "1996-03": 0.009, "1996-04": 0.011, "1996-05": 0.010, "1996-06": 0.04}
    with connect(fresh_database) as connection:
        write_drift(connection, report, recorded_at=recorded)
        record_metrics(
            connection,
            [
                Metric("run", month, "score", "flagged_rate", rate, recorded_at=recorded)
                for month, rate in rates.items()
            ],
        )
        raise_events(connection, [model_performance("v7", "canary_recall", 0.2, 0.45, "1996-09")])
    postgres = PostgresResource(pgdata=str(tmp_path / "pgdata"), database_url=url_of(fresh_database))
    with dg.instance_for_test() as instance:
        add_months(instance, ["1996-01", "1996-12"])
        first = drift_retrain(dg.build_sensor_context(instance=instance, resources={"postgres": postgres}))
        assert [
            (request.run_key, request.partition_key, request.tags["ads/trigger"]) for request in first.run_requests
        ] == [
            ("retrain-after-1996-03", "1996-04-01", "drift"),
            ("retrain-after-1996-06", "1996-07-01", "flag_rate"),
            ("retrain-after-1996-09", "1996-10-01", "canary_recall"),
        ]
        again = drift_retrain(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"postgres": postgres})
        )
    assert datetime.fromisoformat(first.cursor) > recorded
    assert again.run_requests == []


def test_a_flag_rate_band_needs_three_months_and_spans_a_third_to_three_times_their_median() -> None:
    assert flag_rate_band([0.01, 0.02]) is None
    assert flag_rate_band([0.0, 0.0, 0.0]) is None
    assert flag_rate_band([0.5] * 20 + [0.01, 0.03, 0.02]) == pytest.approx((0.5 / 3, 1.5))
    assert flag_rate_band([0.01, 0.03, 0.02]) == pytest.approx((0.02 / 3, 0.06))


def test_the_inbox_sensor_asks_for_one_run_per_batch_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADS_INBOX", str(tmp_path))
    assert isinstance(transactions_inbox(dg.build_sensor_context()), dg.SkipReason)
    (tmp_path / "b.tsv").write_text("fin rows\n")
    (tmp_path / "a.asc").write_text("trans rows\n")
    (tmp_path / "notes.txt").write_text("not a batch\n")
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "old.asc").write_text("taken before\n")
    result = transactions_inbox(dg.build_sensor_context())
    requested = [
        (request.run_key, request.run_config["ops"]["score_inbox_batch"]["config"]["path"])
        for request in result.run_requests
    ]
    assert requested == [
        (hashlib.sha256(b"trans rows\n").hexdigest(), str(tmp_path / "a.asc")),
        (hashlib.sha256(b"fin rows\n").hexdigest(), str(tmp_path / "b.tsv")),
    ]
    assert transactions_inbox.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_new_month_in_the_source_or_the_raw_table_becomes_a_partition_and_one_run(
    fresh_database: PostgresTarget, tmp_path: Path
) -> None:
    write_dataset(generate(GeneratorConfig(accounts=5, start="1996-01", end="1996-03", seed=1)), tmp_path, "asc")
    resources = {
        "berka_source": BerkaSourceResource(location=str(tmp_path)),
        "postgres": PostgresResource(pgdata=str(tmp_path / "pgdata"), database_url=url_of(fresh_database)),
    }
    with dg.instance_for_test() as instance:

        def evaluate(cursor: str | None) -> dg.SensorResult:
            result = new_months(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
            for request in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            return result

        add_months(instance, ["1996-01", "1996-03"])
        unchanged = evaluate(None)
        assert (unchanged.run_requests, unchanged.dynamic_partitions_requests) == ([], [])

        with (tmp_path / "trans.asc").open("a") as trans:
            trans.write('9001;1;960512;"VYDAJ";"VYBER";100.00;800.00;"";;\n')
        grown = evaluate(unchanged.cursor)
        (request,) = grown.run_requests
        assert (request.job_name, request.run_key) == ("ads_full", "source-1996-04-01-1996-05-01")
        assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
            "1996-04-01",
            "1996-05-01",
        )
        assert evaluate(grown.cursor).run_requests == []

        with connect(fresh_database) as connection:
            ensure_raw_schema(connection.cursor())
            connection.execute(
                "INSERT INTO raw.fin_trans (trans_id, account_id, date, type, amount, balance) "
                "VALUES (9002, 1, '1996-07-03', 'VYDAJ', 50, 750)"
            )
            connection.commit()
        (from_raw,) = evaluate(grown.cursor).run_requests
        assert (from_raw.job_name, from_raw.run_key) == ("score_months", "raw table-1996-06-01-1996-07-01")
        assert month_keys(instance) == months_between("1996-01", "1996-07")
