"""The local ADS environment shared by `ads run` and `ads dev`: Postgres, Dagster's home and the data source."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.db import PostgresTarget, resolve_target
from ads_assets.settings import Settings, record_state

STORAGE_URL_VARIABLE = "ADS_DAGSTER_STORAGE_URL"
DATASET_MARKER = "dataset.json"

DAGSTER_YAML = f"""\
storage:
  postgres:
    postgres_url:
      env: {STORAGE_URL_VARIABLE}
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
telemetry:
  enabled: false
"""


DEFAULT_DATASET = GeneratorConfig(seed=1999, anomaly_rate=0.005)
"""What `ads run` generates when no source is given: 4,500 accounts, 1993-01..1998-12, 0.5 % anomalies."""


@dataclass(frozen=True)
class Environment:
    settings: Settings
    postgres: PostgresTarget
    source: str


def prepare_environment(source: str | None = None, output: str | None = None) -> Environment:
    """Start or attach to Postgres, point Dagster's storage at it and fix the source and partition span.

    Sets the ADS_* variables that the code location reads, so it must run before definitions load.
    """
    if output:
        os.environ["ADS_OUTPUT"] = output if "://" in output else str(Path(output).resolve())
    if source:
        os.environ["ADS_SOURCE"] = source if "://" in source else str(Path(source).resolve())
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ["ADS_HOME"] = str(settings.home)
    postgres = resolve_target(settings.database_url, settings.pgdata)
    _prepare_dagster_home(settings, postgres)
    resolved_source = settings.source or str(ensure_default_dataset(settings.generated_data))
    os.environ["ADS_SOURCE"] = resolved_source
    os.environ["ADS_OUTPUT"] = settings.output
    record_state(settings.home, source=resolved_source, output=settings.output)
    return Environment(settings=settings, postgres=postgres, source=resolved_source)


def fix_partition_span(settings: Settings, start: str, end: str) -> None:
    """Record the months the data covers; the code location builds its partitions from them."""
    months = f"{start}:{end}"
    record_state(settings.home, months=months)
    os.environ["ADS_MONTHS"] = months


def _prepare_dagster_home(settings: Settings, postgres: PostgresTarget) -> None:
    dagster_home = settings.dagster_home.resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ[STORAGE_URL_VARIABLE] = postgres.sqlalchemy_url("psycopg2")


def ensure_default_dataset(folder: Path, config: GeneratorConfig = DEFAULT_DATASET) -> Path:
    """Generate the data set of `config` into `folder` unless the same one is already there."""
    marker = folder / DATASET_MARKER
    wanted = asdict(config)
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    data = generate(config)
    write_dataset(data, folder, "asc")
    marker.write_text(json.dumps(wanted))
    return folder
