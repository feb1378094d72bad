"""``/v1/ready`` checks what is configured and names what is down; the dashboard agrees."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from backend_stub.api.readiness import (
    Readiness,
    database_probe,
    health,
    redis_probe,
)
from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings
from tests.support.services import drop_postgres_database, free_port, in_ci


def _fail() -> None:
    raise ConnectionError("refused")


def test_every_probe_runs_and_a_failing_one_is_named() -> None:
    ran: list[str] = []
    report = Readiness({"database": lambda: ran.append("database"), "redis": _fail,
                        "bus": lambda: ran.append("bus")}).run()
    assert ran == ["database", "bus"] and report.down == ["redis"]
    body = report.as_dict()
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["status"] == "down"
    assert body["checks"]["redis"]["error"] == "ConnectionError: refused"
    assert body["checks"]["database"]["status"] == "ok"


def test_probes_pointed_at_a_closed_port_are_down() -> None:
    port = free_port()
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    db = Database(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    try:
        report = Readiness({"database": database_probe(db),
                            "redis": redis_probe(client)}).run()
    finally:
        db.dispose()
    assert report.down == ["database", "redis"]
    assert "refused" in (report.checks[1].error or "").lower()


def test_the_dashboard_health_is_the_same_checks() -> None:
    report = Readiness({"database": lambda: None, "redis": _fail}).run()
    assert health(report, 0) == {"status": "down", "database": {"status": "ok"},
                                 "redis": {"status": "down", "error": "ConnectionError: refused"},
                                 "violations_24h": 0}
    fine = Readiness({"database": lambda: None}).run()
    assert health(fine, 5)["status"] == "degraded" and health(fine, 4)["status"] == "ok"


def _client(settings: StubSettings) -> Iterator[TestClient]:
    app = create_app(settings, clock=FakeClock())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.db.dispose()


def _dashboard_health(client: TestClient) -> dict[str, Any]:
    app: Any = client.app
    token = issue_test_token(app, sub="governor", scopes=["governance:read"])
    answer = client.get("/v1/mobile/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return dict(answer.json()["data"]["health"])


def test_ready_with_sqlite_only_checks_the_database(tmp_path: Path) -> None:
    for client in _client(StubSettings(data_dir=tmp_path)):
        answer = client.get("/v1/ready")  # no token: load balancers call it
        assert answer.status_code == 200
        data = answer.json()["data"]
        assert data["status"] == "ready" and list(data["checks"]) == ["database"]
        assert data["checks"]["database"]["status"] == "ok"
        assert client.get("/v1/health").json()["data"] == {"status": "ok"}
        assert _dashboard_health(client) == {"status": "ok", "database": {"status": "ok"},
                                             "violations_24h": 0}


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Redis server of this test's own, so the test may stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server is missing; CI requires it")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    for _ in range(250):  # up to 5 s for it to start
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None:
                pytest.fail(f"redis-server on port {port} exited at start")
            time.sleep(0.02)
    else:
        pytest.fail(f"redis-server on port {port} did not answer PING")
    client.close()
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.redis
def test_ready_names_redis_and_the_bus_when_redis_goes_down(
        tmp_path: Path, own_redis: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = own_redis
    for client in _client(StubSettings(data_dir=tmp_path, redis_url=url)):
        data = client.get("/v1/ready").json()["data"]
        assert data["status"] == "ready"
        assert list(data["checks"]) == ["database", "redis", "bus"]

        process.terminate()
        process.wait(timeout=10)
        answer = client.get("/v1/ready")
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["code"] == "NOT_READY" and error["details"]["down"] == ["redis", "bus"]
        assert "redis, bus down" in error["message"]
        assert error["details"]["checks"]["database"]["status"] == "ok"
        board = _dashboard_health(client)
        assert board["status"] == "down" and board["redis"]["status"] == "down"


@pytest.mark.postgres
def test_ready_names_the_database_when_it_goes_away(tmp_path: Path, postgres_url: str) -> None:
    for client in _client(StubSettings(data_dir=tmp_path, db_url=postgres_url)):
        assert client.get("/v1/ready").status_code == 200
        drop_postgres_database(postgres_url)  # FORCE: the stub's connections are cut
        answer = client.get("/v1/ready")
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["details"]["down"] == ["database"] and "database down" in error["message"]
        assert error["details"]["checks"]["database"]["error"]
