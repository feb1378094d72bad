"""CI hides nothing: under ``CI=true`` a skipped test fails the run, unless it is on
``ALLOWED_SKIPS`` with the reason it may skip there.

A skip outside CI is fine (no browser, no PostgreSQL on a laptop); in CI every server and
tool is installed, so a skip means a test silently stopped testing. Installed by
``tests/conftest.py``; CI is read by ``services.in_ci`` like everywhere else.
"""

from __future__ import annotations

import pytest

from tests.support.services import in_ci

# Node id (or the prefix of a file, class or parametrised family: "tests/x.py",
# "tests/x.py::test_y") to the reason it may skip in CI. Empty: nothing may skip in CI
# today. Add an entry only with a reason a reviewer can check.
ALLOWED_SKIPS: dict[str, str] = {}


def allowed(nodeid: str, allow: dict[str, str]) -> bool:
    return any(nodeid == prefix or nodeid.startswith((prefix + "::", prefix + "["))
               for prefix in allow)


class SkipGate:
    """Collects every skip of the session; fails it if one is not allowed."""

    def __init__(self, allow: dict[str, str]) -> None:
        self.allow = allow
        self.skipped: list[tuple[str, str]] = []

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skipped.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def not_allowed(self) -> list[str]:
        """The skips not on the allow list, as ``nodeid: reason`` lines."""
        return [f"{nodeid}: {reason}" for nodeid, reason in self.skipped
                if not allowed(nodeid, self.allow)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.not_allowed() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        bad = self.not_allowed()
        if bad:
            terminalreporter.section("skipped in CI and not on ALLOWED_SKIPS "
                                     "(tests/support/ci_gate.py): the run fails", red=True)
            for line in bad:
                terminalreporter.write_line(line)


def install(config: pytest.Config) -> SkipGate | None:
    """Register the gate in CI (called from ``tests/conftest.py``'s ``pytest_configure``)."""
    if not in_ci():
        return None
    gate = SkipGate(ALLOWED_SKIPS)
    config.pluginmanager.register(gate, "ci-skip-gate")
    return gate
