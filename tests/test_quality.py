"""Data quality against the real embedded Postgres: GX suites in-database, volume, freshness, Data Docs, blocking.

The clean batch is the real PKDD'99 data with the transactions of 1993; each corruption is applied to a
copy of that database and must fail the check meant for it.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from ads_assets.lib.berka.formats import detect_source
from ads_assets.lib.berka.schema import LOAD_ORDER, RELATIONS
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.ingest import MonthWindow, load_relation
from ads_assets.lib.quality import GxValidator, Severity, Span, evaluate_relation, raw_suite_specs
from ads_assets.lib.quality.parameters import date_parameters, table_parameters
from ads_assets.lib.quality.report import publish_quality_report
from ads_assets.lib.quality.store import CHECK_RESULTS_TABLE
from ads_assets.lib.quality.suites import (
    EXPECTATIONS_DIR,
    FEATURE_SUITE,
    Batch,
    SuiteError,
    build_gx_suite,
    load_suite_spec,
    suite_path,
)
from ads_assets.lib.storage import OutputStore

SPAN = Span(date(1993, 1, 1), date(1994, 1, 1))
CLEAN_MONTHS = [date(1993, month, 1) for month in range(7, 13)]
CORRUPT_MONTH = date(1993, 10, 1)
OCTOBER = "date >= '1993-10-01' AND date < '1993-11-01'"


@pytest.fixture(scope="module")
def clean_template(postgres_target: PostgresTarget, real_berka: Path) -> Iterator[PostgresTarget]:
    """A database holding the real relations and the 1993 transactions; only ever copied, never validated."""
    sources = detect_source(real_berka / "pkdd99")
    with temporary_database(postgres_target, "q") as template:
        with connect(template) as connection:
            for name in LOAD_ORDER[:-1]:
                load_relation(connection, sources[name])
            load_relation(connection, sources["trans"], MonthWindow(SPAN.first, SPAN.end))
        yield template


@pytest.fixture
def copy_of_clean(postgres_target: PostgresTarget, clean_template: PostgresTarget) -> Iterator[PostgresTarget]:
    with temporary_database(postgres_target, "q", template=clean_template.dbname) as target:
        yield target


def _execute(target: PostgresTarget, *statements: str) -> None:
    with connect(target, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def test_suites_follow_the_canonical_schema_and_mark_every_severity() -> None:
    specs = raw_suite_specs()
    assert set(specs) == set(RELATIONS)
    for name, spec in specs.items():
        relation = RELATIONS[name]
        assert spec.qualified_table == f"raw.{relation.table}"
        assert spec.batch is (Batch.MONTH if relation.partition_column else Batch.TABLE)
        columns = next(e for e in spec.expectations if e["type"] == "expect_table_columns_to_match_set")
        assert columns["kwargs"]["column_set"] == list(relation.column_names)
        for column in relation.columns:
            if column.codes:
                in_set = [e for e in spec.expectations_of("codes") if e["kwargs"]["column"] == column.name]
                assert [sorted(column.codes)] == [e["kwargs"]["value_set"] for e in in_set]
        assert {spec.checks[check] for check in ("schema", "keys")} == {Severity.BLOCKING}
        if relation.parents:
            assert spec.checks["referential"] is Severity.BLOCKING
        assert spec.checks["values"] is Severity.WARN
    assert specs["trans"].checks["ledger"] is Severity.WARN
    assert specs["trans"].checks["distribution"] is Severity.WARN
    feature = load_suite_spec(suite_path(FEATURE_SUITE))
    assert len(build_gx_suite(feature).expectations) == feature.written
    assert {path.stem for path in EXPECTATIONS_DIR.glob("*.json")} == {*(s.name for s in specs.values()), FEATURE_SUITE}


def test_sliced_expectations_are_grouped_and_a_bad_slice_is_refused(tmp_path: Path) -> None:
    spec = raw_suite_specs()["trans"]
    slices = spec.slices()
    assert list(slices) == [(), (("type", "PRIJEM"),), (("type", "VYBER"),), (("type", "VYDAJ"),)]
    assert sorted(index for indices in slices.values() for index in indices) == list(range(spec.written))
    assert {
        spec.expectations[index]["meta"]["check"] for cut, indices in slices.items() if cut for index in indices
    } == {"distribution"}
    assert all("row_condition" not in expectation["kwargs"] for expectation in spec.expectations)

    document = json.loads(spec.path.read_text())
    document["expectations"][-1]["meta"]["slice"] = {"type; DROP TABLE x": "PRIJEM"}
    broken = tmp_path / "raw.fin_trans.json"
    broken.write_text(json.dumps(document))
    with pytest.raises(SuiteError, match="meta.slice"):
        load_suite_spec(broken)


FEATURE_STAND_IN = f"""
CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE marts.fct_transaction_features AS
SELECT trans_id, account_id, date AS trans_date, date_trunc('month', date)::date AS trans_month,
    CASE type WHEN 'PRIJEM' THEN 'credit' WHEN 'VYDAJ' THEN 'debit' ELSE 'cash_withdrawal' END AS transaction_type,
    CASE WHEN type = 'PRIJEM' THEN 1 ELSE -1 END AS direction, amount,
    balance AS balance_after, 'none'::text AS card_type, 'none'::text AS loan_status,
    extract(day FROM date)::int AS day_of_month, extract(isodow FROM date)::int AS day_of_week,
    extract(month FROM date)::int AS month_of_year, 0::numeric AS ledger_gap
FROM raw.fin_trans WHERE {OCTOBER}
"""


def test_feature_suite_evaluates_every_expectation_and_flags_ledger_gaps(copy_of_clean: PostgresTarget) -> None:
    """The feature-table suite against a stand-in with the mart's columns (the dbt model builds the real one)."""
    spec = load_suite_spec(suite_path(FEATURE_SUITE))
    _execute(copy_of_clean, FEATURE_STAND_IN)
    validator = GxValidator(copy_of_clean)
    clean = validator.validate_month(spec, CORRUPT_MONTH, table_parameters(SPAN) | date_parameters(SPAN, CORRUPT_MONTH))
    assert clean.success, [e for e in clean.expectations if not e.success]
    assert clean.evaluated == clean.written == len(json.loads(spec.path.read_text())["expectations"])

    _execute(copy_of_clean, "UPDATE marts.fct_transaction_features SET ledger_gap = 100 WHERE trans_id % 20 = 0")
    broken = validator.validate_month(spec, CORRUPT_MONTH, date_parameters(SPAN, CORRUPT_MONTH))
    assert [check for check, outcome in broken.checks().items() if not outcome.success] == ["ledger"]
    assert broken.check("ledger").expectations[0].observed["unexpected_percent"] > 2


def test_clean_batch_passes_every_check_and_publishes_the_report(copy_of_clean: PostgresTarget, tmp_path: Path) -> None:
    """Every check of every relation passes on the clean months, each suite evaluates all it holds."""
    validator = GxValidator(copy_of_clean)
    failures = {}
    for name in LOAD_ORDER:
        quality = evaluate_relation(copy_of_clean, name, "clean-run", SPAN, CLEAN_MONTHS, validator=validator)
        assert quality.complete, name
        for outcome in quality.outcomes:
            written = len(json.loads(quality.spec.path.read_text())["expectations"])
            assert outcome.evaluated == outcome.written == written == len(outcome.expectations), name
            assert [e for e in outcome.expectations if e.error] == []
        failures |= {f"{name}.{check}": e.observed for check, e in quality.checks.items() if not e.success}
    assert failures == {}

    trans = quality.checks
    assert set(trans) == {
        "schema",
        "keys",
        "codes",
        "referential",
        "values",
        "ledger",
        "distribution",
        "volume_monthly",
        "volume_daily",
        "freshness",
    }
    assert trans["volume_monthly"].observed["scored"] == len(CLEAN_MONTHS)
    assert trans["distribution"].observed["batches"] == len(CLEAN_MONTHS)
    assert trans["freshness"].observed["age_hours"] < 1

    report = publish_quality_report(copy_of_clean, "clean-run", OutputStore(str(tmp_path)))
    assert report.index == (tmp_path / "quality" / "index.html").resolve()
    assert report.index.is_file() and report.url == report.index.as_uri()
    assert report.validations == len(LOAD_ORDER) - 1 + len(CLEAN_MONTHS)
    assert len(list((tmp_path / "quality" / "validations").rglob("*.html"))) == report.validations
    assert report.failed == []
    with connect(copy_of_clean) as connection:
        rows = connection.execute(
            f"SELECT asset, partition, check_name, success, observed FROM {CHECK_RESULTS_TABLE} "
            "WHERE run_id = 'clean-run' AND check_name = 'keys' AND asset = 'raw/fin_trans' ORDER BY partition"
        ).fetchall()
    assert [row[1] for row in rows] == [month.isoformat() for month in CLEAN_MONTHS]
    assert all(row[3] for row in rows)
    assert rows[0][4]["observed"]["trans_id: expect_column_values_to_be_unique"]["element_count"] > 0


class PageLinks(HTMLParser):
    """The pages an HTML page links to by relative path."""

    def __init__(self) -> None:
        super().__init__()
        self.links: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "href" and value and not urlsplit(value).scheme and urlsplit(value).path.endswith(".html"):
                self.links.add(urlsplit(value).path)


TABLE_ROW_LINK = re.compile(r"'_table_row_link_path': '([^']+\.html)'")
"""How a Data Docs index links its validation results: as row links of a script-rendered table."""


def linked_pages(store: OutputStore, key: str) -> set[str]:
    """The keys of the pages that the page at `key` links to, resolved against its folder."""
    page = store.read_bytes(key).decode("utf-8")
    parser = PageLinks()
    parser.feed(page)
    links = parser.links | set(TABLE_ROW_LINK.findall(page))
    return {posixpath.normpath(posixpath.join(posixpath.dirname(key), unquote(link))) for link in links}


def test_report_publishes_browsable_data_docs_to_s3(copy_of_clean: PostgresTarget, s3: Any, s3_bucket: str) -> None:
    """On an s3:// output the Data Docs are uploaded with their Content-Types, and every page they link exists."""
    validator = GxValidator(copy_of_clean)
    evaluate_relation(copy_of_clean, "account", "s3-run", SPAN, validator=validator)
    evaluate_relation(copy_of_clean, "trans", "s3-run", SPAN, [CORRUPT_MONTH], validator=validator)
    store = OutputStore(f"s3://{s3_bucket}/runs/ads")

    report = publish_quality_report(copy_of_clean, "s3-run", store)

    assert report.url == f"s3://{s3_bucket}/runs/ads/quality/index.html" and report.index is None
    keys = set(store.location.list("quality"))
    assert len(keys) == report.files and "quality/index.html" in keys
    head = s3.head_object(Bucket=s3_bucket, Key="runs/ads/quality/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    pages = linked_pages(store, "quality/index.html")
    validation_pages = {key for key in pages if key.startswith("quality/validations/")}
    assert len(validation_pages) == report.validations == 2
    assert {key for key in pages if key.startswith("quality/expectations/")}
    assert pages <= keys, pages - keys
    for page in validation_pages:
        links = linked_pages(store, page)
        assert "quality/index.html" in links and links <= keys
    styles = [key for key in keys if key.endswith(".css")]
    assert styles and s3.head_object(Bucket=s3_bucket, Key=f"runs/ads/{styles[0]}")["ContentType"].startswith(
        "text/css"
    )

    stale = "quality/validations/left-over.html"
    store.write_text(stale, "<html></html>")
    again = publish_quality_report(copy_of_clean, "s3-run", store)
    assert set(store.location.list("quality")) == keys and again.files == report.files


CORRUPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "null key": (
        (
            "ALTER TABLE raw.fin_trans ALTER COLUMN trans_id DROP NOT NULL",
            f"UPDATE raw.fin_trans SET trans_id = NULL WHERE trans_id = (SELECT min(trans_id) FROM raw.fin_trans WHERE {OCTOBER})",
        ),
        "keys",
    ),
    "unknown code": (
        (
            f"UPDATE raw.fin_trans SET operation = 'VYBER KARTOU2' WHERE trans_id = "
            f"(SELECT max(trans_id) FROM raw.fin_trans WHERE {OCTOBER} AND operation IS NOT NULL)",
        ),
        "codes",
    ),
    "duplicated month": ((f"INSERT INTO raw.fin_trans SELECT * FROM raw.fin_trans WHERE {OCTOBER}",), "keys"),
    "orphan account": (
        (
            "DROP INDEX raw.fin_account_account_id_key",
            f"DELETE FROM raw.fin_account WHERE account_id = (SELECT min(account_id) FROM raw.fin_trans WHERE {OCTOBER})",
        ),
        "referential",
    ),
    "run of broken balances": (
        (f"UPDATE raw.fin_trans SET balance = balance + 1000 WHERE {OCTOBER} AND account_id % 10 < 3",),
        "ledger",
    ),
    "month with half its volume": (
        (f"DELETE FROM raw.fin_trans WHERE {OCTOBER} AND trans_id % 2 = 0",),
        "volume_monthly",
    ),
    "amounts in the wrong unit": (
        (f"UPDATE raw.fin_trans SET amount = amount * 10 WHERE {OCTOBER} AND type = 'VYDAJ'",),
        "distribution",
    ),
    "schema drift": (("ALTER TABLE raw.fin_trans ADD COLUMN channel text",), "schema"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_each_corruption_fails_the_check_meant_for_it(corruption: str, copy_of_clean: PostgresTarget) -> None:
    statements, check = CORRUPTIONS[corruption]
    _execute(copy_of_clean, *statements)
    quality = evaluate_relation(copy_of_clean, "trans", f"corrupt-{check}", SPAN, [CORRUPT_MONTH])

    evaluation = quality.checks[check]
    assert not evaluation.success
    assert evaluation.severity is RELATION_SEVERITY[check]
    assert evaluation.observed
    if evaluation.records and evaluation.check not in ("volume_daily", "freshness"):
        assert any(
            record.partition == CORRUPT_MONTH.isoformat() and not record.success for record in evaluation.records
        )
    assert quality.complete


def test_a_few_fraudulent_amounts_are_not_a_data_quality_warning(copy_of_clean: PostgresTarget) -> None:
    """Five of October's largest credits posted ×100 (over 1,000,000): the detectors' job, not a corrupted batch."""
    _execute(
        copy_of_clean,
        f"UPDATE raw.fin_trans SET amount = amount * 100 WHERE trans_id IN (SELECT trans_id FROM raw.fin_trans "
        f"WHERE {OCTOBER} AND type = 'PRIJEM' ORDER BY amount DESC LIMIT 5)",
    )
    quality = evaluate_relation(
        copy_of_clean, "trans", "outliers", SPAN, [CORRUPT_MONTH], selected={"values", "distribution"}
    )

    assert {check: evaluation.success for check, evaluation in quality.checks.items()} == {
        "values": True,
        "distribution": True,
    }
    observed = quality.checks["values"].observed["observed"]["1993-10"]["amount: expect_column_values_to_be_between"]
    assert observed["unexpected_count"] == 5
    assert quality.complete


RELATION_SEVERITY = {
    "schema": Severity.BLOCKING,
    "keys": Severity.BLOCKING,
    "codes": Severity.BLOCKING,
    "referential": Severity.BLOCKING,
    "ledger": Severity.WARN,
    "distribution": Severity.WARN,
    "volume_monthly": Severity.WARN,
}


def test_volume_flags_a_gap_and_freshness_a_stale_load(copy_of_clean: PostgresTarget) -> None:
    _execute(
        copy_of_clean,
        "DELETE FROM raw.fin_trans WHERE date = '1993-10-12'",
        "UPDATE raw.load_audit SET finished_at = finished_at - interval '3 days'",
    )
    quality = evaluate_relation(
        copy_of_clean, "trans", "gap", SPAN, [CORRUPT_MONTH], selected={"volume_daily", "freshness"}
    )
    daily = quality.checks["volume_daily"]
    assert not daily.success
    assert {"period": "1993-10-12", "flag": "gap"}.items() <= daily.observed["flagged"][0].items()
    freshness = quality.checks["freshness"]
    assert not freshness.success and freshness.observed["age_hours"] > 70


@pytest.fixture
def quality_definitions(tmp_path: Path) -> Callable:
    """Build Definitions of the raw assets, their quality checks, the report and a stand-in scoring asset."""
    import dagster as dg

    from ads_assets.defs.ingest.assets import raw_asset_key, raw_assets
    from ads_assets.defs.partitions import monthly_partitions
    from ads_assets.defs.quality import quality_assets, quality_checks
    from ads_assets.defs.resources import (
        AlertsResource,
        BerkaSourceResource,
        MetricsResource,
        OutputStoreResource,
        PostgresResource,
    )

    @dg.asset(
        key=["scores", "stand_in"],
        deps=[raw_asset_key("trans")],
        partitions_def=monthly_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def stand_in_scores() -> None:
        """Stands in for features and scoring downstream of raw/fin_trans."""

    def build(target: PostgresTarget, source: Path) -> tuple[list, dict]:
        resources = {
            "postgres": PostgresResource(pgdata=str(tmp_path / "unused"), database_url=target.sqlalchemy_url()),
            "berka_source": BerkaSourceResource(location=str(source)),
            "output_store": OutputStoreResource(root=str(tmp_path / "output")),
            "metrics": MetricsResource(),
            "alerts": AlertsResource(),
        }
        return [*raw_assets, *quality_assets, stand_in_scores, *quality_checks], resources

    return build


def test_blocking_failure_stops_downstream_assets_in_dagster(
    quality_definitions: Callable, postgres_target: PostgresTarget, real_berka: Path, tmp_path: Path
) -> None:
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from ads_assets.defs.partitions import add_months
    from ads_assets.lib.raw_schema import ensure_raw_schema

    with temporary_database(postgres_target, "q") as target:
        definitions, resources = quality_definitions(target, real_berka / "pkdd99")
        tags = {ASSET_PARTITION_RANGE_START_TAG: "1993-11-01", ASSET_PARTITION_RANGE_END_TAG: "1993-12-01"}
        with dg.DagsterInstance.ephemeral() as instance:
            add_months(instance, ["1993-11", "1993-12"])
            clean = dg.materialize(definitions, instance=instance, resources=resources, tags=tags, raise_on_error=False)
            assert clean.success
            evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in clean.get_asset_check_evaluations()}
            blocking = [e for e in evaluations.values() if e.blocking]
            assert blocking and all(e.passed for e in blocking)
            assert evaluations[("raw/fin_trans", "keys")].metadata["observed"].data["batches"] == 2
            assert clean.asset_materializations_for_node("scores__stand_in")
            report = clean.asset_materializations_for_node("quality__report")[0].metadata
            assert Path(report["data_docs_path"].path).is_file()
            assert report["data_docs"].url.startswith("file://")

            with connect(target) as connection, connection.cursor() as cursor:
                ensure_raw_schema(cursor)
                cursor.execute("ALTER TABLE raw.fin_trans ADD COLUMN channel text")
            corrupt = dg.materialize(
                definitions,
                instance=instance,
                resources=resources,
                tags=tags,
                raise_on_error=False,
                selection=dg.AssetSelection.assets(["raw", "fin_trans"], ["scores", "stand_in"], ["quality", "report"]),
            )
            assert not corrupt.success
            failed = [e for e in corrupt.get_asset_check_evaluations() if not e.passed]
            assert ("raw/fin_trans", "schema", True) in {
                (e.asset_key.to_user_string(), e.check_name, e.blocking) for e in failed
            }
            assert not corrupt.asset_materializations_for_node("scores__stand_in")
            assert not corrupt.asset_materializations_for_node("quality__report")
            with connect(target) as connection:
                alerts = connection.execute(
                    "SELECT severity, subject, details->>'check' FROM anomaly.alerts WHERE kind = 'data_quality'"
                ).fetchall()
                (pass_rate,) = connection.execute(
                    "SELECT value FROM ops.metrics WHERE run_id = %s AND stage = 'quality.fin_trans' "
                    "AND name = 'pass_rate'",
                    (corrupt.run_id,),
                ).fetchone()
            assert ("critical", "raw/fin_trans 1993-11..1993-12", "schema") in alerts
            assert 0 < pass_rate < 1
            schema = next(e for e in failed if e.check_name == "schema")
            assert Path(schema.metadata["data_docs"].url.removeprefix("file://")).is_file()
