"""The executor of runs launched from the Dagster UI (`ads dev`): Dagster's default one, holding the run lock.

A run's steps execute while its run worker holds the ADS run lock of ADS_HOME (`ads_assets.lib.locking`), so a
UI run and an `ads run` on the same state never overlap: the later one waits up to ADS_LOCK_TIMEOUT seconds,
then fails naming the holder. A run whose every asset is month-partitioned holds only its months (and the state
shared), so runs of different months, each its own run, go side by side. `ads run` executes in process
(`execute_in_process` replaces this executor) and holds the lock itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster._core.definitions.executor_definition import multi_or_in_process_executor
from dagster._core.executor.base import Executor

from ads_assets.defs.run_scope import run_months
from ads_assets.lib.db import PostgresTarget
from ads_assets.lib.locking import run_lock
from ads_assets.settings import Settings


class LockedExecutor(Executor):
    """An executor that holds the ADS run lock while `inner` executes the plan."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[dg.DagsterEvent]:
        settings = Settings.from_env()
        months = run_months(plan_context.job.get_definition(), plan_context.dagster_run)
        what = f"Dagster run {plan_context.run_id}" + (f" of {', '.join(months)}" if months else "")
        with run_lock(settings, what, months=months) as lock:
            lock.notify = plan_context.log.info
            if settings.database_url:
                lock.lock_database(PostgresTarget.from_url(settings.database_url).conninfo())
            yield from self.inner.execute(plan_context, execution_plan)

    @property
    def retries(self) -> Any:
        return self.inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self.inner.step_dependency_config


def _locked_executor(init_context: dg.InitExecutorContext) -> Executor:
    return LockedExecutor(multi_or_in_process_executor.executor_creation_fn(init_context))


locked_executor = dg.ExecutorDefinition(
    name="ads_locked",
    config_schema=multi_or_in_process_executor.config_schema,
    requirements=multi_or_in_process_executor.get_requirements,
    executor_creation_fn=_locked_executor,
    description="Dagster's default executor (multiprocess, or in process), holding the ADS run lock of ADS_HOME.",
)
