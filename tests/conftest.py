"""Fixtures, and the rule that CI skips nothing: with MLGEN_REQUIRE_TOOLS=1 (set by .ci/run) a test
or module that would be skipped (a missing checker, an optional package not installed) fails
instead. Shared helpers are in helpers.py."""

from __future__ import annotations

import sys

import pytest

from helpers import REQUIRE_TOOLS, RUNTIME_SRC, free_port

# The runtime is copied into bundles as a top-level package; tests import it the same way.
if str(RUNTIME_SRC) not in sys.path:
    sys.path.insert(0, str(RUNTIME_SRC))


@pytest.fixture
def port() -> int:
    return free_port()


def pytest_collectreport(report) -> None:
    if REQUIRE_TOOLS and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_TOOLS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be: {report.longrepr}"
