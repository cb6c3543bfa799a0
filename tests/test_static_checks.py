"""CI's static checks: ruff, with the bandit security rules (`S`), is clean, and each security exception says why."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECURITY_EXCEPTION = re.compile(r"#\s*noqa:\s*(S\d+(?:,\s*S\d+)*)(.*)$")


def test_ruff_with_the_security_rules_is_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed: it comes with the dev extra (pip install -e '.[dev]')")
    checked = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO)  # noqa: S603 - ruff from PATH on the repository
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_security_exception_is_justified_inline() -> None:
    unjustified = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("ads_assets", "benchmarks")
        for path in (REPO / folder).rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if (match := SECURITY_EXCEPTION.search(line)) and len(match.group(2).strip(" -–:")) < 10
    ]
    assert unjustified == []
