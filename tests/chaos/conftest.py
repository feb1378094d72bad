"""Prints the chaos tier's counts (faults injected, kills) per topology at the end of the
session."""

from __future__ import annotations

import json

import pytest

from tests.chaos.harness import REPORTS, by_topology


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("chaos tier")
    for topology, t in by_topology().items():
        terminalreporter.write_line(
            f"{topology}: faults that matter {t['faults_that_matter']} (and "
            f"{t['harmless_delays']} delays shorter than the client's timeout), kills "
            f"{t['kills']} (client {t['client_kills']}, stub {t['stub_kills']}); by kind "
            f"{json.dumps(t['faults_by_kind'])}")
    for name, figures in REPORTS.items():
        terminalreporter.write_line(f"{name}: {json.dumps(figures, default=str)}")
