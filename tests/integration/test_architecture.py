"""The layering of docs/ARCHITECTURE.md holds: `lint-imports` keeps every contract in pyproject.toml
(core -> strategies -> engine -> families -> policies -> tools, and no cycles between siblings)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is missing; install the test extra: pip install -e '.[test]'")
    result = subprocess.run(
        [lint_imports, str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
