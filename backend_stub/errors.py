"""Errors the stub answers with.

Hierarchy::

    ApiError                    any error rendered in the contract's error envelope
    ├── InvalidToken            401 INVALID_TOKEN (+ WWW-Authenticate)
    ├── InsufficientScope       403 INSUFFICIENT_SCOPE (+ WWW-Authenticate)
    ├── NotFound                404 NOT_FOUND
    ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
    ├── ValidationFailed        422 VALIDATION_FAILED (details name each field)
    │   └── InvalidGrant        a capability grant or pattern that does not parse (also a
    │                           ValueError: the domain raises it before any write)
    ├── IdempotencyKeyReused    422 IDEMPOTENCY_KEY_REUSED
    ├── VersionConflict         409 VERSION_CONFLICT
    ├── AlreadyDecided          409 ALREADY_DECIDED
    ├── VetoWindowClosed        409 VETO_WINDOW_CLOSED
    ├── RateLimited             429 RATE_LIMITED (+ Retry-After)
    └── NotReady                503 NOT_READY (details name what is down)
    ConfigurationError          a bad setting; stops start-up with a message naming it
    SubmitFailed                ``governor-stub submit`` could not submit (sign-in, network,
                                refusal); its message says why and what to do

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


class InvalidGrant(ValidationFailed, ValueError):
    """A capability grant (or a seed's pattern) that does not parse; names the grant."""

    def __init__(self, grant: str, problem: str) -> None:
        super().__init__(f"Capability grant {grant!r} {problem}.",
                         details={"grant": grant, "problem": problem})
        self.grant = grant
        self.problem = problem


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


class NotReady(ApiError):
    status_code = 503
    code = "NOT_READY"


class ConfigurationError(Exception):
    """A setting is wrong; start-up stops with this message."""


class SubmitFailed(Exception):
    """``governor-stub submit`` did not submit the module; ``exit_code`` is 1 when the server
    refused it, 2 when it could not ask (sign-in, connection, a missing file)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
