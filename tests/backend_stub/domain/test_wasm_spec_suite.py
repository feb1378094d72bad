"""The WebAssembly core test suite's binary-format files, run through ``validate_module``.

The ``.wast`` files live outside the project (``../shared/wasm-spec-tests/``, or where
``WASM_SPEC_TESTS`` says); Debian's ``wast2json`` (package ``wabt``) turns each into one
``.wasm`` per module and a JSON index of what each must do. Nothing generated is kept: the
index is read at collection (in a temporary directory, deleted at once) to name the cases,
and the modules are generated again for the session under pytest's tmp directory.

Every ``(module ...)`` must be valid; every binary ``assert_malformed`` (and
``assert_invalid``, if a file has any) must be refused. Text-format ``assert_malformed``
entries are wabt's own parse failures with no ``.wasm``: they are filtered out, not skipped.
A refused module may come out as ``feature_not_enabled``: what WebAssembly 2.0 calls
malformed can be valid under a later proposal (a limits flag of 4 is 64-bit memory, a
memory index other than 0 is multiple memories), and that is still a refusal here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from backend_stub.domain.wasm import FEATURE_NOT_ENABLED, REFUSED, VALID, validate_module
from tests.support.services import in_ci

ROOT = Path(__file__).resolve().parents[3]
MUST_ACCEPT = {"module"}
MUST_REFUSE = {"assert_malformed", "assert_invalid"}


def suite_dir() -> Path | None:
    configured = os.environ.get("WASM_SPEC_TESTS")
    if configured:
        return Path(configured)
    for parent in ROOT.parents:  # ../shared beside the clone (CI) or a worktree's ancestor
        candidate = parent / "shared" / "wasm-spec-tests"
        if candidate.is_dir():
            return candidate
    return None


def wast2json(wast: Path, out: Path) -> list[dict[str, Any]]:
    target = out / f"{wast.stem}.json"
    subprocess.run(["wast2json", str(wast), "-o", str(target)], check=True,
                   capture_output=True)
    commands: list[dict[str, Any]] = json.loads(target.read_text())["commands"]
    return [c for c in commands if c["type"] in MUST_ACCEPT
            or (c["type"] in MUST_REFUSE and c.get("module_type", "binary") == "binary")]


def _cases() -> list[Any]:
    directory = suite_dir()
    missing = ("the WebAssembly spec tests (../shared/wasm-spec-tests/)" if directory is None
               else "wast2json (apt-get install wabt)" if shutil.which("wast2json") is None
               else None)
    if missing is not None:
        return [pytest.param(None, None, None, id=f"missing: {missing}")]
    assert directory is not None  # else ``missing`` names it
    cases = []
    with tempfile.TemporaryDirectory() as scratch:
        for wast in sorted(directory.glob("*.wast")):
            for command in wast2json(wast, Path(scratch)):
                cases.append(pytest.param(wast.name, command["filename"], command["type"],
                                          id=f"{wast.name}:{command['line']}:{command['type']}"))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"wast", "filename", "expected"} <= set(metafunc.fixturenames):
        metafunc.parametrize(("wast", "filename", "expected"), _cases())


@pytest.fixture(scope="session")
def spec_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = suite_dir()
    assert directory is not None
    out = tmp_path_factory.mktemp("wasm-spec")
    for wast in sorted(directory.glob("*.wast")):
        wast2json(wast, out)
    return out


def test_the_suite_is_there_and_large() -> None:
    cases = _cases()
    if cases[0].values[0] is None:
        message = cases[0].id
        pytest.fail(message) if in_ci() else pytest.skip(message)
    kinds = [c.values[2] for c in cases]
    assert kinds.count("module") >= 70 and kinds.count("assert_malformed") >= 700


def test_spec_module(request: pytest.FixtureRequest, wast: str | None, filename: str | None,
                     expected: str | None) -> None:
    if filename is None:
        message = request.node.callspec.id
        pytest.fail(message) if in_ci() else pytest.skip(message)
    data = (request.getfixturevalue("spec_modules") / filename).read_bytes()
    report = validate_module(data)
    if expected in MUST_ACCEPT:
        assert report.spec_outcome == VALID, report.issues
    else:
        assert report.spec_outcome in (REFUSED, FEATURE_NOT_ENABLED), (wast, filename)
        assert not report.valid and report.issues[0]["severity"] == "error"
