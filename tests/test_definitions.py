"""The code location loads as one Definitions with one monthly partitioning that follows the data."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest


@pytest.fixture
def definitions(monkeypatch) -> dg.Definitions:
    monkeypatch.setenv("ADS_MONTHS", "1994-02:1995-01")
    import ads_assets.definitions as module
    import ads_assets.defs.dbt.assets as dbt_assets
    import ads_assets.defs.detection.assets as detection_assets
    import ads_assets.defs.detection.selection as selection_assets
    import ads_assets.defs.ingest.assets as ingest_assets
    import ads_assets.defs.partitions as partitions

    modules_using_partitions = (partitions, ingest_assets, dbt_assets, selection_assets, detection_assets, module)
    for loaded in modules_using_partitions:
        importlib.reload(loaded)
    yield module.defs
    monkeypatch.delenv("ADS_MONTHS")
    for loaded in modules_using_partitions:
        importlib.reload(loaded)


def test_definitions_validate_and_expose_every_raw_relation(definitions: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(definitions)
    keys = {key.to_user_string() for key in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert {
        f"raw/fin_{name}" for name in ("district", "account", "client", "disp", "order", "loan", "card", "trans")
    } <= keys


def test_partitioned_assets_share_one_monthly_span_and_backfill_in_one_run(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    partitioned = [node for node in graph.asset_nodes if node.partitions_def is not None]
    assert partitioned
    assert all(node.partitions_def == partitioned[0].partitions_def for node in partitioned)
    assert {"raw/fin_trans", "marts/fct_transaction_features"} <= {node.key.to_user_string() for node in partitioned}
    keys = partitioned[0].partitions_def.get_partition_keys()
    assert (keys[0], keys[-1], len(keys)) == ("1994-02-01", "1995-01-01", 12)
    assert all(node.backfill_policy == dg.BackfillPolicy.single_run() for node in partitioned)


def test_main_job_selects_every_asset(definitions: dg.Definitions) -> None:
    job = definitions.resolve_job_def("ads_full")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} >= {
        "raw/fin_trans",
        "raw/fin_account",
    }
