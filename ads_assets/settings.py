"""Every ADS setting, read from the environment in one place."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

DEFAULT_HOME = ".ads"
DEFAULT_OUTPUT = "ads_output"
DEFAULT_MONTHS = ("1993-01", "1998-12")
STATE_FILE = "state.json"

DEFAULT_ACCOUNTS = 4500
DEFAULT_ANOMALY_RATE = 0.005
DEFAULT_SEED = 1999
"""The data set `ads run` generates when no source is given (and `ads generate`'s defaults)."""

ENVIRONMENT_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("ADS_HOME", DEFAULT_HOME, "local state: embedded Postgres, models, generated data, dbt files, logs"),
    (
        "ADS_DATABASE_URL",
        "embedded Postgres in $ADS_HOME/pgdata",
        "an external Postgres, postgresql://user@host:5432/db (TLS required unless ?sslmode= says otherwise)",
    ),
    ("ADS_SOURCE", "generated data in $ADS_HOME/generated", "the Berka source: a folder or a database URL"),
    ("ADS_OUTPUT", f"./{DEFAULT_OUTPUT}", "published outputs: a folder or s3://bucket/prefix"),
    ("ADS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL, else AWS", "the endpoint of an S3-compatible store"),
    ("AWS_ACCESS_KEY_ID, …", "the usual AWS chain", "credentials (and AWS_REGION) of an s3:// output"),
    ("ADS_S3_KMS_KEY_ID", "the AWS-managed key aws/s3", "the KMS key of S3 outputs and model files (SSE-KMS)"),
    ("ADS_MONTHS", "the span of the data", "the months added as partitions and covered by ads run, YYYY-MM:YYYY-MM"),
    (
        "ADS_PLAUSIBLE_FROM",
        "the earliest account's opening",
        "the first plausible date, YYYY-MM-DD: rows dated before it or after today are quarantined",
    ),
    (
        "ADS_MODEL_SIGNING_KEY",
        "a key file in $ADS_HOME/keys",
        "the secret (32+ characters) that signs model files; set the same one where hosts share models",
    ),
    (
        "ADS_MASKING_KEY",
        "derived from the model signing key",
        "the secret (32+ characters) that keys the pseudonyms of the analyst views",
    ),
    (
        "ADS_LOADER_PASSWORD, …",
        "unset: no login but on the embedded Postgres",
        "passwords of the roles ads_loader, ads_scorer, ads_analyst (ADS_SCORER_PASSWORD, ADS_ANALYST_PASSWORD)",
    ),
    ("ADS_LABELS", "$ADS_HOME/labels", "the labels inbox: its *.csv files are applied by the next run"),
    ("ADS_INBOX", "./ads_inbox", "the transactions inbox: batch files dropped there are scored under ads dev"),
    ("ADS_INBOX_S3", "unset: no S3 inbox", "an S3 inbox, s3://bucket/prefix: batch objects there are scored too"),
    ("ADS_KINESIS_STREAM", "unset: no stream", "a Kinesis stream of transactions, scored in micro-batches"),
    ("ADS_KINESIS_ENDPOINT_URL", "AWS_ENDPOINT_URL, else AWS", "the endpoint of a Kinesis-compatible service"),
    ("ADS_LOCK_TIMEOUT", "0", "seconds a run waits for another run on the same ADS_HOME before refusing"),
    ("ADS_ALERT_WEBHOOK", "unset: alerts are logged only", "a Slack-compatible webhook URL for alerts (a secret)"),
    ("ADS_CLOUDWATCH_NAMESPACE", "unset: no CloudWatch", "the CloudWatch namespace the run's metrics go to"),
    ("ADS_CLOUDWATCH_ENDPOINT_URL", "AWS_ENDPOINT_URL, else AWS", "the endpoint of a CloudWatch-compatible service"),
    ("DAGSTER_HOME", "$ADS_HOME/dagster", "Dagster's home (its dagster.yaml points storage at the ADS Postgres)"),
)
"""(variable, default, meaning) of the settings, for `ads --help` and the README."""

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SettingsError(ValueError):
    """A setting, an option or the source is unusable; the message is one line for the user."""


PLAUSIBLE_FROM_VARIABLE = "ADS_PLAUSIBLE_FROM"


def plausible_from_env() -> date | None:
    """ADS_PLAUSIBLE_FROM, the first date a record may carry (None when unset); SettingsError unless YYYY-MM-DD."""
    value = os.environ.get(PLAUSIBLE_FROM_VARIABLE, "").strip()
    if not value:
        return None
    if _DAY.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise SettingsError(f"bad {PLAUSIBLE_FROM_VARIABLE} {value!r}: expected a date YYYY-MM-DD, e.g. 1993-01-01")


@dataclass(frozen=True)
class Settings:
    """ADS settings: `ADS_HOME`, `ADS_DATABASE_URL`, `ADS_SOURCE`, `ADS_OUTPUT`, `ADS_MONTHS`.

    The monthly span falls back to that of the last load (kept in `ADS_HOME/state.json`): the months `ads run`
    covers and adds as partitions; `ads dev` also reuses the last run's source and output from there.
    """

    home: Path
    database_url: str | None
    source: str | None
    output: str
    months: tuple[str, str]
    plausible_from: date | None = None
    """ADS_PLAUSIBLE_FROM: rows dated before it are quarantined (None: from the earliest account's opening)."""
    alert_webhook: str | None = field(default=None, repr=False)
    """ADS_ALERT_WEBHOOK: the Slack-compatible webhook alerts are posted to (None: logged only); a secret."""
    cloudwatch_namespace: str | None = None
    """ADS_CLOUDWATCH_NAMESPACE: the CloudWatch namespace of the run's metrics (None: not sent)."""

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("ADS_HOME", DEFAULT_HOME)).expanduser().resolve()
        state = load_state(home)
        months = os.environ.get("ADS_MONTHS") or state.get("months")
        return cls(
            home=home,
            database_url=os.environ.get("ADS_DATABASE_URL") or None,
            source=os.environ.get("ADS_SOURCE") or None,
            output=os.environ.get("ADS_OUTPUT") or str(Path(DEFAULT_OUTPUT).resolve()),
            months=parse_months(months) if months else DEFAULT_MONTHS,
            plausible_from=plausible_from_env(),
            alert_webhook=os.environ.get("ADS_ALERT_WEBHOOK") or None,
            cloudwatch_namespace=os.environ.get("ADS_CLOUDWATCH_NAMESPACE") or None,
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

    @property
    def logs(self) -> Path:
        """Logs of `ads run`: Dagster's, dbt's and Great Expectations' own output, one file per run."""
        return self.home / "logs"

    @property
    def dbt_target(self) -> Path:
        """dbt's target folder (manifest, saved parse, one folder per dbt invocation); never the source tree."""
        return self.home / "dbt" / "target"

    @property
    def dbt_logs(self) -> Path:
        return self.home / "dbt" / "logs"


def parse_months(value: str) -> tuple[str, str]:
    """`YYYY-MM:YYYY-MM` (or one `YYYY-MM`) → (first month, last month)."""
    start, _, end = value.partition(":")
    return start.strip(), (end or start).strip()


def check_months(value: str, what: str = "months") -> tuple[str, str]:
    """`parse_months`, refusing anything but two YYYY-MM months in order, with a one-line SettingsError."""
    start, end = parse_months(value)
    if not (_MONTH.match(start) and _MONTH.match(end)):
        raise SettingsError(f"bad {what} {value!r}: expected YYYY-MM:YYYY-MM, e.g. 1997-01:1997-03")
    if start > end:
        raise SettingsError(f"bad {what} {value!r}: {start} is after {end}")
    return start, end


def load_state(home: Path) -> dict[str, str]:
    state_file = home / STATE_FILE
    if not state_file.exists():
        return {}
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def record_state(home: Path, **values: str) -> None:
    """Remember source, output and months of the last run, so `ads dev` opens on the same state."""
    home.mkdir(parents=True, exist_ok=True)
    state = load_state(home) | values
    (home / STATE_FILE).write_text(json.dumps(state, indent=2))
