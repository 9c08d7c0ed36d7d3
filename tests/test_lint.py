"""The code, the tests and the platform adapters that run on functions are linted as Python
(pyflakes and syntax errors, configured in pyproject.toml): an unused import or an undefined name
fails here, not on a platform."""

from __future__ import annotations

import subprocess

from helpers import ROOT, require_tool


def test_ruff_finds_nothing():
    ruff = require_tool("ruff")
    result = subprocess.run([ruff, "check", "--no-cache", "generator", "tests", "scripts", "bench", "setup.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
