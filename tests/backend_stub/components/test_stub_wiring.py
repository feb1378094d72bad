"""The components inside the real stub app (``create_app``): the API goes through them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.components import Components
from backend_stub.components.messaging import Message
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def stub(tmp_path: Path, **overrides: Any) -> tuple[TestClient, Any]:
    settings = StubSettings(data_dir=tmp_path / "data", db_url=f"sqlite:///{tmp_path / 's.db'}",
                            demo=True, public_url="http://testserver", **overrides)
    app = create_app(settings, clock=FakeClock())
    return TestClient(app, raise_server_exceptions=False), app


def auth(app: Any, scopes: tuple[str, ...] = ("governance:read", "governance:write",
                                              "veto:execute")) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_test_token(app, scopes=scopes)}"}


def test_create_app_installs_the_components(tmp_path: Path) -> None:
    client, app = stub(tmp_path)
    with client:
        assert isinstance(app.state.components, Components)
        assert client.get("/v1/mobile/approvals", headers=auth(app)).status_code == 200
        text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/v1/mobile/approvals",status="200"} 1.0' \
        in text


def test_the_dashboard_is_served_through_the_cache_and_follows_writes(tmp_path: Path) -> None:
    client, app = stub(tmp_path)
    with client:
        headers = auth(app)
        first = client.get("/v1/mobile/dashboard", headers=headers).json()["data"]
        again = client.get("/v1/mobile/dashboard", headers=headers).json()["data"]
        assert first["pending_approvals"] == again["pending_approvals"]
        assert 'cache_hits_total{level="l1"} 1.0' in client.get("/metrics").text
        pending = client.get("/v1/mobile/approvals?status=pending_approval",
                             headers=headers).json()["data"][0]
        answer = client.post(f"/v1/mobile/approvals/{pending['id']}/approve",
                             json={"expected_version": pending["version"]},
                             headers={**headers, "Idempotency-Key": "k-approve"})
        assert answer.status_code == 200, answer.text
        after = client.get("/v1/mobile/dashboard", headers=headers).json()["data"]
    assert after["pending_approvals"] == first["pending_approvals"] - 1


def test_a_decision_is_counted_audited_and_its_event_signed_and_correlated(
        tmp_path: Path) -> None:
    client, app = stub(tmp_path)
    components: Components = app.state.components
    events: list[Message] = []
    components.bus.subscribe("governance.approval.*", events.append, name="test")
    with client:
        headers = auth(app)
        pending = client.get("/v1/mobile/approvals?status=pending_approval",
                             headers=headers).json()["data"][0]
        answer = client.post(f"/v1/mobile/approvals/{pending['id']}/veto",
                             json={"category": "safety", "reason": "unsafe imports"},
                             headers={**headers, "Idempotency-Key": "k-veto",
                                      "X-Request-ID": "rid-veto-1"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Request-ID"] == "rid-veto-1"
        components.bus.flush()
        text = client.get("/metrics").text
    assert 'governance_decisions_total{action="veto",outcome="applied"} 1.0' in text
    decided = [e for e in events if e.type == "governance.approval.decided"]
    assert decided and decided[0].correlation_id == "rid-veto-1"
    assert components.signer.verify_event(decided[0].to_dict())
    entries = [e for e in components.audit_log.entries() if e.action == "decision.veto"]
    assert entries[0].resource == f"approval:{pending['id']}"
    assert entries[0].details["request_id"] == "rid-veto-1"
    assert components.audit_log.verify().ok
    # The approval's versions are the approval row's; the state component keeps no copy.
    assert components.state.version(f"approval:{pending['id']}") == 0


def test_rate_limited_requests_get_the_contract_envelope(tmp_path: Path) -> None:
    client, app = stub(tmp_path, requests_per_minute=2)
    with client:
        headers = {**auth(app), "X-Request-ID": "rid-limited"}
        codes = [client.get("/v1/mobile/approvals", headers=headers).status_code
                 for _ in range(3)]
        refused = client.get("/v1/mobile/approvals", headers=headers)
    assert codes == [200, 200, 429]
    assert refused.headers["X-Request-ID"] == "rid-limited"
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    assert body["meta"]["request_id"] == "rid-limited"


def test_a_bad_setting_stops_the_stub_naming_it(tmp_path: Path) -> None:
    from backend_stub.components.errors import SettingsInvalid

    with pytest.raises(SettingsInvalid, match="GOVSTUB_OTEL_ENDPOINT"):
        stub(tmp_path, otel_endpoint="localhost:4318")


def test_governor_stub_audit_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from backend_stub.cli import main

    client, app = stub(tmp_path)
    with client:
        app.state.audit_log.record("decision.veto", actor="governor", resource="approval:X")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["audit", "verify", "--db", url, "--data-dir", str(tmp_path / "data")]) == 0
    assert "audit log intact: 1 entries verified" in capsys.readouterr().out


def test_veto_attachments_are_encrypted_at_rest(tmp_path: Path) -> None:
    import base64

    from sqlalchemy import text

    client, app = stub(tmp_path)
    secret = b"%PDF-1.7 the evidence"
    with client:
        headers = auth(app)
        pending = client.get("/v1/mobile/approvals?status=pending_approval",
                             headers=headers).json()["data"][0]
        answer = client.post(
            f"/v1/mobile/approvals/{pending['id']}/veto",
            json={"category": "safety", "reason": "see attached",
                  "attachments": [{"name": "evidence.pdf", "content_type": "application/pdf",
                                   "data_base64": base64.b64encode(secret).decode()}]},
            headers={**headers, "Idempotency-Key": "k-attach"})
        assert answer.status_code == 200, answer.text
    with app.state.db.engine.begin() as conn:
        decision_id, stored, size = conn.execute(text(
            "SELECT decision_id, data, size FROM decision_attachments")).one()
    assert secret not in bytes(stored) and size == len(secret)
    assert app.state.vault.decrypt(bytes(stored), f"decision:{decision_id}".encode()) == secret
