"""``GET /v1/ready`` as the balancer's health check (the checks themselves:
``test_readiness.py``)."""

from __future__ import annotations

from backend_stub.api.readiness import Check, Report
from tests.backend_stub.api.conftest import Api


def test_not_ready_asks_the_balancer_to_come_back_soon(api: Api) -> None:
    class Down:
        def run(self) -> Report:
            return Report((Check("database", False, 0.1, "OperationalError: refused"),))

    working = api.app.state.readiness
    api.app.state.readiness = Down()
    try:
        response = api.client.get("/v1/ready")
    finally:
        api.app.state.readiness = working
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "NOT_READY" and error["details"]["down"] == ["database"]
    # And it is back as soon as the database is.
    assert api.client.get("/v1/ready").status_code == 200


def test_ready_is_never_rate_limited(api: Api) -> None:
    # A balancer checks often, from one address: it must see the replica, not a 429.
    from backend_stub.components.asgi import EXEMPT_PATHS

    assert "/v1/ready" in EXEMPT_PATHS
