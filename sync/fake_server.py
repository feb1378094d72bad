"""An in-memory governance server behind an httpx transport, for tests of the engine.

It implements the parts of the contract the sync engine speaks (decisions batch with
idempotency, approvals, dashboard and agents with ETags, seeds and violations as deltas with
tombstones, notifications) and can misbehave on request: fail before committing, commit
and then lose the acknowledgement, answer 5xx or 429, expire tokens, reorder or drop
results, refuse a whole batch. Its ``audit`` is the judge of what was applied.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from sync import rules
from sync.clock import Clock, FakeClock
from sync.models import ApprovalStatus
from sync.store import SLIM_KEYS, iso

Fault = Literal["connect_error", "server_error", "lose_ack", "rate_limited", "reorder",
                "drop_result", "refuse_batch", "expire_token"]


@dataclass
class AuditRecord:
    decision_id: str
    approval_id: str
    action: str
    sub: str
    device_id: str


@dataclass
class FakeServer(httpx.AsyncBaseTransport):
    clock: Clock = field(default_factory=FakeClock)
    sub: str = "sub-governor"
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed_deleted: dict[str, int] = field(default_factory=dict)
    violations: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    min_token_generation: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    requests: list[str] = field(default_factory=list)
    seed_version: int = 0
    offline: bool = False  # every request fails to connect, as with no network
    stamps_time: bool = False  # /v1/health answers meta.timestamp (the stub's envelope)
    violation_version: int = 0
    # GET /seeds/schema's body (tests hand in the stub's); None: a server without the route.
    seed_schema: dict[str, Any] | None = None
    event_seq: int = 0  # the last event's id (the stub's ids grow from 1)
    # As the stub: ``Prefer: return=minimal`` on POST /decisions slims each result's
    # approval to ``{id, status, version, updated_at}``; False: a server that ignores it.
    honours_prefer: bool = True
    _keys: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    # --- world building ---------------------------------------------------------------
    def add_approval(self, approval_id: str, status: str = "pending_approval", *,
                     veto_deadline: datetime | None = None, version: int = 1) -> dict[str, Any]:
        record = {"id": approval_id, "agent": {"id": f"agent-{approval_id}",
                                               "name": f"Agent {approval_id}"},
                  "requester": "ops", "industry": "healthcare", "status": status,
                  "version": version,
                  "veto_deadline": iso(veto_deadline) if veto_deadline else None,
                  "created_at": iso(self.clock.now()), "pipeline": [], "capabilities": [],
                  "decided_by": None, "decided_at": None,
                  "updated_at": iso(self.clock.now())}
        self.approvals[approval_id] = record
        return record

    def decide_elsewhere(self, approval_id: str, status: str = "approved",
                         by: str = "sub-other") -> None:
        record = self.approvals[approval_id]
        record.update(status=status, version=record["version"] + 1, decided_by=by,
                      decided_at=iso(self.clock.now()), updated_at=iso(self.clock.now()))

    def add_seed(self, seed_id: str, title: str, description: str = "") -> None:
        self.seed_version += 1
        self.seeds[seed_id] = {"id": seed_id, "title": title, "description": description,
                               "conditions": {}, "auto_approve": False, "status": "active",
                               "created_by": "governor", "created_at": iso(self.clock.now()),
                               "version": self.seed_version}
        self.seed_deleted.pop(seed_id, None)

    def delete_seed(self, seed_id: str) -> None:
        self.seed_version += 1
        self.seeds.pop(seed_id, None)
        self.seed_deleted[seed_id] = self.seed_version

    def emit(self, type_: str, data: dict[str, Any], *,
             causation_id: str | None = None) -> dict[str, Any]:
        """Store an event as the stub does (``GET /notifications`` lists it)."""
        self.event_seq += 1
        event = {"id": str(self.event_seq), "type": type_, "timestamp": iso(self.clock.now()),
                 "source": "fake-server", "data": data,
                 "metadata": {"correlation_id": data.get("approval_id"),
                              "causation_id": causation_id, "user_id": self.sub}}
        self.notifications.append(event)
        return event

    def expire_tokens(self, current_generation: int) -> None:
        self.min_token_generation = current_generation + 1

    def applied_count(self, decision_id: str) -> int:
        return sum(1 for r in self.audit if r.decision_id == decision_id)

    # --- transport --------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(f"{request.method} {request.url.path}")
        fault = self.faults.popleft() if self.faults else None
        if fault == "connect_error" or self.offline:
            raise httpx.ConnectError("fake: connection refused", request=request)
        if fault == "server_error":
            return _error(503, "INTERNAL", "Temporarily unavailable.")
        if fault == "rate_limited":
            return _error(429, "RATE_LIMITED", "Slow down.", headers={"Retry-After": "7"})
        if request.url.path == "/v1/health":  # no token, like the stub's
            meta = {"timestamp": iso(self.clock.now())} if self.stamps_time else None
            return _ok({"status": "ok"}, meta)
        if fault == "expire_token":
            self.min_token_generation += 1
        if not self._authorised(request):
            return _error(401, "INVALID_TOKEN", "The access token is expired.",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        response = self._route(request, fault)
        if fault == "lose_ack":
            # Committed; the answer never reaches the client.
            raise httpx.ReadError("fake: connection reset after commit", request=request)
        return response

    def _authorised(self, request: httpx.Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            return int(token.removeprefix("tok-")) >= self.min_token_generation
        except ValueError:
            return False

    def _route(self, request: httpx.Request, fault: Fault | None) -> httpx.Response:
        path = request.url.path.removeprefix("/v1/mobile")
        params = request.url.params
        most = _PAGE_LIMITS.get(path) if request.method == "GET" else None
        if most is not None and "limit" in params and not _within(params["limit"], most):
            # As the stub: a page size out of bounds is refused, not clamped.
            return _error(422, "VALIDATION_FAILED", f"limit must be 1 to {most}.",
                          {"fields": {"limit": f"1 to {most}"}})
        if request.method == "POST" and path == "/decisions":
            try:
                body = json.loads(request.content)
            except ValueError:  # as the stub: a body that is not JSON is a 422
                return _error(422, "VALIDATION_FAILED", "The body is not valid JSON.")
            minimal = self.honours_prefer and _prefers_minimal(request)
            response = self._decisions(body, fault, minimal=minimal)
            if minimal and response.status_code == 200:
                response.headers["Preference-Applied"] = "return=minimal"
            return response
        if request.method == "POST" and path == "/seeds":
            return self._create_seed(request)
        if request.method == "POST" and path.startswith("/seeds/") and \
                path.endswith("/retire"):
            return self._retire_seed(path.split("/")[2], request)
        if request.method == "GET" and path == "/dashboard":
            pending = sum(1 for a in self.approvals.values()
                          if a["status"] == "pending_approval")
            body = {"active_agents": len(self.agents), "pending_approvals": pending,
                    "in_veto_window": 0, "generated_at": iso(self.clock.now())}
            return _etagged(request, body, {"pending": pending})
        if request.method == "GET" and path == "/approvals":
            items = sorted(self.approvals.values(), key=lambda a: a["created_at"],
                           reverse=True)
            return _etagged(request, items, items, meta={"next_cursor": None})
        if request.method == "GET" and path.startswith("/approvals/"):
            found = self.approvals.get(path.rsplit("/", 1)[1])
            if found is None:
                return _error(404, "NOT_FOUND", "No such approval.")
            return _ok(found)
        if request.method == "GET" and path == "/agents":
            return _etagged(request, self.agents, self.agents)
        if request.method == "GET" and path == "/seeds/schema":
            if self.seed_schema is None:
                return _error(404, "NOT_FOUND", "No route GET /v1/mobile/seeds/schema.")
            return _etagged(request, self.seed_schema, self.seed_schema)
        if request.method == "GET" and path == "/seeds":
            since = int(params.get("since", 0))
            limit = int(params.get("limit", 50))
            after = params.get("cursor", "")
            changed = sorted((s for s in self.seeds.values()
                              if s["version"] > since and s["id"] > after),
                             key=lambda s: s["id"])
            deleted = [i for i, v in self.seed_deleted.items() if v > since]
            page = changed[:limit]
            more = len(changed) > limit
            return _ok(page, {"version": self.seed_version, "deleted": deleted,
                              "next_cursor": page[-1]["id"] if more else None})
        if request.method == "GET" and path == "/violations":
            since = int(params.get("since", 0))
            changed = [v for v in self.violations.values() if v["version"] > since]
            return _ok(changed, {"version": self.violation_version, "deleted": [],
                                 "next_cursor": None})
        if request.method == "GET" and path == "/notifications":
            after = params.get("after")
            ids = [n["id"] for n in self.notifications]
            start = ids.index(after) + 1 if after in ids else 0
            # As the stub: a page of ``limit`` (default 100); a full page carries the
            # cursor of the next, and ``last_event_id`` is the newest id answered.
            limit = int(params.get("limit", 100))
            page = self.notifications[start:start + limit]
            full = len(page) == limit
            return _ok(page, {"next_cursor": page[-1]["id"] if full else None,
                              "last_event_id": page[-1]["id"] if page else after or 0})
        return _error(404, "NOT_FOUND", f"No route {request.method} {path}.")

    def _decisions(self, body: dict[str, Any], fault: Fault | None, *,
                   minimal: bool = False) -> httpx.Response:
        items = body.get("decisions", [])
        if fault == "refuse_batch" and len(items) > 1:
            return _error(413, "PAYLOAD_TOO_LARGE", "The batch is too large.")
        if any(item.get("reason") == "POISON" for item in items):
            # A body the server cannot parse refuses the whole request.
            return _error(422, "VALIDATION_FAILED", "A reason is malformed.",
                          {"reason": "malformed"})
        results = [self._decide(item) for item in items]
        if minimal:
            results = [_slim(r) for r in results]
        if fault == "reorder":
            self.rng.shuffle(results)
        if fault == "drop_result" and results:
            results.pop(self.rng.randrange(len(results)))
        return _ok(results)

    def _decide(self, item: dict[str, Any]) -> dict[str, Any]:
        key = str(item.get("id"))
        digest = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
        if key in self._keys:
            first_digest, first = self._keys[key]
            if first_digest != digest:
                return {"id": key, "outcome": "rejected",
                        "error": {"code": "IDEMPOTENCY_KEY_REUSED",
                                  "message": "Same key, different body.", "details": {}}}
            return {**first, "outcome": "replayed"} if first["outcome"] == "applied" \
                else first
        result = self._apply(item)
        self._keys[key] = (digest, result)
        return result

    def _apply(self, item: dict[str, Any]) -> dict[str, Any]:
        key = str(item["id"])
        record = self.approvals.get(str(item.get("approval_id")))
        action = item.get("action")

        def rejected(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
            return {"id": key, "outcome": "rejected",
                    "error": {"code": code, "message": message, "details": details},
                    "approval": _change(record) if record else None}

        if record is None:
            return rejected("NOT_FOUND", "No such approval.", {})
        now = self.clock.now()
        if action == "veto":
            deadline = datetime.fromisoformat(record["veto_deadline"]) \
                if record["veto_deadline"] else None
            if ApprovalStatus(record["status"]) not in rules.VETOABLE:
                return rejected("ALREADY_DECIDED", "Already decided.",
                                {"status": record["status"], "decided_by": record["decided_by"],
                                 "decided_at": record["decided_at"]})
            if not rules.window_open(deadline, now):
                return rejected("VETO_WINDOW_CLOSED", "The veto window has closed.",
                                {"deadline": record["veto_deadline"]})
            record.update(status="vetoed", veto_deadline=None)
        elif action in ("approve", "request_changes"):
            if record["status"] != "pending_approval":
                return rejected("ALREADY_DECIDED", "Already decided.",
                                {"status": record["status"], "decided_by": record["decided_by"],
                                 "decided_at": record["decided_at"]})
            if item.get("expected_version") != record["version"]:
                return rejected("VERSION_CONFLICT", "The request changed.",
                                {"current_version": record["version"]})
            if action == "approve":
                record.update(status="approved",
                              veto_deadline=iso(now + timedelta(hours=24)))
            else:
                record["status"] = "changes_requested"
        else:
            return rejected("VALIDATION_FAILED", "Unknown action.", {"action": action})
        record.update(version=record["version"] + 1, decided_by=self.sub,
                      decided_at=iso(now), updated_at=iso(now))
        self.audit.append(AuditRecord(key, record["id"], str(action), self.sub,
                                      str(item.get("device_id"))))
        # Like the stub: every applied decision is an event (the other devices' news).
        self.emit("governance.approval.decided",
                  {"approval_id": record["id"], "action": action, "status": record["status"],
                   "decided_by": self.sub, "category": item.get("category"),
                   "veto_deadline": record["veto_deadline"], "version": record["version"]},
                  causation_id=key)
        # Like the stub: the summary and what a decision changes, not the whole request.
        return {"id": key, "outcome": "applied", "approval": _change(record)}

    def _create_seed(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if not key:
            return _error(422, "VALIDATION_FAILED", "Idempotency-Key is required.")
        draft = json.loads(request.content)
        digest = hashlib.sha256(request.content).hexdigest()
        if key in self._keys:
            first_digest, first = self._keys[key]
            if first_digest != digest:
                return _error(422, "IDEMPOTENCY_KEY_REUSED", "Same key, different body.")
            return _ok(first, status=201, headers={"Idempotent-Replayed": "true"})
        if not draft.get("conditions"):
            return _error(422, "VALIDATION_FAILED", "Conditions are required.",
                          {"conditions": "required"})
        seed_id = f"GEN-{len(self.seeds) + 100:03d}"
        self.add_seed(seed_id, draft["title"], draft.get("description", ""))
        self.audit.append(AuditRecord(key, seed_id, "create_seed", self.sub, ""))
        self._keys[key] = (digest, self.seeds[seed_id])
        return _ok(self.seeds[seed_id], status=201)


    def _retire_seed(self, seed_id: str, request: httpx.Request) -> httpx.Response:
        """As the stub: the seed is retired (its version moves); again, the same seed."""
        try:
            reason = json.loads(request.content).get("reason")
        except (ValueError, AttributeError):
            reason = None
        if not isinstance(reason, str) or not 1 <= len(reason) <= 2000:
            return _error(422, "VALIDATION_FAILED", "Say why the seed is retired.",
                          {"fields": {"reason": "required, 1 to 2000 characters"}})
        seed = self.seeds.get(seed_id)
        if seed is None:
            return _error(404, "NOT_FOUND", f"Seed {seed_id!r} does not exist.",
                          {"id": seed_id})
        if seed["status"] != "retired":
            self.seed_version += 1
            seed.update(status="retired", version=self.seed_version)
            self.audit.append(AuditRecord(seed_id, seed_id, "retire_seed", self.sub, ""))
        return _ok(seed)


# The page sizes the stub accepts per list (``limit``).
_PAGE_LIMITS = {"/approvals": 200, "/seeds": 200, "/violations": 200, "/agents": 200,
                "/notifications": 500}


def _within(limit: str, most: int) -> bool:
    try:
        return 1 <= int(limit) <= most
    except ValueError:
        return False


_CHANGE_FIELDS = ("id", "agent", "requester", "industry", "status", "version",
                  "veto_deadline", "created_at", "pipeline", "decided_by", "decided_at",
                  "updated_at")


def _change(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in _CHANGE_FIELDS if k in record}


def _prefers_minimal(request: httpx.Request) -> bool:
    """RFC 7240: ``return=minimal`` among the request's ``Prefer`` preferences."""
    prefer = ",".join(request.headers.get_list("prefer"))
    return any(p.strip().lower() == "return=minimal" for p in prefer.split(","))


def _slim(result: dict[str, Any]) -> dict[str, Any]:
    """A decision result as ``return=minimal`` answers it: the approval reduced to its
    id, status, version and ``updated_at``; the rest (outcome, error) as it was. A
    rejection keeps the whole request (the client names the fields that changed from it).
    The kept answer of a key is never changed: a replay is slimmed by its own request."""
    approval = result.get("approval")
    if not isinstance(approval, dict) or result.get("outcome") == "rejected":
        return result
    return {**result, "approval": {k: approval[k] for k in SLIM_KEYS if k in approval}}


def _ok(data: Any, meta: dict[str, Any] | None = None, *, status: int = 200,
        headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"data": data, "meta": {"request_id": "fake",
                                                               **(meta or {})}},
                          headers=headers)


def _etagged(request: httpx.Request, data: Any, basis: Any,
             meta: dict[str, Any] | None = None) -> httpx.Response:
    etag = '"' + hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()
                                ).hexdigest()[:16] + '"'
    if request.headers.get("if-none-match") == etag:
        return httpx.Response(304, headers={"ETag": etag})
    return _ok(data, meta, headers={"ETag": etag})


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None, *,
           headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message,
                                                  "details": details or {}},
                                        "meta": {"request_id": "fake"}}, headers=headers)
