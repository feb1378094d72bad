"""``/v1/demo``: demo control, mounted only with ``--demo``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from backend_stub.api import schemas as s
from backend_stub.api.deps import errors, known_query
from backend_stub.clock import rfc3339
from backend_stub.demo.activity import DemoPlatform
from backend_stub.domain.service import GovernanceService
from backend_stub.envelope import ok

router = APIRouter(prefix="/v1/demo", tags=["demo"], dependencies=[Depends(known_query)])


@router.post("/scenario", response_model=s.Envelope[s.ScenarioResult],
             responses=errors(404, auth=False))
async def scenario(request: Request, body: s.ScenarioIn) -> JSONResponse:
    """Make the platform act now: a new pending request, a budget crossing, a violation..."""
    platform: DemoPlatform = request.app.state.demo_platform
    result = await run_in_threadpool(platform.scenario, body.event)
    return ok(request, {"event": body.event, "result": result})


@router.post("/clock", response_model=s.Envelope[s.ClockState], responses=errors(auth=False))
async def clock(request: Request, body: s.ClockIn) -> JSONResponse:
    """Move the stub's clock forward; veto windows, token expiry and TTLs follow it."""
    request.app.state.clock.advance(body.advance_seconds)
    svc: GovernanceService = request.app.state.governance
    changed = await run_in_threadpool(svc.sweep)
    return ok(request, {"now": rfc3339(request.app.state.clock.now()),
                        "advanced_seconds": body.advance_seconds,
                        "deployed_or_notified": changed})
