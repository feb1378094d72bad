from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.domain.service import GovernanceService
from backend_stub.domain.wasm import build_module
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings

ALL = ("governance:read", "governance:write", "veto:execute")


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    clock: FakeClock

    @property
    def svc(self) -> GovernanceService:
        svc: GovernanceService = self.app.state.governance
        return svc

    def auth(self, scopes: Iterable[str] = ALL, sub: str = "governor") -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_test_token(self.app, sub=sub, scopes=scopes)}"}

    def submit(self, **overrides: Any) -> dict[str, Any]:
        fields: dict[str, Any] = dict(agent_name="Tutor", industry="education",
                                      agent_kind="industry", requester="genesis",
                                      capabilities=["file_read:/data/x"],
                                      wasm_module=build_module(), daily_token_budget=50_000,
                                      monthly_cost_usd=50.0)
        fields.update(overrides)
        return self.svc.submit_request(**fields)


def _make(tmp_path: Path, db_url: str | None, demo: bool) -> Iterator[Api]:
    clock = FakeClock()
    settings = StubSettings(data_dir=tmp_path / "data", db_url=db_url, demo=demo)
    app = create_app(settings, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(app, client, clock)
    app.state.db.dispose()


@pytest.fixture
def api(tmp_path: Path, stub_db_url: str) -> Iterator[Api]:
    """An empty stub (no demo) on SQLite and on PostgreSQL."""
    yield from _make(tmp_path, stub_db_url, demo=False)


@pytest.fixture
def demo_api(tmp_path: Path) -> Iterator[Api]:
    """The stub with the demo world, on SQLite."""
    yield from _make(tmp_path, None, demo=True)
