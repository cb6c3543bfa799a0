"""Shared fixtures: a real embedded Postgres per test session and the real Berka files when present."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SESSION_ROOT = Path(tempfile.mkdtemp(prefix="ads-tests-"))
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["ADS_HOME"] = str(SESSION_ROOT / "ads_home")
os.environ["DAGSTER_HOME"] = str(SESSION_ROOT / "dagster_home")
os.environ.setdefault("XDG_RUNTIME_DIR", str(SESSION_ROOT / "runtime"))
for variable in ("ADS_DATABASE_URL", "ADS_SOURCE", "ADS_OUTPUT", "ADS_MONTHS"):
    os.environ.pop(variable, None)

pytest_plugins = ["tests.s3_server", "tests.end_to_end"]

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_BERKA = REPO_ROOT.parent / "shared" / "data" / "berka"


@pytest.fixture(scope="session")
def real_berka() -> Path:
    """The real PKDD'99 files beside the repository (../shared/data/berka), or skip."""
    if not (REAL_BERKA / "pkdd99").is_dir() or not (REAL_BERKA / "teradata").is_dir():
        pytest.skip(f"real Berka files not found at {REAL_BERKA} (expected pkdd99/ and teradata/ there)")
    return REAL_BERKA


@pytest.fixture(scope="session")
def postgres_target():
    """A real Postgres 16 (pgserver) for the whole session."""
    from ads_assets.lib.db import embedded_postgres

    return embedded_postgres(SESSION_ROOT / "pgdata")


@pytest.fixture
def fresh_database(postgres_target) -> Iterator:
    """A new empty database on the session's server, dropped afterwards."""
    from ads_assets.lib.db import temporary_database

    with temporary_database(postgres_target) as target:
        yield target
