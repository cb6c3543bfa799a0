"""The dbt project and its parsed manifest, prepared wherever the code location loads (CLI, tests, CI, UI)."""

import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
SOURCE_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_change(project: DbtProject) -> float:
    files = [project.project_dir / "dbt_project.yml"]
    for folder in SOURCE_FOLDERS:
        files.extend(path for path in (project.project_dir / folder).rglob("*") if path.is_file())
    return max(path.stat().st_mtime for path in files if path.exists())


def ensure_manifest(project: DbtProject = dbt_project) -> Path:
    """Run `dbt parse` when the manifest is missing or older than any model, macro or test."""
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_change(project):
        return manifest
    environment = {"ADS_PG_HOST": "localhost", **os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt) if dbt.exists() else "dbt", "parse", "--quiet"]
    command += ["--project-dir", str(project.project_dir), "--profiles-dir", str(project.profiles_dir)]
    command += ["--target-path", str(project.target_path)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0 or not manifest.exists():
        raise RuntimeError(f"dbt parse failed for {project.project_dir}:\n{result.stdout}\n{result.stderr}")
    return manifest
