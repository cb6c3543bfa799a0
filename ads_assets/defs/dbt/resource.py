"""The dbt CLI resource of the code location."""

from collections.abc import Sequence
from functools import cached_property

from dagster_dbt import DbtCliResource
from packaging import version

from ads_assets.defs.dbt.project import dbt_project


class AdsDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource without the work it does before every `dbt build` that ADS does
    not use (dagster-dbt and dbt-core are pinned in pyproject.toml).

    dagster-dbt learns the dbt executable's version by running `dbt --version` once per resource
    instance, that is once per run: a second start-up of dbt, about 4 CPU seconds. Here it is the
    installed dbt-core package's version, which is the executable's. It also opens a dbt adapter in
    the Dagster process for every invocation (loading dbt's macros, up to 3 CPU seconds in a fresh
    run process), which serves only `fetch_row_counts` / `fetch_column_metadata` and DuckDB; ADS
    uses none of them, so no adapter is opened (those calls would need it back).
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        from dbt.version import __version__

        return version.parse(__version__)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def dbt_resource() -> AdsDbtCliResource:
    """The resource that runs the ADS dbt project."""
    return AdsDbtCliResource(project_dir=dbt_project)
