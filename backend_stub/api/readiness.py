"""Readiness: can this stub serve now? One set of checks for ``/v1/ready`` and the
dashboard's ``health``.

``/v1/health`` is liveness: the process answers, nothing is checked. ``/v1/ready`` runs the
checks of what is configured (the database always; Redis and the Redis-backed message bus
when ``GOVSTUB_REDIS_URL`` is set) and answers 503 ``NOT_READY`` naming each one that is
down, so a load balancer (HAProxy's ``option httpchk GET /v1/ready``) stops sending traffic
to a stub that would only fail it. Each check is one round trip (``SELECT 1``, ``PING``,
``XLEN``): cheap enough to run every second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from backend_stub.db import Database
from backend_stub.envelope import ok
from backend_stub.errors import NotReady

# Raises when its dependency cannot serve; returns when it can.
Probe = Callable[[], None]

READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every configured dependency answered: `data.checks` has each"},
    503: {"description": "NOT_READY: `error.details.down` names what is down"},
    500: {"description": "INTERNAL: the stub failed"},
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok" if self.ok else "down",
                                "latency_ms": round(self.latency_ms, 2)}
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def down(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"status": "not_ready" if self.down else "ready",
                "checks": {c.name: c.as_dict() for c in self.checks}}


class Readiness:
    """Runs named probes in order; a probe that raises is down, with the error's text."""

    def __init__(self, probes: Mapping[str, Probe], *,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.probes = dict(probes)
        self._timer = timer

    def run(self) -> Report:
        checks = []
        for name, probe in self.probes.items():
            start = self._timer()
            try:
                probe()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
                checks.append(Check(name, False, (self._timer() - start) * 1000, error))
            else:
                checks.append(Check(name, True, (self._timer() - start) * 1000))
        return Report(tuple(checks))


def database_probe(db: Database) -> Probe:
    def probe() -> None:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return probe


def redis_probe(client: Any) -> Probe:
    def probe() -> None:
        if not client.ping():
            raise ConnectionError("Redis did not answer PING")

    return probe


def health(report: Report, violations_24h: int) -> dict[str, Any]:
    """The dashboard's ``health``: each check's status, and overall ``down`` when a check
    is down, ``degraded`` with five or more violations in a day, else ``ok``."""
    status = "down" if report.down else "degraded" if violations_24h >= 5 else "ok"
    checks: dict[str, Any] = {}
    for c in report.checks:  # no latency: the dashboard's ETag must not change with it
        checks[c.name] = {"status": "ok"} if c.ok else {"status": "down", "error": c.error}
    return {"status": status, **checks, "violations_24h": violations_24h}


def readiness_for(app: FastAPI) -> Readiness:
    """The checks of what ``app`` is configured with."""
    probes: dict[str, Probe] = {"database": database_probe(app.state.db)}
    components = getattr(app.state, "components", None)
    if components is not None and components.redis is not None:
        probes["redis"] = redis_probe(components.redis)
    if components is not None and components.bus.external:
        probes["bus"] = components.bus.check
    return Readiness(probes)


def install_readiness(app: FastAPI) -> None:
    """``app.state.readiness`` and ``GET /v1/ready`` (no token: load balancers call it)."""
    app.state.readiness = readiness_for(app)

    @app.get("/v1/ready", tags=["health"], responses=READY_RESPONSES)
    def ready(request: Request) -> JSONResponse:
        """Readiness: 200 with each check, or 503 NOT_READY naming what is down."""
        report: Report = request.app.state.readiness.run()
        if report.down:
            names = ", ".join(report.down)
            raise NotReady(f"This stub cannot serve: {names} down; see details.checks, "
                           "fix or restart it, and ask again.",
                           details={"down": report.down, **report.as_dict()},
                           # a balancer (deploy/haproxy.cfg) asks again soon
                           headers={"Retry-After": "1"})
        return ok(request, report.as_dict())
