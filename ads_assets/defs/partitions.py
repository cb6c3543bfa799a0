"""The one monthly partitioning shared by every partitioned ADS asset."""

from datetime import date

import dagster as dg

from ads_assets.settings import Settings


def month_start(month: str) -> date:
    year, month_number = month.split("-")[:2]
    return date(int(year), int(month_number), 1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def partition_months(context: dg.AssetExecutionContext) -> list[date]:
    """The first days of the months of the run's partition window, in order."""
    window = context.partition_time_window
    months, month = [], window.start.date()
    while month < window.end.date():
        months.append(month)
        month = next_month(month)
    return months


def monthly_partitions_for(start_month: str, end_month: str) -> dg.MonthlyPartitionsDefinition:
    """Monthly partitions from `start_month` through `end_month` inclusive (YYYY-MM)."""
    return dg.MonthlyPartitionsDefinition(
        start_date=month_start(start_month).isoformat(),
        end_date=next_month(month_start(end_month)).isoformat(),
    )


monthly_partitions = monthly_partitions_for(*Settings.from_env().months)
