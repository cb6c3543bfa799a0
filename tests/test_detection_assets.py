"""The detection assets through Dagster: monthly models with a retrain cadence, scores, and the model store.

A small generated ledger (60 accounts, 1995-01..1996-12) goes through ingestion and dbt into a database of
the session's embedded Postgres; `detection/anomaly_models` and `anomaly/transaction_scores` are then
materialized for 1996-08..1996-11 with models retrained every 3 months (July and October).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ads_assets.defs.automation.inbox import inbox_batch_job
from ads_assets.defs.dbt.resource import dbt_resource
from ads_assets.defs.detection.assets import MODELS_KEY, anomaly_models, transaction_scores
from ads_assets.defs.detection.io_manager import ModelIOManager, recorded_partition_model
from ads_assets.defs.keys import SCORES_KEY
from ads_assets.defs.partitions import add_months, month_keys
from ads_assets.defs.resources import AlertsResource, MetricsResource, OutputStoreResource, PostgresResource
from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.storage import OutputStore
from ads_assets.lib.tables import SCORES_TABLE, read_query
from tests.marts import build_feature_mart
from tests.test_registry import flip_byte

MONTHS = ["1996-08-01", "1996-09-01", "1996-10-01", "1996-11-01"]
MODEL_CONFIG = {"retrain_every_months": 3, "min_training_rows": 500, "min_cold_start_rows": 500}
MODELS_OP = "detection__anomaly_models"


@dataclass
class Detection:
    instance: dg.DagsterInstance
    resources: dict[str, object]
    target: PostgresTarget
    output: Path
    first: dg.ExecuteInProcessResult | None = field(default=None)

    @property
    def registry(self):
        return self.resources["models"].registry()

    def materialize(
        self, months: list[str], models: bool = True, config: dict | None = None
    ) -> dg.ExecuteInProcessResult:
        selection = [MODELS_KEY, transaction_scores.key] if models else [transaction_scores.key]
        run_config = {"ops": {MODELS_OP: {"config": config or MODEL_CONFIG}}} if models else {}
        return dg.materialize(
            [anomaly_models, transaction_scores],
            instance=self.instance,
            resources=self.resources,
            selection=selection,
            tags={ASSET_PARTITION_RANGE_START_TAG: months[0], ASSET_PARTITION_RANGE_END_TAG: months[-1]},
            run_config=run_config,
            raise_on_error=False,
        )

    def scores(self) -> pd.DataFrame:
        with connect(self.target) as connection:
            frame = read_query(connection, f"SELECT * FROM {SCORES_TABLE} ORDER BY trans_id")
        return frame.drop(columns=["scored_at"])

    def parquet(self) -> pd.DataFrame:
        frame = OutputStore(str(self.output)).read_table("transaction_scores").to_pandas()
        return frame.drop(columns=["scored_at"]).sort_values("trans_id").reset_index(drop=True)

    def recorded(self, month: str) -> dict[str, str]:
        return recorded_partition_model(self.instance, MODELS_KEY, month)


@pytest.fixture(scope="module")
def detection(postgres_target: PostgresTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detection]:
    """The marts of a small generated ledger, and a first materialization of models and scores for MONTHS."""
    work = tmp_path_factory.mktemp("detection_assets")
    data = generate(GeneratorConfig(accounts=60, start="1995-01", end="1996-12", seed=5, anomaly_rate=0.01))
    write_dataset(data, work / "source", "asc")
    with temporary_database(postgres_target) as target, dg.DagsterInstance.ephemeral() as instance:
        build_feature_mart(work / "source", target, work)
        resources = {
            "postgres": PostgresResource(pgdata=str(work / "unused"), database_url=target.sqlalchemy_url()),
            "models": ModelIOManager(root=str(work / "models")),
            "output_store": OutputStoreResource(root=str(work / "output")),
            "alerts": AlertsResource(),
            "metrics": MetricsResource(),
        }
        add_months(instance, ["1995-01", MONTHS[-1]])
        detection = Detection(instance, resources, target, work / "output")
        detection.first = detection.materialize(MONTHS)
        assert detection.first.success
        yield detection


def test_months_between_retrains_reuse_the_model_trained_before_the_retrain_month(detection: Detection) -> None:
    recorded = {month: detection.recorded(month) for month in MONTHS}
    august, september, october, november = (recorded[month]["model_version"] for month in MONTHS)
    assert august == september and october == november and august != october
    materialization = detection.first.asset_materializations_for_node(MODELS_OP)[0]
    assert materialization.metadata["models_fitted"].value == 2
    windows = {
        month: model["training_window"].split(":") for month, model in materialization.metadata["models"].data.items()
    }
    for month, retrain in zip(MONTHS, ["1996-07-01", "1996-07-01", "1996-10-01", "1996-10-01"], strict=True):
        start, end = windows[month]
        assert str(pd.Timestamp(retrain) - pd.DateOffset(months=12))[:10] <= start and end < retrain
    assert sorted(detection.registry.versions("detection__anomaly_models")) == sorted({august, october})

    scores = detection.scores()
    versions = scores.groupby("month")["model_version"].unique().map(list).to_dict()
    assert versions == {"1996-08": [august], "1996-09": [august], "1996-10": [october], "1996-11": [october]}

    monthly = detection.materialize(["1996-10-01"], config=MODEL_CONFIG | {"retrain_every_months": 1})
    assert monthly.success
    assert detection.recorded("1996-10-01")["model_version"] == october
    assert sorted(detection.registry.versions("detection__anomaly_models")) == sorted({august, october})


def test_each_month_partition_carries_its_own_metadata(detection: Detection) -> None:
    """One run over four months: each partition's materialization holds that month's rows and alerts."""
    scores = detection.scores()
    expected = {f"{month}-01": (len(rows), int(rows["is_anomaly"].sum())) for month, rows in scores.groupby("month")}
    materializations = detection.first.asset_materializations_for_node("anomaly__transaction_scores")
    recorded = {
        event.partition: (event.metadata["dagster/row_count"].value, event.metadata["flagged"].value)
        for event in materializations
    }
    assert recorded == {month: expected[month] for month in MONTHS}
    assert len({rows for rows, _ in recorded.values()}) > 1
    models = {
        event.partition: event.metadata["trained_on"].value
        for event in detection.first.asset_materializations_for_node(MODELS_OP)
    }
    assert models["1996-08-01"] == models["1996-09-01"] != models["1996-10-01"] == models["1996-11-01"]


def test_each_month_records_its_drift_and_its_operational_metrics(detection: Detection) -> None:
    """Drift of the key features per month against the scoring model's window, and the flagged counts as metrics."""
    scores = detection.scores()
    published = {month: float(rows["is_anomaly"].sum()) for month, rows in scores.groupby("month")}
    with connect(detection.target) as connection:
        drift = read_query(connection, "SELECT month, subject, psi, band, reference FROM anomaly.drift")
        flagged = read_query(
            connection, "SELECT partition, value FROM ops.metrics WHERE stage = 'score' AND name = 'flagged'"
        )
    assert dict(zip(flagged["partition"], flagged["value"], strict=True)) == published
    assert sorted(set(drift["month"])) == sorted(published)
    assert set(drift["subject"]) == {
        "amount",
        "amount_vs_history",
        "balance_after",
        "txn_count_day",
        "days_since_previous_txn",
    }
    august = drift.loc[drift["month"] == "1996-08"]
    assert set(august["reference"]) == {"1995-07-01..1996-07-01"}
    assert (drift["psi"] >= 0).all()
    assert set(drift["band"]) <= {"stable", "moderate", "major"}


def test_the_first_month_of_the_data_is_scored_by_a_cold_start_model(detection: Detection) -> None:
    result = detection.materialize(["1995-01-01"])

    assert result.success
    [materialization] = result.asset_materializations_for_node(MODELS_OP)
    [window] = [model["training_window"] for model in materialization.metadata["models"].data.values()]
    start, end = window.split(":")
    january_rows = len(detection.scores().query("month == '1995-01'"))
    assert january_rows < 2_000 and start.startswith("1995-01") and "1995-02" <= end[:7] < "1996-01"
    assert materialization.metadata["cold_start_months"].data == ["1995-01"]
    assert set(detection.scores().query("month == '1995-01'")["model_version"]) == {
        detection.recorded("1995-01-01")["model_version"]
    }


def test_materializing_the_same_months_twice_gives_identical_rows(detection: Detection) -> None:
    before, parquet_before = detection.scores(), detection.parquet()
    stored = {month: detection.recorded(month) for month in MONTHS}
    assert {month[:7] for month in MONTHS} <= set(before["month"])
    assert before["is_anomaly"].any() and before.loc[before["is_anomaly"], "reasons"].notna().all()

    again = detection.materialize(MONTHS)

    assert again.success
    pd.testing.assert_frame_equal(detection.scores(), before)
    pd.testing.assert_frame_equal(detection.parquet(), parquet_before)
    assert {month: detection.recorded(month) for month in MONTHS} == stored


def test_a_tampered_model_file_is_refused_naming_the_file(detection: Detection) -> None:
    recorded = detection.recorded("1996-09-01")
    path = Path(detection.registry.record(recorded["model_name"], recorded["model_version"]).path)
    original = path.read_bytes()
    before = detection.scores()
    flip_byte(path)
    try:
        result = detection.materialize(["1996-09-01"], models=False)
    finally:
        path.write_bytes(original)

    assert not result.success
    [failure] = result.get_step_failure_events()
    error = str(failure.step_failure_data.error)
    assert (
        "ModelIntegrityError" in error and f"{path} was changed or truncated" in error and "refusing to load" in error
    )
    pd.testing.assert_frame_equal(detection.scores(), before)


def test_online_learning_refreshes_the_model_between_retrains(detection: Detection) -> None:
    """With online_learning, the second month a model scores is scored by that model refreshed with the first."""
    months = ["1996-08-01", "1996-09-01"]
    result = detection.materialize(months, config={**MODEL_CONFIG, "online_learning": True})
    assert result.success
    stored = {month: detection.recorded(month)["model_version"] for month in months}
    assert stored["1996-08-01"] == stored["1996-09-01"]
    scores = detection.scores()
    versions = scores.groupby("month")["model_version"].unique().map(list).to_dict()
    assert versions["1996-08"] == [stored["1996-08-01"]]
    assert versions["1996-09"] == [f"{stored['1996-08-01']}+online.1"]
    refresh = {
        event.partition: event.metadata
        for event in result.asset_materializations_for_node("anomaly__transaction_scores")
    }
    admitted = refresh["1996-08-01"]["online_admitted_rows"].value
    assert 0 < admitted < (scores["month"] == "1996-08").sum()
    assert "online_admitted_rows" in refresh["1996-09-01"]


def test_a_batch_file_in_the_inbox_is_loaded_scored_and_settled(detection: Detection, tmp_path: Path) -> None:
    """The inbox path: new transactions of 1996-12, a month with no partition yet, in a PKDD'99 batch file get
    features and scores, and 1996-12 becomes a partition whose scores are recorded; the file has an unreadable
    line too, so it goes to failed/ with its reason, and its good rows are scored all the same."""
    header, *lines = (detection.output.parent / "source" / "trans.asc").read_text(encoding="latin-1").splitlines()
    december = [line.split(";") for line in lines if line.split(";")[2].startswith("9612")][:3]
    new = [";".join([str(9_000_001 + index), *fields[1:]]) for index, fields in enumerate(december)]
    inbox = tmp_path / "ads_inbox"
    inbox.mkdir()
    batch = inbox / "batch-1.asc"
    batch.write_text("\n".join([header, *new, "9000009;1;not-a-day"]) + "\n", encoding="latin-1")
    result = inbox_batch_job.execute_in_process(
        run_config={"ops": {"score_inbox_batch": {"config": {"path": str(batch)}}}},
        resources={**detection.resources, "dbt": dbt_resource()},
        instance=detection.instance,
    )
    assert result.success
    scores = detection.scores().set_index("trans_id")
    assert set(scores.loc[[9_000_001, 9_000_002, 9_000_003], "month"]) == {"1996-12"}
    assert scores.loc[[9_000_001, 9_000_002, 9_000_003], "score"].between(0, 1).all()
    assert month_keys(detection.instance)[-2:] == [MONTHS[-1], "1996-12-01"]
    recorded = detection.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SCORES_KEY, asset_partitions=["1996-12-01"]), limit=1
    ).records
    assert recorded[0].asset_materialization.metadata["dagster/row_count"].value == (scores["month"] == "1996-12").sum()
    assert not batch.exists()
    reason = (inbox / "failed" / "batch-1.asc.reason.txt").read_text()
    assert reason.startswith("1 of 4 lines quarantined")
    assert "the other 3 rows were loaded and scored" in reason
    assert "line 5: expected 10 fields, found 3" in reason
