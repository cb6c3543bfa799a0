"""The bridge to Great Expectations 1.x: validate a suite inside Postgres and read back what each expectation saw.

A table validates whole; a monthly suite validates one calendar month at a time through a query batch
on its date column, so the filtering and aggregation run in the database. Expectations with a
`meta.slice` run on a query batch of their own, the batch's rows of that slice; their results are
merged into one validation result per batch. Results come back as plain Python objects with every
expectation's check, severity and observed values.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ads_assets.lib.db import PostgresTarget
from ads_assets.lib.quality.suites import Batch, Severity, Slice, SuiteSpec, build_gx_suite, expectation_slice

DATASOURCE = "ads"
MAX_LISTED_VALUES = 20


def jsonable(value: Any) -> Any:
    """`value` with dates, decimals and numpy scalars turned into JSON types."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


@dataclass(frozen=True)
class ExpectationOutcome:
    """What one expectation saw on one batch."""

    index: int
    type: str
    check: str
    severity: Severity
    column: str | None
    success: bool
    observed: Any
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    notes: str | None = None
    condition: str | None = None

    def describe(self) -> str:
        if self.column:
            where = f" where {self.condition}" if self.condition else ""
            return f"{self.column}: {self.type}{where}"
        return f"{self.type} ({self.notes})" if self.notes else self.type

    def as_json(self) -> dict[str, Any]:
        return {
            "expectation": self.describe(),
            "success": self.success,
            "observed": self.observed,
            **({"details": self.details} if self.details else {}),
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class CheckOutcome:
    """The expectations of one check on one batch."""

    check: str
    severity: Severity
    batch: str
    expectations: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(outcome.success for outcome in self.expectations)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.expectations if not outcome.success]

    def observed(self) -> dict[str, Any]:
        """Observed value of every expectation of the check, by its description."""
        return {outcome.describe(): outcome.observed for outcome in self.expectations}


@dataclass(frozen=True)
class SuiteOutcome:
    """One suite validated on one batch: overall success, per-expectation outcomes and the GX result document."""

    suite: str
    batch: str
    success: bool
    expectations: tuple[ExpectationOutcome, ...]
    written: int
    evaluated: int
    parameters: dict[str, Any]
    result: dict[str, Any]

    @property
    def complete(self) -> bool:
        """Every written expectation was evaluated (GX drops the ones it cannot build)."""
        return self.evaluated == self.written and len(self.expectations) == self.written

    def check(self, name: str) -> CheckOutcome:
        outcomes = tuple(outcome for outcome in self.expectations if outcome.check == name)
        if not outcomes:
            raise KeyError(f"suite {self.suite} has no check {name!r}")
        return CheckOutcome(check=name, severity=outcomes[0].severity, batch=self.batch, expectations=outcomes)

    def checks(self) -> dict[str, CheckOutcome]:
        return {name: self.check(name) for name in dict.fromkeys(outcome.check for outcome in self.expectations)}


def _error_message(exception_info: Mapping[str, Any] | None) -> str | None:
    if not exception_info:
        return None
    if "raised_exception" in exception_info:
        return exception_info.get("exception_message") if exception_info.get("raised_exception") else None
    messages = [
        info.get("exception_message")
        for info in exception_info.values()
        if isinstance(info, Mapping) and info.get("raised_exception")
    ]
    return "; ".join(str(message) for message in messages) or None


def _observed(result: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    details: dict[str, Any] = {}
    if "observed_value" in result:
        observed = result["observed_value"]
    elif "unexpected_count" in result:
        observed = {
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_percent": result.get("unexpected_percent"),
            "element_count": result.get("element_count"),
        }
    else:
        observed = None
    if result.get("partial_unexpected_list"):
        details["unexpected_values"] = list(result["partial_unexpected_list"])[:MAX_LISTED_VALUES]
    unexpected_rows = (result.get("details") or {}).get("unexpected_rows")
    if unexpected_rows:
        details["unexpected_rows"] = list(unexpected_rows)[:MAX_LISTED_VALUES]
    return jsonable(observed), jsonable(details)


def _condition(row_condition: Any) -> str | None:
    """A row condition as `column == value` (GX keeps it as a Condition object or its dict)."""
    if not row_condition:
        return None
    if hasattr(row_condition, "to_dict"):
        row_condition = row_condition.to_dict()
    if isinstance(row_condition, Mapping) and {"column", "operator", "parameter"} <= row_condition.keys():
        column = row_condition["column"]
        name = column.get("name") if isinstance(column, Mapping) else getattr(column, "name", column)
        return f"{name} {row_condition['operator']} {row_condition['parameter']!r}"
    return str(row_condition)


def _slice_condition(cut: Slice) -> str | None:
    return " and ".join(f"{column} == {value!r}" for column, value in cut) or None


def _outcomes(validation: Any) -> list[ExpectationOutcome]:
    outcomes = []
    for result in validation.results:
        configuration = result.expectation_config
        meta = configuration.meta or {}
        observed, details = _observed(result.result or {})
        cut = expectation_slice({"meta": meta})
        outcomes.append(
            ExpectationOutcome(
                index=int(meta.get("index", len(outcomes))),
                type=configuration.type,
                check=meta["check"],
                severity=Severity(meta["severity"]),
                column=configuration.kwargs.get("column"),
                success=bool(result.success),
                observed=observed,
                details=details,
                error=_error_message(result.exception_info),
                notes=meta.get("notes"),
                condition=_condition(configuration.kwargs.get("row_condition")) or _slice_condition(cut),
            )
        )
    return sorted(outcomes, key=lambda outcome: outcome.index)


def _sql_literal(value: str | int) -> str:
    """A slice value as an SQL literal."""
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def month_label(month: date) -> str:
    return f"{month:%Y-%m}"


RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 0,
}
"""Counts and percentages for column expectations (no row dumps); query expectations keep their rows."""


def _saw_nothing(observed: Any) -> bool:
    """An observed value computed from no rows: None, or quantiles that are all None."""
    if isinstance(observed, Mapping) and "values" in observed:
        return all(value is None for value in observed["values"])
    return observed is None


def _empty_batch_passes(result: Any) -> bool:
    """An expectation marked `empty_batch: pass` that saw no rows at all (e.g. no VYBER in an early month)."""
    meta = result.expectation_config.meta or {}
    observed = (result.result or {}).get("observed_value")
    element_count = (result.result or {}).get("element_count")
    raised = _error_message(result.exception_info) is not None
    return meta.get("empty_batch") == "pass" and not raised and _saw_nothing(observed) and element_count in (None, 0)


def _merge(validations: list[Any], suite: str) -> Any:
    """One validation result of `suite` holding the results of every slice's validation, in suite order."""
    merged = validations[0]
    evaluated = sum(int(validation.statistics["evaluated_expectations"]) for validation in validations)
    merged.results = sorted(
        (result for validation in validations for result in validation.results),
        key=lambda result: int((result.expectation_config.meta or {}).get("index", 0)),
    )
    merged.suite_name = suite
    merged.statistics["evaluated_expectations"] = evaluated
    return merged


def _settle_empty_batches(validation: Any) -> None:
    for result in validation.results:
        if not result.success and _empty_batch_passes(result):
            result.success = True
            result.result = {**(result.result or {}), "observed_value": None, "details": {"rows": 0}}
    successful = sum(1 for result in validation.results if result.success)
    validation.success = successful == len(validation.results)
    validation.statistics.update(
        {
            "successful_expectations": successful,
            "unsuccessful_expectations": len(validation.results) - successful,
            "success_percent": 100.0 * successful / len(validation.results) if validation.results else None,
        }
    )


class GxValidator:
    """An ephemeral GX context with one SQL data source on the ADS database; validates suites in-database.

    A whole-table suite validates a table asset. A monthly suite validates a query asset per window,
    `SELECT * FROM table WHERE date >= first AND date < end`, so Postgres reads the month through the
    date index instead of scanning the table for every metric. The expectations of a slice validate a
    query asset with the slice's conditions added, e.g. `... AND type = 'PRIJEM'`.
    """

    def __init__(self, target: PostgresTarget):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.datasource = self.context.data_sources.add_sql(
            DATASOURCE, connection_string=target.sqlalchemy_url("psycopg2")
        )
        self._suites: dict[str, Any] = {}
        self._batches: dict[str, Any] = {}

    def _suite(self, spec: SuiteSpec, cut: Slice, indices: list[int]) -> Any:
        name = spec.name + "".join(f"[{column}={value}]" for column, value in cut)
        if name not in self._suites:
            self._suites[name] = self.context.suites.add(build_gx_suite(spec, name, indices))
        return self._suites[name]

    def _batch_definition(self, spec: SuiteSpec, window: tuple[date, date] | None, cut: Slice = ()) -> Any:
        """The batch of `spec`'s table: whole, or the rows of `window` and of the slice `cut`, as a query."""
        name = spec.name
        conditions = [f"{column} = {_sql_literal(value)}" for column, value in cut]
        if window is not None:
            column = spec.meta.get("date_column", "date")
            name += f"@{window[0]:%Y-%m-%d}..{window[1]:%Y-%m-%d}"
            conditions = [
                f"{column} >= {_sql_literal(window[0].isoformat())}",
                f"{column} < {_sql_literal(window[1].isoformat())}",
                *conditions,
            ]
        name += "".join(f"[{column}={value}]" for column, value in cut)
        if name not in self._batches:
            if not conditions:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    asset = self.datasource.add_table_asset(name, table_name=spec.table, schema_name=spec.schema)
            else:
                query = f"SELECT * FROM {spec.qualified_table} WHERE {' AND '.join(conditions)}"  # noqa: S608 - GX query assets take no parameters: values quoted by _sql_literal, identifiers from suite specs
                asset = self.datasource.add_query_asset(name, query=query)
            self._batches[name] = asset.add_batch_definition_whole_table("batch")
        return self._batches[name]

    def validate(
        self,
        spec: SuiteSpec,
        window: tuple[date, date] | None = None,
        parameters: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> SuiteOutcome:
        """Validate `spec` on its whole table, or (monthly suites) on the days [first, end) of `window`."""
        from great_expectations.validator.v1_validator import Validator

        if (spec.batch is Batch.MONTH) != (window is not None):
            raise ValueError(f"suite {spec.name} is batched by {spec.batch.value}; window={window}")
        validations = [
            Validator(
                batch_definition=self._batch_definition(spec, window, cut),
                batch_parameters=None,
                result_format=RESULT_FORMAT,
            ).validate_expectation_suite(self._suite(spec, cut, indices), dict(parameters or {}))
            for cut, indices in spec.slices().items()
        ]
        validation = _merge(validations, spec.name)
        _settle_empty_batches(validation)
        validation.meta["batch"] = label or ("all" if window is None else f"{window[0]}..{window[1]}")
        return SuiteOutcome(
            suite=spec.name,
            batch=label or ("all" if window is None else f"{window[0]:%Y-%m}"),
            success=bool(validation.success),
            expectations=tuple(_outcomes(validation)),
            written=spec.written,
            evaluated=int(validation.statistics["evaluated_expectations"]),
            parameters=jsonable(dict(parameters or {})),
            result=json.loads(json.dumps(validation.to_json_dict(), default=str)),
        )

    def validate_month(self, spec: SuiteSpec, month: date, parameters: Mapping[str, Any] | None = None) -> SuiteOutcome:
        """Validate one calendar month of a monthly suite; the batch is labelled YYYY-MM."""
        first = month.replace(day=1)
        end = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return self.validate(spec, (first, end), parameters, label=month_label(first))
