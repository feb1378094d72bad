"""The real ``governor-stub`` process: start-up line, clean stop, kill -9 durability, the
demo's own activity and PostgreSQL through ``--db``."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.auth import Authenticator
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess


def token_for(stub: StubProcess, user: str = "governor") -> str:
    async def sign_in() -> str:
        auth = Authenticator(stub.url, vault=MemoryVault())
        await auth.sign_in_with_password(user, user)
        return str(await auth.access_token())

    return asyncio.run(sign_in())


def get(stub: StubProcess, path: str, token: str, **params: Any) -> Any:
    with stub.client() as client:
        response = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_stub_announces_itself_and_stops_cleanly_on_sigterm(stub: StubProcess) -> None:
    assert any(f"governance stub listening on {stub.url}" in line for line in stub.output)
    with stub.client() as client:
        assert client.get("/v1/health").json()["data"]["status"] == "ok"
        spec = client.get("/openapi.json").json()
        assert "/v1/mobile/decisions" in spec["paths"] and "/v1/demo/clock" in spec["paths"]
    assert stub.proc is not None
    stub.proc.send_signal(signal.SIGTERM)
    assert stub.proc.wait(15) == 0


def test_committed_decisions_survive_kill_9(stub: StubProcess) -> None:
    token = token_for(stub)
    headers = {"Authorization": f"Bearer {token}"}
    pending = get(stub, "/v1/mobile/approvals", token, status="pending_approval")["data"]
    window = get(stub, "/v1/mobile/approvals", token, status="auto_approved")["data"]
    first, second = pending[0], pending[1]
    with stub.client() as client:
        approved = client.post(f"/v1/mobile/approvals/{first['id']}/approve",
                               json={"expected_version": first["version"]},
                               headers={**headers, "Idempotency-Key": "durable-1"})
        assert approved.status_code == 200
        batch = client.post("/v1/mobile/decisions", headers=headers, json={"decisions": [
            {"id": "durable-2", "approval_id": second["id"], "action": "request_changes",
             "expected_version": second["version"], "reason": "add a budget cap",
             "decided_at": "2026-01-01T00:00:00Z", "device_id": "phone"},
            {"id": "durable-3", "approval_id": window[0]["id"], "action": "veto",
             "category": "safety", "reason": "unknown outbound host",
             "decided_at": "2026-01-01T00:00:00Z", "device_id": "phone"}]})
        assert [r["outcome"] for r in batch.json()["data"]] == ["applied", "applied"]
    stub.stop(kill=True)
    stub.start()
    token = token_for(stub)
    assert get(stub, f"/v1/mobile/approvals/{first['id']}", token)["data"]["status"] == \
        "approved"
    assert get(stub, f"/v1/mobile/approvals/{second['id']}", token)["data"]["status"] == \
        "changes_requested"
    assert get(stub, f"/v1/mobile/approvals/{window[0]['id']}", token)["data"]["status"] == \
        "vetoed"
    # The idempotency keys survived too: a resend is a replay, not a second decision.
    with stub.client() as client:
        replay = client.post(f"/v1/mobile/approvals/{first['id']}/approve",
                             json={"expected_version": first["version"]},
                             headers={"Authorization": f"Bearer {token}",
                                      "Idempotency-Key": "durable-1"})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"


def test_demo_activity_makes_the_platform_act_on_its_own(tmp_path: Path) -> None:
    stub = StubProcess(tmp_path / "stub", extra_args=["--demo-activity", "0.2"]).start()
    try:
        token = token_for(stub)
        start = get(stub, "/v1/mobile/notifications", token, limit=1)["meta"]["last_event_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = get(stub, "/v1/mobile/notifications", token, after=start)["data"]
            if len(events) >= 3:
                break
            time.sleep(0.2)
        assert len(events) >= 3
    finally:
        stub.stop()


def test_demo_activity_needs_demo(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="--demo-activity needs --demo"):
        StubProcess(tmp_path / "stub", demo=False, extra_args=["--demo-activity", "1"]).start()


@pytest.mark.postgres
def test_the_stub_runs_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    stub = StubProcess(tmp_path / "stub", extra_args=["--db", postgres_url]).start()
    try:
        token = token_for(stub)
        approvals = get(stub, "/v1/mobile/approvals", token)["data"]
        assert len(approvals) >= 8
        stub.stop(kill=True)
        stub.start()
        again = get(stub, "/v1/mobile/approvals", token_for(stub))["data"]
        assert [a["id"] for a in again] == [a["id"] for a in approvals]
    finally:
        stub.stop()
    with httpx.Client() as client, pytest.raises(httpx.TransportError):
        client.get(f"{stub.url}/v1/health", timeout=1)
