"""The one monthly partitioning shared by every partitioned ADS asset: months that grow with the data.

The partitions are dynamic (`months`, keys `YYYY-MM-01`): a month is added when data of it first arrives,
by `ads run` from the source's span, by the `new_months` sensor from a source or `raw.fin_trans` that grew,
and by an inbox batch that reaches a new month. Months are only ever added, never removed, so the months
already materialized stay as they were. `month_keys` lists them in calendar order whatever order they came in.
"""

from collections.abc import Iterable
from datetime import date

import dagster as dg

PARTITIONS_NAME = "months"
KEY_FORMAT = "%Y-%m-01"

monthly_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS_NAME)


def month_start(month: str) -> date:
    year, month_number = month.split("-")[:2]
    return date(int(year), int(month_number), 1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_key(month: date) -> str:
    """The partition key of the month of `month`."""
    return f"{month:{KEY_FORMAT}}"


def months_between(first: str, last: str) -> list[str]:
    """The partition keys of every month from `first` through `last` (YYYY-MM or YYYY-MM-DD) inclusive."""
    keys, month, end = [], month_start(first), month_start(last)
    while month <= end:
        keys.append(month_key(month))
        month = next_month(month)
    return keys


def month_keys(instance: dg.DagsterInstance) -> list[str]:
    """The month partitions the instance knows, in calendar order."""
    return sorted(instance.get_dynamic_partitions(PARTITIONS_NAME))


def missing_months(instance: dg.DagsterInstance, months: Iterable[str]) -> list[str]:
    """The partition keys of `months` (YYYY-MM…) and of the months between them and the known ones that the
    instance does not know yet: the span stays gapless, so a partition range is a range of months."""
    wanted = {month_key(month_start(month)) for month in months}
    if not wanted:
        return []
    known = set(month_keys(instance))
    span = sorted(wanted | known)
    return [key for key in months_between(span[0], span[-1]) if key not in known]


def add_months(instance: dg.DagsterInstance, months: Iterable[str]) -> list[str]:
    """Add the month partitions of `months` (and any gap to the known ones) to the instance; returns those added."""
    added = missing_months(instance, months)
    if added:
        instance.add_dynamic_partitions(PARTITIONS_NAME, added)
    return added


def partition_months(context: dg.AssetExecutionContext) -> list[date]:
    """The first days of the months of the run's partitions, in order."""
    return sorted(month_start(key) for key in context.partition_keys)


def partition_window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The first day of the run's first month and the first day after its last month."""
    months = partition_months(context)
    return months[0], next_month(months[-1])
