"""GX Data Docs: static HTML of the suites and of validation results, built into a folder that works offline.

Great Expectations renders pages that load Bootstrap, jQuery, bootstrap-table, Font Awesome and more from
CDNs, so they render blank without a network. After the build every page is pointed at the copies in
`data_docs_static/` (bundled with ADS, see its LICENSES.md), copied to the site's `static/vendor/`; the
vega chart scripts, which no ADS expectation uses, are dropped, and so is any other remote script or
stylesheet a newer GX might add. Every validation result carries its run's name and time.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ads_assets.lib.quality.store import StoredValidation
from ads_assets.lib.quality.suites import SuiteSpec, build_gx_suite

SITE_NAME = "ads_quality"
SITE_MARKER = ".ads-data-docs"
BUNDLED_ASSETS = Path(__file__).resolve().parent / "data_docs_static"
VENDOR_FOLDER = "static/vendor"

_CDN_FILES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), local)
    for pattern, local in (
        (r"https://maxcdn\.bootstrapcdn\.com/bootstrap/4\.3\.1/css/bootstrap\.min\.css", "css/bootstrap.min.css"),
        (r"https://stackpath\.bootstrapcdn\.com/bootstrap/4\.3\.1/js/bootstrap\.min\.js", "js/bootstrap.min.js"),
        (r"https://code\.jquery\.com/jquery-3\.7\.1\.min\.js", "js/jquery-3.7.1.min.js"),
        (r"https://cdnjs\.cloudflare\.com/ajax/libs/popper\.js/1\.12\.9/umd/popper\.min\.js", "js/popper.min.js"),
        (r"https://unpkg\.com/bootstrap-table@1\.19\.1/dist/bootstrap-table\.min\.js", "js/bootstrap-table.min.js"),
        (r"https://unpkg\.com/bootstrap-table@1\.19\.1/dist/bootstrap-table\.min\.css", "css/bootstrap-table.min.css"),
        (
            r"https://unpkg\.com/bootstrap-table@1\.19\.[01]/dist/extensions/filter-control/"
            r"bootstrap-table-filter-control(?:\.min)?\.js",
            "js/bootstrap-table-filter-control.min.js",
        ),
        (
            r"https://unpkg\.com/bootstrap-table@1\.19\.[01]/dist/extensions/filter-control/"
            r"bootstrap-table-filter-control(?:\.min)?\.css",
            "css/bootstrap-table-filter-control.min.css",
        ),
        (
            r"https://cdnjs\.cloudflare\.com/ajax/libs/bootstrap-datepicker/1\.9\.0/css/bootstrap-datepicker\.min\.css",
            "css/bootstrap-datepicker.min.css",
        ),
        (
            r"https://cdnjs\.cloudflare\.com/ajax/libs/bootstrap-datepicker/1\.9\.0/js/bootstrap-datepicker\.min\.js",
            "js/bootstrap-datepicker.min.js",
        ),
        (
            r"https://cdn\.jsdelivr\.net/npm/@forevolve/bootstrap-dark@1\.1\.0/dist/css/bootstrap-prefers-dark(?:\.min)?\.css",
            "css/bootstrap-prefers-dark.min.css",
        ),
        (
            r"https://cdnjs\.cloudflare\.com/ajax/libs/font-awesome/6\.6\.0/css/all\.min\.css",
            "fontawesome/css/all.min.css",
        ),
    )
)
"""The CDN files Data Docs load, and their bundled copies below `data_docs_static/`."""
_GX_IMAGES = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[\w.-]+\.(?:png|svg)[^'\")\s]*"
)
"""GX's logo, loaded from its own bucket; the site's static/images/ has the same logo."""
_INTEGRITY = re.compile(r"""\s+(?:integrity|crossorigin)=("[^"]*"|'[^']*')""")
_REMOTE_SCRIPT = re.compile(r"""<script[^>]*\ssrc=["']https?://[^"']*["'][^>]*>\s*</script>\s*""", re.IGNORECASE)
_REMOTE_STYLESHEET = re.compile(r"""<link[^>]*\shref=["']https?://[^"']*["'][^>]*>\s*""", re.IGNORECASE)


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
        context.validation_results_store.set(key, schema.load(named_result(validation, evaluated_at)))
    context.build_data_docs(site_names=[SITE_NAME])
    make_offline(folder)
    return folder / "index.html"


def named_result(validation: StoredValidation, evaluated_at: datetime) -> dict[str, Any]:
    """The validation result document with its run's name (the Dagster run id) and time in `meta.run_id`.

    The stored documents have none, so Data Docs showed "Run Name __none__" on every page.
    """
    result = dict(validation.result)
    meta = dict(result.get("meta") or {})
    meta["run_id"] = {"run_name": validation.run_id, "run_time": evaluated_at.isoformat()}
    result["meta"] = meta
    return result


def make_offline(folder: Path) -> list[str]:
    """Point every page of the site in `folder` at bundled copies of its CDN assets; returns what was dropped.

    The copies go to `{folder}/static/vendor/`; each page links them by a path relative to itself, so the
    site works from a file:// URL, from S3 and after being moved.
    """
    vendor = folder / VENDOR_FOLDER
    shutil.copytree(BUNDLED_ASSETS, vendor, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    dropped: set[str] = set()
    for page in folder.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        prefix = os.path.relpath(vendor, page.parent).replace(os.sep, "/")
        images = os.path.relpath(folder / "static" / "images" / "logo-long.png", page.parent).replace(os.sep, "/")
        for pattern, local in _CDN_FILES:
            text = pattern.sub(f"{prefix}/{local}", text)
        text = _GX_IMAGES.sub(images, text)
        text = _INTEGRITY.sub("", text)
        for remote in (_REMOTE_SCRIPT, _REMOTE_STYLESHEET):
            dropped |= {re.sub(r"\s+", " ", match).strip() for match in remote.findall(text)}
            text = remote.sub("", text)
        page.write_text(text, encoding="utf-8")
    for stylesheet in (folder / "static").rglob("*.css"):
        if vendor not in stylesheet.parents:
            text = stylesheet.read_text(encoding="utf-8")
            images = os.path.relpath(folder / "static" / "images" / "logo-long.png", stylesheet.parent)
            stylesheet.write_text(_GX_IMAGES.sub(images.replace(os.sep, "/"), text), encoding="utf-8")
    return sorted(dropped)
