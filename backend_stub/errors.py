"""Errors the stub answers with.

Hierarchy::

    ApiError                    any error rendered in the contract's error envelope
    ├── InvalidToken            401 INVALID_TOKEN (+ WWW-Authenticate)
    ├── InsufficientScope       403 INSUFFICIENT_SCOPE (+ WWW-Authenticate)
    ├── NotFound                404 NOT_FOUND
    ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
    ├── ValidationFailed        422 VALIDATION_FAILED (details name each field)
    ├── IdempotencyKeyReused    422 IDEMPOTENCY_KEY_REUSED
    ├── VersionConflict         409 VERSION_CONFLICT
    ├── AlreadyDecided          409 ALREADY_DECIDED
    ├── VetoWindowClosed        409 VETO_WINDOW_CLOSED
    └── RateLimited             429 RATE_LIMITED (+ Retry-After)
    ConfigurationError          a bad setting; stops start-up with a message naming it

Messages name the object and say what to do next.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status_code = 500
    code = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class InvalidToken(ApiError):
    status_code = 401
    code = "INVALID_TOKEN"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(
            message,
            details=details,
            headers={"WWW-Authenticate":
                     f'Bearer error="invalid_token", error_description="{message}"'},
        )


class InsufficientScope(ApiError):
    status_code = 403
    code = "INSUFFICIENT_SCOPE"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This action needs the {scope!r} scope; sign in with an account that has it.",
            details={"required_scope": scope},
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )


class NotFound(ApiError):
    status_code = 404
    code = "NOT_FOUND"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class ValidationFailed(ApiError):
    status_code = 422
    code = "VALIDATION_FAILED"


class IdempotencyKeyReused(ApiError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class VersionConflict(ApiError):
    status_code = 409
    code = "VERSION_CONFLICT"


class AlreadyDecided(ApiError):
    status_code = 409
    code = "ALREADY_DECIDED"


class VetoWindowClosed(ApiError):
    status_code = 409
    code = "VETO_WINDOW_CLOSED"


class RateLimited(ApiError):
    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(
            message,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class ConfigurationError(Exception):
    """A setting is wrong; start-up stops with this message."""
