"""GX Data Docs: static HTML of the suites and of a run's validation results, built into a folder."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ads_assets.lib.quality.store import StoredValidation
from ads_assets.lib.quality.suites import SuiteSpec, build_gx_suite

SITE_NAME = "ads_quality"
SITE_MARKER = ".ads-data-docs"


def _clear(folder: Path) -> None:
    """Empty a previous build; refuses a non-empty folder that is not one (so it never deletes other files)."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / SITE_MARKER).exists():
            raise FileExistsError(f"{folder} holds files that are not ADS Data Docs; not overwriting them")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SITE_MARKER).write_text("GX Data Docs built by ADS; the folder is replaced by every build.\n")


def build_data_docs(folder: Path, suites: Iterable[SuiteSpec], validations: Iterable[StoredValidation]) -> Path:
    """Replace `folder` with Data Docs of `suites` and `validations`; returns the index page."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    folder = folder.resolve()
    _clear(folder)
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
        },
    )
    for spec in suites:
        context.suites.add(build_gx_suite(spec))
    schema = ExpectationSuiteValidationResultSchema()
    for validation in validations:
        evaluated_at = validation.evaluated_at or datetime.now(UTC)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=validation.suite),
            run_id=RunIdentifier(run_name=validation.run_id, run_time=evaluated_at),
            batch_identifier=validation.batch,
        )
        context.validation_results_store.set(key, schema.load(validation.result))
    context.build_data_docs(site_names=[SITE_NAME])
    return folder / "index.html"
