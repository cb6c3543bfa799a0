"""The dbt project and its parsed manifest, prepared wherever the code location loads (CLI, tests, CI, UI)."""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
SOURCE_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots")
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PARTIAL_PARSE_PROFILE_FILE = "partial_parse.profile"
PROFILE_VARIABLES = ("ADS_PG_HOST", "ADS_PG_PORT", "ADS_PG_USER", "ADS_PG_DBNAME")
"""The environment variables of profiles.yml that dbt's saved parse depends on (not the password)."""

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_change(project: DbtProject) -> float:
    files = [project.project_dir / "dbt_project.yml"]
    for folder in SOURCE_FOLDERS:
        files.extend(path for path in (project.project_dir / folder).rglob("*") if path.is_file())
    return max(path.stat().st_mtime for path in files if path.exists())


def _target_folder(project: DbtProject) -> Path:
    return project.project_dir / project.target_path


def _dbt_parse(project: DbtProject, environment: Mapping[str, str], target_path: Path) -> None:
    """`dbt parse` of `project` into `target_path` with `environment`; RuntimeError when it fails."""
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt) if dbt.exists() else "dbt", "parse", "--quiet"]
    command += ["--project-dir", str(project.project_dir), "--profiles-dir", str(project.profiles_dir)]
    command += ["--target-path", str(target_path)]
    environment = {**environment, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0 or not (target_path / "manifest.json").exists():
        raise RuntimeError(f"dbt parse failed for {project.project_dir}:\n{result.stdout}\n{result.stderr}")


def ensure_manifest(project: DbtProject = dbt_project) -> Path:
    """Run `dbt parse` when the manifest is missing or older than any model, macro or test."""
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_change(project):
        return manifest
    _dbt_parse(project, {"ADS_PG_HOST": "localhost", **os.environ}, _target_folder(project))
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
    target = _target_folder(project)
    saved = target / PARTIAL_PARSE_FILE
    stamp = target / PARTIAL_PARSE_PROFILE_FILE
    profile = json.dumps({name: environment.get(name, "") for name in PROFILE_VARIABLES}, sort_keys=True)
    if saved.exists() and stamp.exists() and stamp.read_text() == f"{profile}\n{saved.stat().st_mtime_ns}":
        return
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix="parse-") as scratch:
        _dbt_parse(project, environment, Path(scratch))
        os.replace(Path(scratch) / PARTIAL_PARSE_FILE, saved)
    stamp.write_text(f"{profile}\n{saved.stat().st_mtime_ns}")
