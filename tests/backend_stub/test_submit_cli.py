"""``governor-stub submit`` from a shell against the real stub process (with the demo world):
the module reaches the governor with its report and seed matches; refusals exit 1 and
write nothing; sign-in problems exit 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend_stub.domain.wasm import build_module
from backend_stub.submit_cli import sign_in
from tests.support.stub_process import StubProcess

MODULE = build_module(imports=[("wasi_snapshot_preview1", "fd_write")], functions=4,
                      memory_pages=2)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    process = StubProcess(tmp_path_factory.mktemp("stub"),
                          env={"GOVSTUB_LOG_LEVEL": "WARNING"}).start()
    yield process
    process.stop()


def run(stub: StubProcess, module: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend_stub.cli", "submit", str(module), "--server", stub.url,
         "--industry", "education", "--budget", "40000", "--monthly-cost", "80", *extra],
        capture_output=True, text=True, timeout=120, check=False)


def governor_token(stub: StubProcess) -> str:
    """The governor's read token, signed in the way the CLI signs in."""
    with httpx.Client() as client:
        token = sign_in(client, stub.url + "/", "governor", "governor", "governance:read")
    return str(token["access_token"])


def approvals(stub: StubProcess) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {governor_token(stub)}"}
    items: list[dict[str, Any]] = httpx.get(f"{stub.url}/v1/mobile/approvals?limit=200",
                                            headers=headers).json()["data"]
    return items


def test_a_module_submitted_from_the_shell_reaches_the_governor(stub: StubProcess,
                                                                tmp_path: Path) -> None:
    module = tmp_path / "essay-coach.wasm"
    module.write_bytes(MODULE)
    done = run(stub, module, "--capability", "file_read:/data/curriculum/*", "--json")
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)
    assert request["requester"] == "submitter" and request["agent"]["name"] == "essay-coach"
    assert request["wasm_report"]["sha256"] == hashlib.sha256(MODULE).hexdigest()
    assert request["wasm_report"]["valid"]
    # The demo world's education seed covers it: the governor sees the match.
    assert request["seed_matches"], request
    headers = {"Authorization": f"Bearer {governor_token(stub)}"}
    seen = httpx.get(f"{stub.url}/v1/mobile/approvals/{request['id']}", headers=headers)
    assert seen.status_code == 200
    assert seen.json()["data"]["wasm_report"] == request["wasm_report"]
    assert seen.json()["data"]["seed_matches"] == request["seed_matches"]
    # The same module and declaration again: the same request, said so.
    again = run(stub, module, "--capability", "file_read:/data/curriculum/*")
    assert again.returncode == 0 and f"Already submitted: {request['id']}" in again.stdout


def test_refusals_exit_1_and_write_nothing(stub: StubProcess, tmp_path: Path) -> None:
    before = approvals(stub)
    not_wasm = tmp_path / "agent.wasm"
    not_wasm.write_text("#!/bin/sh\nrm -rf /\n")
    refused = run(stub, not_wasm)
    assert refused.returncode == 1
    assert "422 VALIDATION_FAILED" in refused.stderr and "module:" in refused.stderr
    good = tmp_path / "good.wasm"
    good.write_bytes(MODULE)
    bad_grant = run(stub, good, "--capability", "teleport:/anywhere")
    assert bad_grant.returncode == 1 and "capability[0]" in bad_grant.stderr
    assert approvals(stub) == before
    assert list((stub.data_dir / "uploads").iterdir()) == []


def test_sign_in_problems_exit_2(stub: StubProcess, tmp_path: Path) -> None:
    good = tmp_path / "good.wasm"
    good.write_bytes(MODULE)
    wrong = run(stub, good, "--password", "nope")
    assert wrong.returncode == 2 and "Wrong username or password" in wrong.stderr
    governor = run(stub, good, "--username", "governor", "--password", "governor")
    assert governor.returncode == 2 and "agents:submit" in governor.stderr
    missing = run(stub, tmp_path / "absent.wasm")
    assert missing.returncode == 2 and "No module at" in missing.stderr
