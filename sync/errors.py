"""Errors of the sync engine.

Hierarchy::

    SyncError                   anything the engine reports
    ├── SignInRequired          no usable session: sign in again (cache and outbox are kept)
    │   └── RefreshRefused      the server refused the refresh token (revoked, reused, expired)
    ├── AuthFlowError           a sign-in flow failed (state mismatch, denied, expired code)
    ├── InsecureTransport       plain http:// to another machine, or an unreadable CA bundle
    ├── ServerUnreachable       network error or 5xx: retried with backoff
    ├── RateLimitedByServer     429: wait for ``retry_after`` seconds
    ├── ApiRejected             the server answered a contract error (code, message, details)
    ├── InvalidDecision         refused locally before queueing (reason too long, ...)
    ├── StoreError              the local database cannot be used (path, corruption)
    │   └── DeviceKeyError      an outbox entry cannot be opened with this device's key
    └── ClientStopped           asked after ``stop()`` for what only a running client has

Messages name the object and say what to do.
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    pass


class SignInRequired(SyncError):
    pass


class RefreshRefused(SignInRequired):
    pass


class AuthFlowError(SyncError):
    pass


class InsecureTransport(SyncError):
    pass


class ServerUnreachable(SyncError):
    pass


class RateLimitedByServer(SyncError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ApiRejected(SyncError):
    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class InvalidDecision(SyncError):
    pass


class StoreError(SyncError):
    pass


class DeviceKeyError(StoreError):
    """An entry sealed with a device key this device no longer holds (or altered): it is
    held, never dropped; ``entry_id`` names it."""

    def __init__(self, message: str, entry_id: str) -> None:
        super().__init__(message)
        self.entry_id = entry_id


class ClientStopped(SyncError):
    """A read reached the client after ``stop()`` (a screen drawn during shutdown) and
    needs the engine, which was never built: nothing can answer it."""


class NoOneToAsk(SyncError):
    """An alert's Veto or Approve needs a person's answer, but no app has registered the
    hooks that ask (``GovernorClient.listen_for_alerts``); nothing was queued."""
