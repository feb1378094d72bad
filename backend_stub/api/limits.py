"""A body-size cap in front of every route, answered in the contract's 413 envelope."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # a veto with 5 MB of attachments, base64-encoded
BATCH_MAX_BODY = 16 * 1024 * 1024
BATCH_PATH = "/v1/mobile/decisions"
# Seed 003: a 50 MB module in a form of at most 60 MB (the module itself is checked by
# backend_stub.api.submit as it streams in).
SUBMIT_MAX_BODY = 60 * 1024 * 1024
SUBMIT_PATH = "/v1/agents"


class BodyLimit:
    """Refuse bodies over the limit before they are read in full.

    The over-limit signal is an ``HTTPException(413)`` raised while the route reads its
    body, so the app's handler renders it as ``PAYLOAD_TOO_LARGE`` with the request id.
    """

    def __init__(self, app: ASGIApp, default: int = DEFAULT_MAX_BODY,
                 batch: int = BATCH_MAX_BODY) -> None:
        self.app = app
        self.default = default
        self.batch = batch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path")
        limit = (self.batch if path == BATCH_PATH else SUBMIT_MAX_BODY if path == SUBMIT_PATH
                 else self.default)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if declared is not None and declared > limit:
                raise _too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The request body is over {limit // (1024 * 1024)} MB; "
                              "send less (attachments: 5 MB in all, a module 50 MB).")
