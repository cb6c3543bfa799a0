"""The code location loads as one Definitions with one monthly partitioning that follows the data."""

from __future__ import annotations

import dagster as dg
import pytest

from ads_assets.defs.partitions import add_months, month_keys, monthly_partitions, months_between


@pytest.fixture
def definitions() -> dg.Definitions:
    from ads_assets.definitions import defs

    return defs


def test_definitions_validate_and_expose_every_raw_relation(definitions: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(definitions)
    keys = {key.to_user_string() for key in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert {
        f"raw/fin_{name}" for name in ("district", "account", "client", "disp", "order", "loan", "card", "trans")
    } <= keys


def test_partitioned_assets_share_the_growing_months_and_backfill_in_one_run(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    partitioned = [node for node in graph.asset_nodes if node.partitions_def is not None]
    assert {"raw/fin_trans", "marts/fct_transaction_features", "anomaly/transaction_scores"} <= {
        node.key.to_user_string() for node in partitioned
    }
    assert all(node.partitions_def == monthly_partitions for node in partitioned)
    assert all(node.backfill_policy == dg.BackfillPolicy.single_run() for node in partitioned)


def test_months_are_added_gapless_and_listed_in_calendar_order() -> None:
    with dg.instance_for_test() as instance:
        assert add_months(instance, ["1994-04", "1994-02"]) == ["1994-02-01", "1994-03-01", "1994-04-01"]
        assert add_months(instance, ["1994-03-17"]) == []
        assert add_months(instance, ["1994-06"]) == ["1994-05-01", "1994-06-01"]
        assert add_months(instance, ["1993-12"]) == ["1993-12-01", "1994-01-01"]
        assert month_keys(instance) == months_between("1993-12", "1994-06")
        assert len(month_keys(instance)) == 7


def test_main_job_selects_every_asset(definitions: dg.Definitions) -> None:
    job = definitions.resolve_job_def("ads_full")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} >= {
        "raw/fin_trans",
        "raw/fin_account",
    }
