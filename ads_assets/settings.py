"""Every ADS setting, read from the environment in one place."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MONTHS = ("1993-01", "1998-12")
SPAN_FILE = "partition_span.json"


@dataclass(frozen=True)
class Settings:
    """ADS settings: `ADS_HOME`, `ADS_DATABASE_URL`, `ADS_SOURCE`, `ADS_OUTPUT`, `ADS_MONTHS`."""

    home: Path
    database_url: str | None
    source: str | None
    output: str
    months: tuple[str, str]

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("ADS_HOME", ".ads")).expanduser().resolve()
        return cls(
            home=home,
            database_url=os.environ.get("ADS_DATABASE_URL") or None,
            source=os.environ.get("ADS_SOURCE") or None,
            output=os.environ.get("ADS_OUTPUT") or str(Path("ads_output").resolve()),
            months=_months_from_env(home),
        )

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else self.home / "dagster"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def generated_data(self) -> Path:
        return self.home / "generated"

    @property
    def models(self) -> Path:
        return self.home / "models"


def _months_from_env(home: Path) -> tuple[str, str]:
    """The monthly partition span: `ADS_MONTHS=YYYY-MM:YYYY-MM`, else the span of the last load, else 1993-01..1998-12."""
    if value := os.environ.get("ADS_MONTHS"):
        start, _, end = value.partition(":")
        return start.strip(), end.strip()
    span_file = home / SPAN_FILE
    if span_file.exists():
        span = json.loads(span_file.read_text())
        return span["start"], span["end"]
    return DEFAULT_MONTHS


def record_span(home: Path, start: str, end: str) -> None:
    """Remember the months the loaded data covers, so `ads dev` shows the same partitions as `ads run`."""
    home.mkdir(parents=True, exist_ok=True)
    (home / SPAN_FILE).write_text(json.dumps({"start": start, "end": end}))
