"""Attachment metadata from the device to the stub, end to end: whatever a governor
attaches to a veto, the engine refuses it at once (``InvalidDecision``) or queues it, and
the upload then settles it, applied or rejected with the server's reason, without ever
holding back the decision queued beside it (a poison write must not block the queue)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.domain.wasm import build_module
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings
from sync.api import FakeAuthenticator
from sync.engine import SyncEngine
from sync.errors import InvalidDecision
from sync.models import Account, Attachment, OutboxState, VetoCategory
from sync.settings import GovernorSettings
from sync.store import LocalStore

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200")) // 4
SCOPES = frozenset({"governance:read", "governance:write", "veto:execute"})


class StubTokens(FakeAuthenticator):
    """The governor signed in: real tokens from the in-process stub's own key ring."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(Account(sub="governor", username="governor", scopes=SCOPES))
        self.app = app
        self._token = issue_test_token(app)

    @property
    def token(self) -> str:
        return self._token


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    application = create_app(StubSettings(data_dir=tmp_path_factory.mktemp("stub"),
                                          public_url="http://testserver"), clock=FakeClock())
    yield application
    application.state.db.dispose()


def _pending(app: FastAPI) -> dict[str, Any]:
    return dict(app.state.governance.submit_request(
        agent_name="Fuzz Tutor", industry="education", agent_kind="industry",
        requester="genesis", capabilities=["file_read:/data/x"], wasm_module=build_module(),
        daily_token_budget=50_000, monthly_cost_usd=50.0))


metadata = st.fixed_dictionaries({
    "name": st.text(max_size=300),
    "content_type": st.text(max_size=20) | st.sampled_from(
        ["text/plain", "image/png", "application/pdf", "a/b/c", "/"]),
    "data_base64": st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode())
    | st.text("ABCabc019+/=-_ ", max_size=24),
})


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(metadata, max_size=6))
def test_a_poison_attachment_is_refused_or_settled_and_never_blocks_the_queue(
        app: FastAPI, tmp_path: Path, files: list[dict[str, str]]) -> None:
    vetoed, approved = _pending(app), _pending(app)
    store = LocalStore()
    engine = SyncEngine(GovernorSettings(server_url="http://testserver", sync_interval=0,
                                         data_dir=tmp_path),
                        authenticator=StubTokens(app), store=store,
                        transport=httpx.ASGITransport(app=app))
    store.upsert_approvals([vetoed, approved])

    async def scenario() -> None:
        try:
            veto = engine.veto(vetoed["id"], VetoCategory.SAFETY, "fuzzed evidence",
                               [Attachment.model_validate(f) for f in files])
        except InvalidDecision:
            veto = None
        approve = engine.approve(approved["id"])
        await engine.upload()
        if engine._flush_task is not None:
            await engine._flush_task
        entries = {e.id: e for e in engine.outbox()}
        assert entries[approve.id].state == OutboxState.APPLIED, entries[approve.id]
        if veto is not None:
            entry = entries[veto.id]
            assert entry.state in (OutboxState.APPLIED, OutboxState.REJECTED), entry
            if entry.state == OutboxState.REJECTED:
                assert entry.error_code in ("VALIDATION_FAILED", "PAYLOAD_TOO_LARGE"), entry
                assert entry.error_message
        await engine.stop()

    asyncio.run(scenario())
    store.close()
