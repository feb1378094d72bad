"""The CI skip gate, on a throwaway test session in a child pytest: in CI a skip fails the
run unless it is allowed with a reason; outside CI a skip is only a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ci_gate import allowed

ROOT = Path(__file__).resolve().parents[2]

TESTS = '''
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("no such server here")

@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    assert False
'''


def _session(tmp_path: Path, *, ci: str | None, allow: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_x.py").write_text(TESTS)
    (tmp_path / "conftest.py").write_text(
        "from tests.support import ci_gate\n"
        f"ci_gate.ALLOWED_SKIPS.update({allow or {}!r})\n"
        "def pytest_configure(config):\n"
        "    ci_gate.install(config)\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the gate needs pytest alone; faster
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_in_ci_a_skip_fails_the_run_and_is_named(tmp_path: Path, ci: str) -> None:
    run = _session(tmp_path, ci=ci)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "not on ALLOWED_SKIPS" in run.stdout
    assert "test_x.py::test_skips: Skipped: no such server here" in run.stdout
    assert "test_expected_to_fail" not in run.stdout.split("ALLOWED_SKIPS")[-1]


def test_in_ci_an_allowed_skip_passes(tmp_path: Path) -> None:
    run = _session(tmp_path, ci="true", allow={"test_x.py::test_skips": "a documented reason"})
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_a_skip_is_only_a_skip(tmp_path: Path, ci: str | None) -> None:
    run = _session(tmp_path, ci=ci)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ALLOWED_SKIPS" not in run.stdout


def test_a_prefix_allows_a_file_or_a_parametrised_family_only() -> None:
    allow = {"tests/a.py::test_b": "why", "tests/c.py": "why"}
    assert allowed("tests/a.py::test_b", allow)
    assert allowed("tests/a.py::test_b[sqlite]", allow)
    assert allowed("tests/c.py::test_anything", allow)
    assert not allowed("tests/a.py::test_bb", allow)
    assert not allowed("tests/a.py::test_c", allow)
