"""The stub writes a decision to the ``decisions`` table and to the components'
tamper-evident audit log (``components_audit_log``) in one transaction
(``backend_stub/components/hooks.py``, ``observed_decisions``). A database written before
that was so may hold an applied decision the audit log never recorded, so a replay records
it too, once per decision key: the client's retry heals the gap. The contract says every
applied decision is written to the audit trail.

The crash is simulated in process: the audit log's store fails once, as a kill -9 or a
database error at that moment would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    application = create_app(StubSettings(data_dir=tmp_path / "stub", demo=True,
                                          public_url="http://testserver"), clock=FakeClock())
    yield application
    application.state.db.dispose()


def _logged(app: FastAPI, key: str) -> int:
    entries = app.state.audit_log.entries(limit=100_000)
    return sum(1 for e in entries if e.details.get("idempotency_key") == key)


def test_a_crash_between_commit_and_audit_log_never_loses_the_audit_entry(
        app: FastAPI) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {issue_test_token(app)}"}
        pending = client.get("/v1/mobile/approvals", params={"status": "pending_approval"},
                             headers=headers).json()["data"][0]
        item = {"id": "gap-1", "approval_id": pending["id"], "action": "approve",
                "expected_version": pending["version"], "decided_at": "2026-01-01T12:00:00Z",
                "device_id": "dev"}
        store = app.state.audit_log.store
        real_append = store.append
        calls = {"n": 0}

        def crash_once(*args: Any) -> bool:
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError("simulated crash between the commit and the audit log")
            return bool(real_append(*args))

        store.append = crash_once
        first = client.post("/v1/mobile/decisions", json={"decisions": [item]},
                            headers=headers)
        assert first.status_code >= 500  # the client hears nothing usable and retries
        retry = client.post("/v1/mobile/decisions", json={"decisions": [item]},
                            headers=headers)
        assert retry.json()["data"][0]["outcome"] in ("applied", "replayed")
        assert _logged(app, "gap-1") == 1


def test_without_a_crash_each_applied_decision_is_logged_once(app: FastAPI) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {issue_test_token(app)}"}
        pending = client.get("/v1/mobile/approvals", params={"status": "pending_approval"},
                             headers=headers).json()["data"][0]
        item = {"id": "ok-1", "approval_id": pending["id"], "action": "approve",
                "expected_version": pending["version"], "decided_at": "2026-01-01T12:00:00Z",
                "device_id": "dev"}
        for _ in range(2):  # the second answer is a replay and must not log again
            client.post("/v1/mobile/decisions", json={"decisions": [item]}, headers=headers)
        assert _logged(app, "ok-1") == 1
