"""The helpers API routes call to go through the components (and work without them)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from backend_stub.clock import FakeClock
from backend_stub.components import install_components
from backend_stub.components.hooks import cached, instance_key, observed_decisions
from backend_stub.db import Database
from backend_stub.settings import StubSettings


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@dataclass
class Command:
    key: str
    approval_id: str
    action: str
    device_id: str | None = None
    category: str | None = None


@dataclass
class Result:
    outcome: str


@dataclass
class Applied:
    outcome: str
    approval: dict[str, Any] | None


def bare_request(app: FastAPI) -> Request:
    return Request({"type": "http", "app": app, "headers": []})


@dataclass
class Actor:
    sub: str
    client_id: str


def in_transaction(app: FastAPI, results: list[Any], *, fail: bool = False
                   ) -> Callable[[Any], list[Any]]:
    """A ``decide`` as the service's: ``also`` runs in its transaction, which commits
    (or, with ``fail``, rolls back after it)."""
    def decide(also: Any) -> list[Any]:
        if also is None:  # no components installed
            return results
        with app.state.db.engine.begin() as conn:
            also(conn, results)
            if fail:
                raise OSError("the decisions' commit failed")
        return results

    return decide


def make_app(tmp_path: Path | None, computed: list[int]) -> FastAPI:
    app = FastAPI()
    if tmp_path is not None:
        settings = StubSettings(data_dir=tmp_path, db_url=f"sqlite:///{tmp_path / 's.db'}")
        app.state.settings = settings
        app.state.clock = FakeClock()
        app.state.db = Database(settings.database_url)
        install_components(app)

    @app.get("/dashboard")
    def dashboard(request: Request) -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            computed.append(1)
            return {"pending": 3, "nested": {"n": 1}}

        data = cached(request, instance_key(request, "dashboard", 7), compute, ttl=5)
        data["generated_at"] = "now"  # callers may change what they get
        data["nested"]["n"] = 99
        return data

    @app.post("/decide")
    def decide(request: Request) -> list[str]:
        commands = [Command("k1", "REQ-1", "veto", "dev-1", "safety"),
                    Command("k2", "REQ-2", "approve")]
        results = observed_decisions(request, Actor("governor", "governor-app"), commands,
                                     in_transaction(request.app, [Result("applied"),
                                                                  Result("rejected")]))
        return [r.outcome for r in results]

    return app


def test_the_dashboard_is_computed_once_and_callers_get_their_own_copy(tmp_path: Path) -> None:
    computed: list[int] = []
    app = make_app(tmp_path, computed)
    with TestClient(app) as client:
        first = client.get("/dashboard").json()
        second = client.get("/dashboard").json()
        metrics = client.get("/metrics").text
    assert first == second == {"pending": 3, "nested": {"n": 99}, "generated_at": "now"}
    assert computed == [1]
    assert 'cache_hits_total{level="l1"} 1.0' in metrics
    instance = app.state.components.instance_id
    assert app.state.cache.l1.get(f"dashboard:{instance}:7") == {"pending": 3,
                                                                "nested": {"n": 1}}


def test_decisions_are_counted_traced_and_audited(tmp_path: Path) -> None:
    app = make_app(tmp_path, [])
    exporter = InMemorySpanExporter()
    app.state.tracer.add_exporter(exporter)
    with TestClient(app) as client:
        assert client.post("/decide", headers={"X-Request-ID": "rid-9"}).json() == \
            ["applied", "rejected"]
        metrics = client.get("/metrics").text
    assert 'governance_decisions_total{action="veto",outcome="applied"} 1.0' in metrics
    assert 'governance_decisions_total{action="approve",outcome="rejected"} 1.0' in metrics
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("decision") == 2 and "decisions" in names
    (entry,) = app.state.audit_log.entries()
    assert entry.action == "decision.veto" and entry.actor == "governor"
    assert entry.resource == "approval:REQ-1"
    assert entry.details == {"client_id": "governor-app", "device_id": "dev-1",
                             "request_id": "rid-9", "idempotency_key": "k1",
                             "category": "safety", "recorded_on_replay": False}
    assert app.state.audit_log.verify().ok


def test_without_components_the_helpers_just_call_through() -> None:
    computed: list[int] = []
    app = make_app(None, computed)
    with TestClient(app) as client:
        client.get("/dashboard")
        client.get("/dashboard")
        assert client.post("/decide").json() == ["applied", "rejected"]
    assert computed == [1, 1]


def test_budget_gauge_follows_threshold_events_and_the_service(tmp_path: Path) -> None:
    app = make_app(tmp_path, [])

    class Service:
        def list_agents(self, *, cursor: str | None = None, limit: int = 50
                        ) -> tuple[list[dict[str, Any]], str | None]:
            if cursor is None:
                return [{"id": "AGT-1", "budget": {"utilisation": 0.5}}], "page-2"
            return [{"id": "AGT-2", "budget": {}}], None

    app.state.bus.publish("governance.budget.threshold_exceeded",
                          {"agent_id": "AGT-9", "threshold": 80, "utilisation": 0.81})
    app.state.bus.publish("governance.budget.threshold_exceeded", {"agent": "x"})
    app.state.bus.flush()
    text = app.state.metrics.render()[0].decode()
    assert 'budget_utilisation_ratio{agent="AGT-9"} 0.81' in text
    app.state.governance = Service()
    text = app.state.metrics.render()[0].decode()
    assert 'budget_utilisation_ratio{agent="AGT-1"} 0.5' in text
    assert 'agent="AGT-2"' not in text
    app.state.components.close()


def test_decisions_leave_the_state_component_alone(tmp_path: Path) -> None:
    # Approval versions live in the approval row; a second copy nothing read was dropped.
    app = make_app(tmp_path, [])
    with TestClient(app):
        request = bare_request(app)
        commands = [Command("k1", "REQ-1", "approve")]
        results = [Applied("applied", {"id": "REQ-1", "version": 2, "status": "approved"})]
        observed_decisions(request, Actor("governor", "app"), commands,
                           in_transaction(app, results))
    assert app.state.state.version("approval:REQ-1") == 0
    assert [e.resource for e in app.state.audit_log.entries()] == ["approval:REQ-1"]


def test_a_replay_writes_the_audit_entry_a_crash_lost_and_only_once(tmp_path: Path) -> None:
    app = make_app(tmp_path, [])
    with TestClient(app):
        request = bare_request(app)
        command = [Command("k1", "REQ-1", "veto", "dev", "safety")]
        who = Actor("governor", "app")
        # The decision was applied, then the process died before its audit entry: the
        # client's retry is answered as a replay.
        observed_decisions(request, who, command, in_transaction(app, [Result("replayed")]))
        observed_decisions(request, who, command, in_transaction(app, [Result("replayed")]))
    (entry,) = app.state.audit_log.entries()
    assert entry.details["recorded_on_replay"] is True
    assert entry.details["idempotency_key"] == "k1"


def test_audit_entries_are_written_in_the_decisions_transaction(
        tmp_path: Path) -> None:
    app = make_app(tmp_path, [])
    with TestClient(app):
        request = bare_request(app)
        commands = [Command("k1", "REQ-1", "approve")]
        results = [Applied("applied", {"id": "REQ-1", "version": 2, "status": "approved"})]
        with pytest.raises(OSError, match="commit failed"):
            observed_decisions(request, Actor("governor", "app"), commands,
                               in_transaction(app, results, fail=True))
        # Rolled back with the decisions: the entry is not kept ...
        assert app.state.audit_log.entries() == []
        # ... and the retry writes it.
        observed_decisions(request, Actor("governor", "app"), commands,
                           in_transaction(app, results))
    assert [e.resource for e in app.state.audit_log.entries()] == ["approval:REQ-1"]
    assert app.state.audit_log.verify().ok
