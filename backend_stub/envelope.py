"""The platform's response envelopes and request ids."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from backend_stub.clock import rfc3339


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson: lists of requests and batch results are the hot path."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
    return str(rid)


def meta(request: Request, **extra: Any) -> dict[str, Any]:
    clock = request.app.state.clock
    return {"request_id": request_id(request), "timestamp": rfc3339(clock.now()), **extra}


def ok(request: Request, data: Any, *, status_code: int = 200,
       headers: dict[str, str] | None = None, **extra_meta: Any) -> JSONResponse:
    return FastJSONResponse({"data": data, "meta": meta(request, **extra_meta)},
                        status_code=status_code, headers=headers)


def error_body(request: Request, code: str, message: str, details: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "meta": meta(request),
    }
