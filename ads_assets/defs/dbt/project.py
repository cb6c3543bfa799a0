"""The dbt project and its parsed manifest, prepared wherever the code location loads (CLI, tests, CI, UI).

The project's files ship with the package (`ads_assets.bundled`); everything dbt writes (the manifest,
the saved parse, one folder per invocation, logs) goes to `$ADS_HOME/dbt/`, never into the project.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dagster_dbt import DbtProject

from ads_assets.bundled import dbt_project_dir
from ads_assets.settings import Settings

DBT_PROJECT_DIR = dbt_project_dir()
SOURCE_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots")
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PARTIAL_PARSE_PROFILE_FILE = "partial_parse.profile"
PROFILE_VARIABLES = ("ADS_PG_HOST", "ADS_PG_PORT", "ADS_PG_USER", "ADS_PG_DBNAME")
"""The environment variables of profiles.yml that dbt's saved parse depends on (not the password)."""
KEEP_INVOCATION_FOLDERS = 6
"""dagster-dbt writes a target folder per dbt invocation (4-5 MB each, two per run); the newest ones are kept."""
PARSE_SCRATCH_PREFIX = "parse-"


def ads_dbt_project(target: Path | None = None) -> DbtProject:
    """The ADS dbt project with its target folder in `target` (default `$ADS_HOME/dbt/target`)."""
    target = target or Settings.from_env().dbt_target
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=target)


dbt_project = ads_dbt_project()


def _newest_source_change(project: DbtProject) -> float:
    files = [project.project_dir / "dbt_project.yml"]
    for folder in SOURCE_FOLDERS:
        files.extend(path for path in (project.project_dir / folder).rglob("*") if path.is_file())
    return max(path.stat().st_mtime for path in files if path.exists())


def target_folder(project: DbtProject) -> Path:
    """The project's target folder as an absolute path."""
    return project.project_dir / project.target_path


def dbt_log_folder(project: DbtProject) -> Path:
    """Where dbt commands that ADS runs itself (`dbt parse`) write dbt.log: beside the target folder."""
    return target_folder(project).parent / "logs"


def prune_invocation_folders(project: DbtProject, keep: int = KEEP_INVOCATION_FOLDERS) -> list[Path]:
    """Remove all but the `keep` newest per-invocation folders of the target folder; returns those removed.

    The manifest, the saved parse and the scratch folders of a parse in progress are not touched.
    """
    target = target_folder(project)
    if not target.is_dir():
        return []
    folders = [
        path for path in target.iterdir() if path.is_dir() and not path.name.startswith((PARSE_SCRATCH_PREFIX, "."))
    ]
    folders.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    removed = folders[keep:]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def _dbt_parse(project: DbtProject, environment: Mapping[str, str], target_path: Path) -> None:
    """`dbt parse` of `project` into `target_path` with `environment`; RuntimeError when it fails."""
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt) if dbt.exists() else "dbt", "parse", "--quiet"]
    command += ["--project-dir", str(project.project_dir), "--profiles-dir", str(project.profiles_dir)]
    command += ["--target-path", str(target_path), "--log-path", str(dbt_log_folder(project))]
    environment = {**environment, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True)  # noqa: S603 - fixed dbt argv, no shell
    if result.returncode != 0 or not (target_path / "manifest.json").exists():
        raise RuntimeError(f"dbt parse failed for {project.project_dir}:\n{result.stdout}\n{result.stderr}")


def ensure_manifest(project: DbtProject = dbt_project) -> Path:
    """Run `dbt parse` when the manifest is missing or older than any model, macro or test."""
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_change(project):
        return manifest
    environment = {"ADS_PG_HOST": "localhost", **os.environ}
    target_folder(project).mkdir(parents=True, exist_ok=True)
    _dbt_parse(project, environment, target_folder(project))
    if os.environ.get("ADS_PG_HOST"):
        _stamp_partial_parse(project, environment)
    return manifest


def ensure_partial_parse(environment: Mapping[str, str], project: DbtProject = dbt_project) -> None:
    """Make the project's saved parse (target/partial_parse.msgpack) one made for the connection of
    `environment` (the ADS_PG_* variables), parsing once when it is not.

    dagster-dbt copies that file into the fresh target folder of every dbt run, and dbt throws it
    away, parsing the whole project again, when its connection profile (host, port, user,
    database) differs from the run's. The one `ensure_manifest` writes when the code location
    loads has a placeholder connection, since the Postgres resource is only known at run time.
    `partial_parse.profile` beside it records the connection and the file's modification time it
    was made for; the new file replaces the old one atomically.
    """
    target = target_folder(project)
    saved = target / PARTIAL_PARSE_FILE
    stamp = target / PARTIAL_PARSE_PROFILE_FILE
    if saved.exists() and stamp.exists() and stamp.read_text() == _stamp_text(environment, saved):
        return
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=PARSE_SCRATCH_PREFIX) as scratch:
        _dbt_parse(project, environment, Path(scratch))
        os.replace(Path(scratch) / PARTIAL_PARSE_FILE, saved)
    _stamp_partial_parse(project, environment)


def _stamp_text(environment: Mapping[str, str], saved: Path) -> str:
    profile = json.dumps({name: environment.get(name, "") for name in PROFILE_VARIABLES}, sort_keys=True)
    return f"{profile}\n{saved.stat().st_mtime_ns}"


def _stamp_partial_parse(project: DbtProject, environment: Mapping[str, str]) -> None:
    """Record that the saved parse in the target folder was made for the connection of `environment`.

    `ensure_manifest` parses with the real connection when the CLI set ADS_PG_* before the code location
    loaded, and stamps it, so the first dbt build of a fresh ADS_HOME does not parse the project again.
    """
    saved = target_folder(project) / PARTIAL_PARSE_FILE
    if saved.exists():
        (target_folder(project) / PARTIAL_PARSE_PROFILE_FILE).write_text(_stamp_text(environment, saved))
