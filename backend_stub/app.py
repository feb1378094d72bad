"""The stub's app factory: ``create_app(settings)`` builds everything; nothing at import."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend_stub.clock import Clock, SystemClock
from backend_stub.db import Database
from backend_stub.envelope import error_body, ok, request_id
from backend_stub.errors import ApiError
from backend_stub.settings import StubSettings

log = logging.getLogger("backend_stub")


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        fields[".".join(loc) or "body"] = str(err.get("msg", "invalid"))
    return {"fields": fields}


class RequestIdMiddleware:
    """Every response carries ``X-Request-ID``: the caller's own, else a new one.

    Plain ASGI rather than ``@app.middleware``: it costs nothing per request and does not
    buffer streaming responses (the SSE endpoint).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id")
        rid = incoming if incoming and len(incoming) <= 200 else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(request, exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body(request, "VALIDATION_FAILED",
                       "The request is not valid; fix the fields named in details.",
                       _validation_details(exc)),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's only 400: a body it cannot decode (not UTF-8). The contract says
            # malformed JSON is 422 VALIDATION_FAILED.
            return JSONResponse(
                error_body(request, "VALIDATION_FAILED",
                           "The request body is not valid JSON; send UTF-8 encoded JSON.",
                           {"fields": {"body": str(exc.detail)}}),
                status_code=422)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status_code, "HTTP_ERROR")
        message = ("No such resource; check the path." if exc.status_code == 404
                   else str(exc.detail))
        return JSONResponse(error_body(request, code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": request_id(request)})
        return JSONResponse(
            error_body(request, "INTERNAL",
                       "The governance stub failed to handle this request; retry later."),
            status_code=500,
        )


def create_app(settings: StubSettings | None = None, *, clock: Clock | None = None,
               database: Database | None = None) -> FastAPI:
    settings = settings or StubSettings()
    clock = clock or SystemClock()
    db = database or Database(settings.database_url)

    app = FastAPI(title="WAOOAW governance stub", version="1.0.0")
    app.state.settings = settings
    app.state.clock = clock
    app.state.db = db

    # The core components first: the request-id middleware added next then wraps theirs.
    from backend_stub.components import install_components

    install_components(app)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)

    @app.get("/v1/health", tags=["health"],
             responses={500: {"description": "INTERNAL: the stub failed"}})
    def health(request: Request) -> JSONResponse:
        """Liveness: the process answers (nothing checked; /v1/ready checks)."""
        return ok(request, {"status": "ok"})

    from backend_stub.api.readiness import install_readiness

    install_readiness(app)

    # Feature packages install their migrations, routers and services here.
    # (Filled in by backend_stub.oauth, backend_stub.api, backend_stub.components.)
    from backend_stub.api import install_api, install_demo
    from backend_stub.oauth import install_oauth

    install_oauth(app)
    install_api(app)
    # Signed SSE, the gap page and the event key (replaces the API's unsigned versions).
    from backend_stub.api.events_stream import install as install_push

    install_push(app)
    if settings.demo:
        install_demo(app)
    if settings.cors_origins:
        # Last, so outermost: refusals (401, 429) carry the CORS headers too, and a browser
        # shows the app the error instead of an opaque network failure.
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key",
                           "If-None-Match", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["ETag", "Retry-After", "WWW-Authenticate", "X-Request-ID"],
            max_age=600)
    return app
