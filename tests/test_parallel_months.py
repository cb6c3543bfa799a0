"""Runs of different months go side by side: two month partitions of the scores, each its own run with the code
location's multiprocess executor, on one ADS state and its embedded Postgres."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from ads_assets.lib.storage import OutputStore
from tests.end_to_end import Parallel


def test_two_month_runs_overlap_and_both_publish_their_month(parallel: Parallel | None) -> None:
    if parallel is None:
        pytest.fail("the built pipeline failed: see test_cli")
    for result in parallel.results:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    runs = sorted(parallel.runs.values(), key=lambda run: run[1])
    assert [(status, partition) for status, partition, _, _ in runs] == [
        ("SUCCESS", f"{month}-01") for month in parallel.months
    ]
    (_, _, first_start, first_end), (_, _, second_start, second_end) = runs
    assert first_start < second_end and second_start < first_end, "the two month runs did not overlap"
    published = OutputStore(str(parallel.output)).read_table("transaction_scores", months=parallel.months)
    for month in parallel.months:
        assert parallel.scored_at[month] > parallel.started
        assert published.filter(pc.equal(published.column("month"), month)).num_rows == parallel.rows[month] > 0
