"""Where the dbt project and the expectation suites are: in the package (a regular install) or the source tree.

A wheel carries both as package data under `ads_assets/_bundled/`; in the source tree (an editable
install, the tests) that folder links to `dbt_project/` and `expectations/` at the repository's top
level, and the top-level folders themselves are the fallback when the links are absent.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "_bundled"
SOURCE_ROOT = PACKAGE_DIR.parent


def bundled_folder(name: str, marker: str) -> Path:
    """The folder `name` that holds a file matching `marker`: the packaged copy, else the source tree's."""
    candidates = (BUNDLED_DIR / name, SOURCE_ROOT / name)
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob(marker)):
            return candidate.resolve()
    raise FileNotFoundError(
        f"no {name}/ with {marker} in {' or '.join(str(path) for path in candidates)}: the ADS install is incomplete"
    )


def dbt_project_dir() -> Path:
    """The dbt project (dbt_project.yml, profiles.yml, models, macros, tests)."""
    return bundled_folder("dbt_project", "dbt_project.yml")


def expectations_dir() -> Path:
    """The Great Expectations suites, one JSON file per suite."""
    return bundled_folder("expectations", "*.json")
