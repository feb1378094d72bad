"""``/v1/mobile``: the governor app's API (see ``docs/api.md`` and the contract)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from backend_stub.api import schemas as s
from backend_stub.api.deps import (
    actor,
    any_scope,
    before_request,
    errors,
    read_scope,
    service,
    veto_scope,
    write_scope,
)
from backend_stub.api.readiness import health
from backend_stub.clock import rfc3339
from backend_stub.components.hooks import cached, instance_key, observed_decisions
from backend_stub.domain.service import (
    AttachmentIn,
    DecisionCommand,
    DecisionResult,
    GovernanceService,
)
from backend_stub.envelope import (
    CACHE_CONTROL,
    FastJSONResponse,
    etag_of,
    not_modified,
    ok,
    ok_or_not_modified,
)
from backend_stub.errors import ApiError
from backend_stub.oauth.guard import Principal

# /events, /notifications and /events/key are served by backend_stub.api.events_stream
# (signed messages); the domain keeps the events they read.
router = APIRouter(prefix="/v1/mobile", tags=["mobile"],
                   dependencies=[Depends(before_request)])

Svc = Annotated[GovernanceService, Depends(service)]
Read = Annotated[Principal, Depends(read_scope)]
Write = Annotated[Principal, Depends(write_scope)]
Veto = Annotated[Principal, Depends(veto_scope)]
Anyone = Annotated[Principal, Depends(any_scope)]
ApprovalId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. REQ-0001")]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size (default 50).")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=500,
                                     description="meta.next_cursor of the previous page.")]
Since = Annotated[int | None, Query(ge=0, le=2**62,
                                    description="A meta.version you hold: only changes after it.")]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                       description="Makes the write happen once (7 days).")]
OptionalKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                           max_length=200)]
REPLAYED = {"Idempotent-Replayed": {"description": "true when this answer is a replay",
                                    "schema": {"type": "string", "enum": ["true"]}}}
IfNoneMatch = Annotated[str | None, Header(max_length=200, description=(
    "An ETag of an earlier answer: 304 Not Modified (no body) while it is still current."))]
PreferHeader = Annotated[str | None, Header(alias="Prefer", max_length=500, description=(
    "RFC 7240. `return=minimal`: each result's `approval` is only `{id, status, version, "
    "updated_at}` (the receipt stays); answered with `Preference-Applied: return=minimal`."
))]
MINIMAL_APPLIED = {"Preference-Applied": {
    "description": "`return=minimal` when the request's `Prefer` asked for it",
    "schema": {"type": "string", "enum": ["return=minimal"]}}}
CACHEABLE = {**errors(304), 200: {"headers": {"ETag": {
    "description": "Validator for If-None-Match", "schema": {"type": "string"}}}}}


def _list(request: Request, items: list[dict[str, Any]], next_cursor: str | None,
          **extra: Any) -> JSONResponse:
    return ok(request, items, next_cursor=next_cursor, **extra)


# ---------------------------------------------------------------- dashboard
@router.get("/dashboard", response_model=s.Envelope[s.Dashboard], responses=CACHEABLE)
def dashboard(request: Request, _: Read, svc: Svc, if_none_match: IfNoneMatch = None
              ) -> Response:
    """Fleet counts, the nearest veto deadline, recent vetoes, health (the /v1/ready
    checks), budget and fleet compliance."""

    def compute() -> dict[str, Any]:
        board = svc.dashboard()
        report = request.app.state.readiness.run()
        board["health"] = health(report, board["health"]["violations_24h"])
        return board

    data = cached(request, instance_key(request, "dashboard", svc.change_count),
                  compute, ttl=5)
    etag = etag_of(data)  # without generated_at, which changes on every answer
    if not_modified(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    data["generated_at"] = rfc3339(request.app.state.clock.now())
    return ok(request, data, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})


# ---------------------------------------------------------------- approvals
@router.get("/approvals", response_model=s.ListEnvelope[s.ApprovalSummary],
            responses=CACHEABLE)
async def list_approvals(request: Request, _: Read,
                         status: Annotated[s.ApprovalStatus | None, Query()] = None,
                         cursor: Cursor = None, limit: Limit = 50,
                         if_none_match: IfNoneMatch = None) -> Response:
    """Agent-creation requests, newest first; ETag and If-None-Match as for the dashboard."""
    # The governor app's most frequent read, kept on the event loop: one indexed query of
    # summary columns (well under a millisecond) costs less than a thread-pool hop.
    svc: GovernanceService = request.app.state.governance
    items, next_cursor = svc.list_approvals(status=status, cursor=cursor, limit=limit)
    return ok_or_not_modified(request, items, if_none_match, next_cursor=next_cursor)


@router.get("/approvals/{approval_id}", response_model=s.Envelope[s.ApprovalDetail],
            responses=errors(404))
def get_approval(request: Request, approval_id: ApprovalId, _: Read, svc: Svc
                 ) -> JSONResponse:
    """The full request: pipeline, capabilities, WASM report, budget and seed matches."""
    return ok(request, svc.get_approval(approval_id))


def _decide(request: Request, principal: Principal, svc: GovernanceService,
            commands: list[DecisionCommand], **options: Any) -> list[DecisionResult]:
    """Decide through the components: metrics, a span per decision, the audit log; the
    receipts (by decision id) are left in ``request.state.receipts``."""
    who = actor(principal, request)
    book = request.app.state.receipts
    issued: dict[str, Any] = {}
    request.state.receipts = issued
    return observed_decisions(request, who, commands, lambda also: svc.decide(
        who, commands, also=book.writer(who.sub, commands, also, issued) if book else also,
        **options))


def _answer(result: DecisionResult, request: Request) -> JSONResponse:
    if result.error is not None:
        raise result.error
    headers = {"Idempotent-Replayed": "true"} if result.outcome == "replayed" else None
    body = result.body
    receipt = request.state.receipts.get(result.key)
    if receipt is not None and body is not None:  # a copy: the replay record stays as is
        body = {**body, "meta": {**body.get("meta", {}), "receipt": receipt}}
    return FastJSONResponse(body, status_code=result.status_code, headers=headers)


def _attachments(items: list[s.AttachmentIn] | None) -> tuple[AttachmentIn, ...]:
    return tuple(AttachmentIn(a.name, a.content_type, a.decoded()) for a in items or ())


@router.post("/approvals/{approval_id}/approve", response_model=s.Envelope[s.ApprovalDetail],
             responses={**errors(404, 409), 200: {"headers": REPLAYED}})
def approve(request: Request, approval_id: ApprovalId, body: s.ApproveIn,
            key: IdempotencyKey, principal: Write, svc: Svc) -> JSONResponse:
    """Approve a pending request at the version you read; it enters the 24 h veto window."""
    command = DecisionCommand(key=key, approval_id=approval_id, action="approve",
                              expected_version=body.expected_version, comment=body.comment)
    return _answer(_decide(request, principal, svc, [command], full_detail=True)[0],
                   request)


@router.post("/approvals/{approval_id}/request-changes",
             response_model=s.Envelope[s.ApprovalDetail],
             responses={**errors(404, 409), 200: {"headers": REPLAYED}})
def request_changes(request: Request, approval_id: ApprovalId, body: s.RequestChangesIn,
                    principal: Write, svc: Svc, key: OptionalKey = None) -> JSONResponse:
    """Send a pending request back to its requester with a reason."""
    command = DecisionCommand(key=key or f"auto-{uuid.uuid4().hex}", approval_id=approval_id,
                              action="request_changes", expected_version=body.expected_version,
                              reason=body.reason)
    return _answer(_decide(request, principal, svc, [command], full_detail=True)[0],
                   request)


@router.post("/approvals/{approval_id}/veto", response_model=s.Envelope[s.ApprovalDetail],
             responses={**errors(404, 409), 200: {"headers": REPLAYED}})
def veto(request: Request, approval_id: ApprovalId, body: s.VetoIn, key: IdempotencyKey,
         principal: Veto, svc: Svc) -> JSONResponse:
    """Veto a request while its window is open (absolute: no version needed)."""
    command = DecisionCommand(key=key, approval_id=approval_id, action="veto",
                              category=body.category, reason=body.reason,
                              attachments=_attachments(body.attachments))
    return _answer(_decide(request, principal, svc, [command], full_detail=True)[0],
                   request)


def _device_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:  # well-formed but not representable (a leap second): keep none
        return None


def prefers_minimal(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240: comma-separated preferences, each maybe with
    ``;`` parameters, names case-insensitive, values maybe quoted) asks ``return=minimal``."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False


@router.post("/decisions", response_model=s.Envelope[list[s.BatchResult]],
             responses={**errors(), 200: {"headers": MINIMAL_APPLIED}})
def decisions(request: Request, body: s.BatchIn, principal: Anyone, svc: Svc,
              prefer: PreferHeader = None) -> JSONResponse:
    """Up to 500 decisions in one transaction; one result per item, in order.

    Each item needs the scope of its action; an item without it is rejected alone. With
    `Prefer: return=minimal` each `approval` is only `{id, status, version, updated_at}`.
    """
    commands = []
    for item in body.decisions:
        common: dict[str, Any] = {
            "key": item.id, "approval_id": item.approval_id, "action": item.action,
            "device_id": item.device_id, "device_decided_at": _device_time(item.decided_at)}
        if isinstance(item, s.VetoItem):
            commands.append(DecisionCommand(**common, category=item.category,
                                            reason=item.reason,
                                            attachments=_attachments(item.attachments)))
        elif isinstance(item, s.RequestChangesItem):
            commands.append(DecisionCommand(**common, expected_version=item.expected_version,
                                            reason=item.reason))
        else:
            commands.append(DecisionCommand(**common, expected_version=item.expected_version,
                                            comment=item.comment))
    minimal = prefers_minimal(prefer)
    results = _decide(request, principal, svc, commands, minimal=minimal)
    return ok(request, [_batch_result(r, request.state.receipts) for r in results],
              headers={"Preference-Applied": "return=minimal"} if minimal else None)


def _batch_result(result: DecisionResult, receipts: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"id": result.key, "outcome": result.outcome}
    if result.key in receipts and result.outcome != "rejected":
        item["receipt"] = receipts[result.key]
    if result.error is not None:
        error: ApiError = result.error
        item["error"] = {"code": error.code, "message": error.message,
                         "details": error.details}
    if result.approval is not None:
        item["approval"] = result.approval
    return item


# ---------------------------------------------------------------- seeds
@router.get("/seeds", response_model=s.VersionedEnvelope[s.Seed], responses=errors())
def list_seeds(request: Request, _: Read, svc: Svc, since: Since = None, cursor: Cursor = None,
               limit: Limit = 50,
               q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
               status: Annotated[s.SeedStatus | None, Query()] = None) -> JSONResponse:
    """Precedent seeds; with since=V only those changed after V, and meta.deleted."""
    items, next_cursor, version, deleted = svc.list_seeds(since=since, cursor=cursor,
                                                          limit=limit, q=q, status=status)
    return _list(request, items, next_cursor, version=version, deleted=deleted)


@router.get("/seeds/schema", response_model=s.Envelope[dict[str, Any]],
            responses={**errors(), 304: {"description": "Not modified (If-None-Match)."}})
def seed_schema(request: Request, _: Read,
                if_none_match: IfNoneMatch = None) -> Response:
    """The JSON Schema of POST /seeds's body (every condition rule the server knows), with
    an ETag; generated from the model the route validates with, so it cannot drift."""
    return ok_or_not_modified(request, _SEED_SCHEMA, if_none_match)


_SEED_SCHEMA = s.seed_schema()


@router.get("/seeds/{seed_id}", response_model=s.SeedEnvelope, responses=errors(404))
def get_seed(request: Request, seed_id: Annotated[str, Path(min_length=1, max_length=64)],
             _: Read, svc: Svc) -> JSONResponse:
    seed = svc.get_seed(seed_id)
    return ok(request, seed, version=svc.seeds_version())


@router.post("/seeds", status_code=201, response_model=s.SeedEnvelope,
             responses={**errors(), 201: {"headers": REPLAYED}})
def create_seed(request: Request, body: s.SeedIn, key: IdempotencyKey, principal: Write,
                svc: Svc) -> JSONResponse:
    """Create a precedent seed; its conditions are checked against the rule schema."""
    status_code, payload, replayed = svc.create_seed(
        actor(principal, request), key=key, title=body.title, description=body.description,
        conditions=body.conditions, auto_approve=body.auto_approve, status=body.status)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(payload, status_code=status_code, headers=headers)


@router.delete("/seeds/{seed_id}", response_model=s.Envelope[s.SeedDeleted],
               responses=errors(404))
def delete_seed(request: Request, seed_id: Annotated[str, Path(min_length=1, max_length=64)],
                principal: Write, svc: Svc) -> JSONResponse:
    """Delete a seed; delta readers see its id in meta.deleted."""
    version = svc.delete_seed(actor(principal, request), seed_id)
    return ok(request, {"id": seed_id, "deleted": True, "version": version})


@router.post("/seeds/{seed_id}/retire", response_model=s.SeedEnvelope,
             responses=errors(404))
def retire_seed(request: Request, seed_id: Annotated[str, Path(min_length=1, max_length=64)],
                body: s.SeedRetireIn, principal: Write, svc: Svc) -> JSONResponse:
    """Retire a seed (an extension of the contract): it matches and auto-approves nothing
    from now on; its record and metrics stay. Retiring it again answers the same."""
    seed = svc.retire_seed(actor(principal, request), seed_id, body.reason)
    return ok(request, seed, version=seed["version"])


# ---------------------------------------------------------------- agents, violations
@router.get("/agents", response_model=s.ListEnvelope[s.Agent], responses=CACHEABLE)
def list_agents(request: Request, _: Read, svc: Svc,
                status: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
                industry: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                cursor: Cursor = None, limit: Limit = 50, if_none_match: IfNoneMatch = None
                ) -> Response:
    """Agents with status, industry, budget use and capability grants; ETag and
    If-None-Match as for the dashboard."""
    items, next_cursor = svc.list_agents(status=status, industry=industry, cursor=cursor,
                                         limit=limit)
    return ok_or_not_modified(request, items, if_none_match, next_cursor=next_cursor)


@router.get("/violations", response_model=s.VersionedEnvelope[s.Violation], responses=errors())
def list_violations(request: Request, _: Read, svc: Svc, since: Since = None,
                    cursor: Cursor = None, limit: Limit = 50) -> JSONResponse:
    """Constitutional, budget and ethics violations, newest first; since= as for seeds."""
    items, next_cursor, version, deleted = svc.list_violations(since=since, cursor=cursor,
                                                               limit=limit)
    return _list(request, items, next_cursor, version=version, deleted=deleted)
