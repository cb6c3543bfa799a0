"""Every ADS setting, read from the environment in one place."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MONTHS = ("1993-01", "1998-12")
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Settings:
    """ADS settings: `ADS_HOME`, `ADS_DATABASE_URL`, `ADS_SOURCE`, `ADS_OUTPUT`, `ADS_MONTHS`.

    The monthly span falls back to that of the last load (kept in `ADS_HOME/state.json`), so the UI shows
    the partitions the data has; `ads dev` also reuses the last run's source and output from there.
    """

    home: Path
    database_url: str | None
    source: str | None
    output: str
    months: tuple[str, str]

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("ADS_HOME", ".ads")).expanduser().resolve()
        state = load_state(home)
        months = os.environ.get("ADS_MONTHS") or state.get("months")
        return cls(
            home=home,
            database_url=os.environ.get("ADS_DATABASE_URL") or None,
            source=os.environ.get("ADS_SOURCE") or None,
            output=os.environ.get("ADS_OUTPUT") or str(Path("ads_output").resolve()),
            months=parse_months(months) if months else DEFAULT_MONTHS,
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


def parse_months(value: str) -> tuple[str, str]:
    """`YYYY-MM:YYYY-MM` → (first month, last month)."""
    start, _, end = value.partition(":")
    return start.strip(), (end or start).strip()


def load_state(home: Path) -> dict[str, str]:
    state_file = home / STATE_FILE
    return json.loads(state_file.read_text()) if state_file.exists() else {}


def record_state(home: Path, **values: str) -> None:
    """Remember source, output and months of the last run, so `ads dev` opens on the same state."""
    home.mkdir(parents=True, exist_ok=True)
    state = load_state(home) | values
    (home / STATE_FILE).write_text(json.dumps(state, indent=2))
