"""The real ``governor-stub`` process with ``--redis``, and its Redis stopped mid-run: the
stub keeps answering (L2 and the shared bus degrade to L1 + L3 and local delivery), and
``governor-stub audit verify`` checks the decisions it audited meanwhile."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sync.auth import Authenticator
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess


def token_for(stub: StubProcess) -> str:
    async def sign_in() -> str:
        auth = Authenticator(stub.url, vault=MemoryVault())
        await auth.sign_in_with_password("governor", "governor")
        return str(await auth.access_token())

    return asyncio.run(sign_in())


@pytest.mark.slow
@pytest.mark.redis
def test_the_stub_keeps_serving_when_its_redis_stops(tmp_path: Path, own_redis: Any) -> None:
    stub = StubProcess(tmp_path / "stub", extra_args=["--redis", own_redis.url]).start()
    try:
        headers = {"Authorization": f"Bearer {token_for(stub)}"}
        with stub.client() as client:
            assert client.get("/v1/mobile/dashboard", headers=headers).status_code == 200
            own_redis.stop()
            for _ in range(5):
                assert client.get("/v1/mobile/dashboard", headers=headers).status_code == 200
                assert client.get("/v1/mobile/approvals", headers=headers).status_code == 200
            pending = client.get("/v1/mobile/approvals", params={"status": "pending_approval"},
                                 headers=headers).json()["data"][0]
            approved = client.post(f"/v1/mobile/approvals/{pending['id']}/approve",
                                   json={"expected_version": pending["version"]},
                                   headers={**headers, "Idempotency-Key": "during-outage"})
            assert approved.status_code == 200, approved.text
            metrics = client.get("/metrics").text
        assert 'governance_decisions_total{action="approve",outcome="applied"} 1.0' in metrics
    finally:
        stub.stop()
    verify = subprocess.run(
        [sys.executable, "-m", "backend_stub.cli", "audit", "verify",
         "--data-dir", str(stub.data_dir)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit log intact: 1 entries verified" in verify.stdout
