"""The components' HTTP layer: one pure ASGI middleware (request id, rate limits, metrics,
a span per request) and the ``GET /metrics`` route.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task or stream wrapping, so it
costs microseconds per request and leaves SSE streams untouched.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

from fastapi import Request, Response
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend_stub.clock import Clock, SystemClock, rfc3339
from backend_stub.components.observability import Metrics, Tracing, request_id_var
from backend_stub.components.resources import RateDecision, RateLimiter

# Never rate-limited: scrapers and health checks must see an overloaded stub.
EXEMPT_PATHS = frozenset({"/metrics", "/v1/health", "/v1/ready"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class ComponentsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, tracing: Tracing,
                 limiter: RateLimiter, requests_per_minute: int,
                 client_requests_per_minute: int | None = None,
                 clock: Clock | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.limiter = limiter
        self.requests_per_minute = requests_per_minute
        self.client_requests_per_minute = client_requests_per_minute or requests_per_minute
        self.clock = clock or SystemClock()
        self._digests: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        # One id for the whole request: the app's request-id middleware may have chosen it
        # already (it runs outside this one); the envelope helpers read the same slot.
        rid = state.get("request_id")
        if rid is None:
            incoming = _header(scope, b"x-request-id")
            rid = incoming if incoming and len(incoming) <= 200 else uuid.uuid4().hex
            state["request_id"] = rid
        token = request_id_var.set(rid)
        try:
            refusal = self._rate_limit(scope)
            if refusal is not None:
                await self._refuse(scope, send, rid, refusal)
                return
            await self._observed(scope, receive, send)
        finally:
            request_id_var.reset(token)

    def _rate_limit(self, scope: Scope) -> tuple[str, RateDecision] | None:
        if not self.limiter.enabled or scope["path"] in EXEMPT_PATHS:
            return None
        client = scope.get("client")
        keys = [("client", f"client:{client[0] if client else 'unknown'}",
                 self.client_requests_per_minute)]
        auth = _header(scope, b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            # A digest, not the token itself: the counters may live in a shared Redis.
            token = auth[7:].strip()
            digest = self._digests.get(token)
            if digest is None:
                digest = hashlib.sha256(token.encode()).hexdigest()[:24]
                if len(self._digests) > 10_000:
                    self._digests.clear()
                self._digests[token] = digest
            keys.append(("token", f"token:{digest}", self.requests_per_minute))
        for scope_name, key, limit in keys:
            decision = self.limiter.hit(key, limit)
            if not decision.allowed:
                return scope_name, decision
        return None

    async def _refuse(self, scope: Scope, send: Send, rid: str,
                      refusal: tuple[str, RateDecision]) -> None:
        scope_name, decision = refusal
        self.metrics.record_rate_limited(scope_name)
        body = json.dumps({
            "error": {"code": "RATE_LIMITED",
                      "message": f"Too many requests for this {scope_name} "
                                 f"({decision.limit} a minute); retry after "
                                 f"{decision.retry_after} s.",
                      "details": {"retry_after": decision.retry_after, "limit": decision.limit,
                                  "scope": scope_name}},
            "meta": {"request_id": rid, "timestamp": rfc3339(self.clock.now())},
        }).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(decision.retry_after).encode()),
            (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe_request("rate_limited", scope["method"], 429, 0.0)

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope["method"]
        # A span nobody records is invisible: skip its cost (~10-40 µs) on the hot path.
        if not self.tracing.recording:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                self.metrics.observe_request(_route(scope), method, status,
                                             time.perf_counter() - started)
            return
        with self.tracing.span(f"{method} {scope['path']}", kind=trace.SpanKind.SERVER,
                               **{"http.request.method": method, "url.path": scope["path"],
                                  "request.id": request_id_var.get()}) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = _route(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                self.metrics.observe_request(route, method, status,
                                             time.perf_counter() - started)


def _route(scope: Scope) -> str:
    # The route template, not the raw path: one label per endpoint, not per approval id.
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
