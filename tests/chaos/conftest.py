"""Prints the chaos tier's counts (faults injected, kills) at the end of the session."""

from __future__ import annotations

import json

import pytest

from tests.chaos.harness import REPORTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("chaos tier")
    faults = sum(int(r.get("faults_injected", 0)) for r in REPORTS.values())
    kills = sum(int(r.get("client_kills", 0)) + int(r.get("stub_kills", 0))
                for r in REPORTS.values())
    terminalreporter.write_line(f"faults injected: {faults}; kills (client + stub): {kills}")
    for name, figures in REPORTS.items():
        terminalreporter.write_line(f"{name}: {json.dumps(figures, default=str)}")
