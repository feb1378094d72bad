"""The platform's response envelopes and request ids."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson
from fastapi import Request, Response
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


def _etag(encoded: bytes) -> str:
    """The quoted ``ETag`` value for ``encoded``: the first 32 hex digits of its sha256."""
    return f'"{hashlib.sha256(encoded).hexdigest()[:32]}"'


def etag_of(*content: Any) -> str:
    """A strong validator: the same content gives the same tag, in every stub process."""
    return _etag(b"".join(orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for c in content))


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, RFC 9110) or is ``*``."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


CACHE_CONTROL = "private, max-age=0"


def ok_or_not_modified(request: Request, data: Any, if_none_match: str | None,
                       **extra_meta: Any) -> Response:
    """``ok()`` with an ``ETag`` over ``data`` and the extra meta (not the request id or
    time): ``304 Not Modified`` when ``If-None-Match`` names it. ``data`` is encoded once,
    for the tag and the body alike (the approvals list is the app's most frequent read)."""
    encoded = orjson.dumps(data)
    etag = _etag(encoded + orjson.dumps(extra_meta, option=orjson.OPT_SORT_KEYS))
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if not_modified(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    # Byte for byte what ok() renders: orjson writes {"data":...,"meta":...} so.
    body = b'{"data":' + encoded + b',"meta":' + orjson.dumps(meta(request, **extra_meta)) + b"}"
    return Response(body, media_type="application/json", headers=headers)


def error_body(request: Request, code: str, message: str, details: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "meta": meta(request),
    }
