"""The months a run is confined to: what lets runs of different months go side by side."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from ads_assets.defs.partitions import months_between


def run_months(job: dg.JobDefinition, run: dg.DagsterRun) -> list[str] | None:
    """The months (YYYY-MM) of a run whose every asset is month-partitioned: its partition or partition range;
    None for a run that materializes an unpartitioned asset too, or no asset (it holds the whole state)."""
    graph = job.asset_layer.asset_graph
    keys = job.asset_layer.selected_asset_keys
    if not keys or any(not graph.get(key).is_partitioned for key in keys):
        return None
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return [tags[PARTITION_NAME_TAG][:7]]
    if ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
        return [
            key[:7]
            for key in months_between(tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG])
        ]
    return None
