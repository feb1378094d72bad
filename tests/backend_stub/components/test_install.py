"""``install_components``: every component on ``app.state``, the HTTP layer, kill switches."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from backend_stub.clock import FakeClock
from backend_stub.components import (
    CacheHierarchy,
    Components,
    MessageBus,
    install_components,
    namespace_for,
)
from backend_stub.components.cache import RedisTier
from backend_stub.components.errors import SettingsInvalid
from backend_stub.components.messaging import Message, RedisStreamTransport
from backend_stub.components.observability import request_id_var
from backend_stub.components.resources import Budget
from backend_stub.db import Database
from backend_stub.settings import StubSettings


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def make_app(tmp_path: Path, **overrides: Any) -> FastAPI:
    settings = StubSettings(data_dir=tmp_path / "data",
                            db_url=f"sqlite:///{tmp_path / 'stub.db'}", **overrides)
    app = FastAPI()
    app.state.settings = settings
    app.state.clock = FakeClock()
    app.state.db = Database(settings.database_url)
    install_components(app)

    @app.get("/v1/things/{thing_id}")
    def thing(thing_id: str, request: Request) -> dict[str, Any]:
        # A sync route runs in a worker thread: the request id must follow it there.
        return {"id": thing_id, "rid": request_id_var.get(),
                "state_rid": request.state.request_id}

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app


def test_every_component_is_on_app_state(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    for name in ("cache", "bus", "metrics", "tracer", "observability", "state", "signer",
                 "audit_log", "vault", "resources", "rate_limiter", "validator", "dlq"):
        assert getattr(app.state, name) is not None, name
    assert isinstance(app.state.cache, CacheHierarchy) and app.state.cache.tiers == ["l1", "l3"]
    assert isinstance(app.state.bus, MessageBus)
    assert isinstance(app.state.components, Components)
    assert (tmp_path / "data" / "secret.key").exists()
    middleware_count = len(app.user_middleware)
    install_components(app)  # a second call changes nothing
    assert len(app.user_middleware) == middleware_count
    app.state.components.close()


def test_components_work_end_to_end_on_the_stub_database(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    c: Components = app.state.components
    c.cache.set("dashboard:u1", {"pending": 3})
    c.cache.l1.clear()
    assert c.cache.get("dashboard:u1") == {"pending": 3}  # from L3 (SQL)
    assert c.state.save("approval:1", {"status": "pending"}) == 1
    c.audit_log.record("decision.applied", actor="u1", resource="approval:1")
    assert c.audit_log.verify().ok
    assert c.vault.decrypt(c.vault.encrypt(b"pdf")) == b"pdf"
    events: list[Message] = []
    c.bus.subscribe("governance.budget.*", events.append)
    c.resources.set_budget("agent-1", Budget(1000))
    c.resources.consume("agent-1", 850)
    assert c.bus.flush()
    assert [e.data for e in events] == [{"agent": "agent-1", "threshold": 80,
                                         "utilisation": 0.85}]
    assert c.signer.verify_event(events[0].to_dict())
    c.validator.decisions.check({"id": "d", "approval_id": "a", "action": "veto",
                                 "category": "safety", "reason": "r"})
    assert c.validator.schema({"type": "object"}).validate({}) == []
    c.close()


def test_metrics_endpoint_counts_requests_by_route_template(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with TestClient(app) as client:
        for n in range(3):
            assert client.get(f"/v1/things/{n}").status_code == 200
        assert client.get("/nowhere").status_code == 404
        text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/v1/things/{thing_id}",status="200"} 3.0' \
        in text
    assert 'route="unmatched",status="404"' in text
    assert 'dlq_size{queue="messaging"} 0.0' in text
    assert "http_request_duration_seconds_bucket" in text


def test_request_id_reaches_handlers_and_spans(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    exporter = InMemorySpanExporter()
    app.state.tracer.add_exporter(exporter)
    with TestClient(app) as client:
        body = client.get("/v1/things/7", headers={"X-Request-ID": "rid-7"}).json()
        generated = client.get("/v1/things/8", headers={"X-Request-ID": "x" * 300}).json()
    assert body == {"id": "7", "rid": "rid-7", "state_rid": "rid-7"}
    assert generated["rid"] == generated["state_rid"] and len(generated["rid"]) == 32
    span = exporter.get_finished_spans()[0]
    assert span.name == "GET /v1/things/{thing_id}"
    assert span.attributes is not None
    assert span.attributes["request.id"] == "rid-7"
    assert span.attributes["http.response.status_code"] == 200


def test_an_unhandled_error_is_counted_as_500(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/boom").status_code == 500
        text = client.get("/metrics").text
    assert 'route="/v1/boom",status="500"} 1.0' in text


def test_rate_limits_per_token_and_per_client(tmp_path: Path) -> None:
    app = make_app(tmp_path, requests_per_minute=2, client_requests_per_minute=5)
    with TestClient(app) as client:
        alice = {"Authorization": "Bearer alice-token", "X-Request-ID": "r-429"}
        assert [client.get("/v1/things/1", headers=alice).status_code for _ in range(3)] == \
            [200, 200, 429]
        refused = client.get("/v1/things/1", headers=alice)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        body = refused.json()
        assert body["error"]["code"] == "RATE_LIMITED"
        assert body["error"]["details"]["scope"] == "token"
        assert body["meta"]["request_id"] == "r-429"
        bob = {"Authorization": "Bearer bob-token"}
        assert client.get("/v1/things/1", headers=bob).status_code == 200
        # The client address has now used 5 (refused ones count too): it is limited.
        anonymous = client.get("/v1/things/1")
        assert anonymous.status_code == 429
        assert anonymous.json()["error"]["details"]["scope"] == "client"
        assert client.get("/metrics").status_code == 200  # never limited
        text = client.get("/metrics").text
    assert 'rate_limited_total{scope="token"} 2.0' in text
    assert 'rate_limited_total{scope="client"} 1.0' in text


def test_every_kill_switch_makes_a_pass_through(tmp_path: Path) -> None:
    app = make_app(tmp_path, disable_cache=True, disable_metrics=True, disable_tracing=True,
                   disable_rate_limit=True, requests_per_minute=1)
    c: Components = app.state.components
    c.cache.set("k", 1)
    assert c.cache.get("k") is None
    assert app.state.tracer.provider is None
    with TestClient(app) as client:
        assert all(client.get("/v1/things/1").status_code == 200 for _ in range(5))
        assert client.get("/metrics").text.startswith("# metrics disabled")


def test_a_bad_setting_stops_installation(tmp_path: Path) -> None:
    with pytest.raises(SettingsInvalid, match="GOVSTUB_LOG_LEVEL"):
        make_app(tmp_path, log_level="chatty")


def test_shutdown_closes_the_bus(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with TestClient(app):
        pass
    with pytest.raises(RuntimeError, match="closed"):
        app.state.bus.publish("a.b", {})


def test_json_logs_are_configured(tmp_path: Path) -> None:
    make_app(tmp_path, log_level="WARNING").state.components.close()
    root = logging.getLogger()
    assert any(getattr(h, "_govstub_json", False) for h in root.handlers)
    assert root.level == logging.WARNING


@pytest.mark.redis
def test_with_redis_the_cache_bus_and_limits_are_shared(tmp_path: Path, redis_url: str) -> None:
    app = make_app(tmp_path, redis_url=redis_url)
    c: Components = app.state.components
    namespace = namespace_for(app.state.db.url)
    assert c.cache.tiers == ["l1", "l2", "l3"]
    tier = c.cache._tiers[0][0]
    assert isinstance(tier, RedisTier) and tier.prefix == f"govstub:{namespace}:cache:"
    assert isinstance(c.bus.transport, RedisStreamTransport)
    assert c.bus.transport.stream == f"govstub:{namespace}:events"
    c.cache.set("k", {"v": 1})
    c.cache.delete("k")
    # Another stub process on the same database and Redis: its events reach this one.
    received: list[Message] = []
    c.bus.subscribe("governance.*", received.append, name="sse")
    time.sleep(0.6)  # idle longer than the socket timeout: a quiet stream must not break
    other = MessageBus(RedisStreamTransport(c.redis, stream=c.bus.transport.stream,
                                            signer=c.signer), signer=c.signer)
    other.publish("governance.approval.pending", {"approval_id": "REQ-1"})
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [m.data for m in received] == [{"approval_id": "REQ-1"}]
    other.close()
    c.close()
    c.redis.delete(f"govstub:{namespace}:events")


def test_a_configured_redis_namespace_replaces_the_database_hash() -> None:
    assert namespace_for("postgresql+psycopg://a@h/db") != namespace_for(
        "postgresql+psycopg://a@proxy:6000/db")
    assert namespace_for("postgresql+psycopg://a@proxy:6000/db", "shared") == "shared"


def test_a_redis_namespace_with_a_separator_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from backend_stub.settings import StubSettings

    with pytest.raises(ValidationError, match="redis_namespace"):
        StubSettings(data_dir=tmp_path, redis_namespace="a:b")
