"""The expectation suites kept as GX 1.x JSON in `expectations/`, and the checks they are grouped into.

Every expectation names, in its `meta`, the check it belongs to (`schema`, `keys`, `codes`,
`referential`, `values`, `ledger`, `distribution`) and that check's severity: `blocking` checks stop
downstream assets when they fail, `warn` checks only report. GX's own `severity` field mirrors it
(`critical` / `warning`) so Data Docs show the same thing.

An expectation with `meta.slice` (e.g. `{"type": "PRIJEM"}`) is validated on the rows of the batch where
those columns hold those values, as a query batch of its own: GX's median and quantile metrics fail
with row conditions under SQLAlchemy 2.1, and a query lets Postgres do the filtering.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ads_assets.bundled import expectations_dir
from ads_assets.lib.berka.schema import RELATIONS

EXPECTATIONS_DIR = expectations_dir()
FEATURE_SUITE = "marts.fct_transaction_features"


class SuiteError(ValueError):
    """A suite file that GX cannot build or that breaks the ADS conventions."""


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARN = "warn"

    @property
    def gx_severity(self) -> str:
        return "critical" if self is Severity.BLOCKING else "warning"


Slice = tuple[tuple[str, str | int], ...]
"""Column = value conditions that cut a slice of a batch, sorted by column; () is the whole batch."""


class Batch(StrEnum):
    """How a suite's table is cut for validation: whole, or one calendar month of its date column."""

    TABLE = "table"
    MONTH = "month"


@dataclass(frozen=True)
class SuiteSpec:
    """One suite file: the table it guards, how it is batched, its expectations and their checks."""

    name: str
    path: Path
    schema: str
    table: str
    batch: Batch
    expectations: tuple[dict[str, Any], ...]
    checks: dict[str, Severity] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def written(self) -> int:
        """How many expectations the file holds; validation must evaluate exactly as many."""
        return len(self.expectations)

    def expectations_of(self, check: str) -> list[dict[str, Any]]:
        return [expectation for expectation in self.expectations if expectation["meta"]["check"] == check]

    def slices(self) -> dict[Slice, list[int]]:
        """The indices of the expectations validated on each slice of a batch, the whole batch (`()`) first."""
        parts: dict[Slice, list[int]] = {}
        for index, expectation in enumerate(self.expectations):
            parts.setdefault(expectation_slice(expectation), []).append(index)
        return dict(sorted(parts.items(), key=lambda part: (len(part[0]), repr(part[0]))))


def expectation_slice(expectation: dict[str, Any]) -> Slice:
    """The slice an expectation is validated on, from its `meta.slice` mapping of column to value."""
    return tuple(sorted((expectation.get("meta") or {}).get("slice", {}).items()))


def suite_path(name: str, directory: Path = EXPECTATIONS_DIR) -> Path:
    return directory / f"{name}.json"


def raw_suite_name(relation_name: str) -> str:
    return f"raw.{RELATIONS[relation_name].table}"


def load_suite_spec(path: Path) -> SuiteSpec:
    """Read one suite file and check its conventions: every expectation has a check and one severity per check."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SuiteError(f"{path}: {error}") from error
    name = document.get("name")
    meta = document.get("meta") or {}
    table = meta.get("table") or name
    if not name or "." not in table:
        raise SuiteError(f"{path}: a suite needs a name and meta.table as schema.table")
    expectations = tuple(document.get("expectations") or ())
    if not expectations:
        raise SuiteError(f"{path}: no expectations")
    checks: dict[str, Severity] = {}
    for index, expectation in enumerate(expectations):
        expectation_meta = expectation.get("meta") or {}
        check, severity = expectation_meta.get("check"), expectation_meta.get("severity")
        if not check or severity not in {member.value for member in Severity}:
            raise SuiteError(
                f"{path}: expectation {index} ({expectation.get('type')}) lacks meta.check or meta.severity"
            )
        if checks.setdefault(check, Severity(severity)) is not Severity(severity):
            raise SuiteError(f"{path}: check {check!r} mixes severities")
        if expectation.get("severity", Severity(severity).gx_severity) != Severity(severity).gx_severity:
            raise SuiteError(
                f"{path}: expectation {index} has GX severity {expectation['severity']!r} but meta {severity}"
            )
        cut = expectation_meta.get("slice", {})
        if not isinstance(cut, dict) or not all(
            isinstance(column, str) and column.isidentifier() and isinstance(value, str | int)
            for column, value in cut.items()
        ):
            raise SuiteError(f"{path}: expectation {index} has a meta.slice that is not a column-to-value mapping")
    schema, _, table_name = table.partition(".")
    return SuiteSpec(
        name=name,
        path=path,
        schema=schema,
        table=table_name,
        batch=Batch(meta.get("batch", Batch.TABLE)),
        expectations=expectations,
        checks=checks,
        meta=meta,
    )


def raw_suite_specs(directory: Path = EXPECTATIONS_DIR) -> dict[str, SuiteSpec]:
    """The suite of every raw relation, by relation name."""
    return {name: load_suite_spec(suite_path(raw_suite_name(name), directory)) for name in RELATIONS}


def feature_suite_spec(directory: Path = EXPECTATIONS_DIR) -> SuiteSpec:
    return load_suite_spec(suite_path(FEATURE_SUITE, directory))


def build_gx_suite(spec: SuiteSpec, name: str | None = None, indices: list[int] | None = None) -> Any:
    """The GX ExpectationSuite of a spec (or of the expectations at `indices`), built one by one so none is dropped."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    indices = list(range(spec.written)) if indices is None else indices
    built = []
    for index in indices:
        expectation = spec.expectations[index]
        try:
            configuration = ExpectationConfiguration(
                type=expectation["type"],
                kwargs=expectation.get("kwargs") or {},
                meta={**expectation["meta"], "index": index},
                severity=expectation.get("severity", Severity(expectation["meta"]["severity"]).gx_severity),
            )
            built.append(configuration.to_domain_obj())
        except Exception as error:
            raise SuiteError(
                f"{spec.path}: expectation {index} ({expectation.get('type')}) cannot be built: {error}"
            ) from error
    suite = gx.ExpectationSuite(name=name or spec.name, expectations=built, meta=dict(spec.meta))
    if len(suite.expectations) != len(indices):
        raise SuiteError(f"{spec.path}: GX kept {len(suite.expectations)} of {len(indices)} expectations")
    return suite
