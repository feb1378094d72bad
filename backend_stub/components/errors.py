"""Errors raised by the core components.

Hierarchy::

    ComponentError              any failure of a core component
    ├── CircuitOpen             a circuit breaker refuses calls for now (retry later)
    ├── CacheSerializationError a value cannot be stored in the shared cache tiers
    ├── StateNotFound           no state (or no such version) under that id
    ├── UnknownBudget           no budget registered for an agent
    ├── SignatureInvalid        an HMAC signature does not match its message
    ├── TokenInvalid            a JWT failed verification (reason in the message)
    ├── DecryptionFailed        ciphertext was tampered with or sealed with another key
    └── InvalidMessage          a message does not follow the platform's format

``StateConflict`` (a stale ``expected_version``) and ``SettingsInvalid`` (a bad setting at
start-up) also derive from the stub's own ``VersionConflict`` and ``ConfigurationError`` so
that the API renders them without translation.

Messages name the object and say what to do next.
"""

from __future__ import annotations

from backend_stub.errors import ConfigurationError, VersionConflict


class ComponentError(Exception):
    """Base of every core-component failure."""


class CircuitOpen(ComponentError):
    def __init__(self, name: str, failures: int, retry_after: float) -> None:
        super().__init__(
            f"circuit {name!r} is open after {failures} consecutive failures; "
            f"calls resume in {retry_after:.1f} s (check the dependency behind it)"
        )
        self.name = name
        self.retry_after = retry_after


class CacheSerializationError(ComponentError, ValueError):
    pass


class StateNotFound(ComponentError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class UnknownBudget(ComponentError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class SignatureInvalid(ComponentError):
    pass


class TokenInvalid(ComponentError):
    pass


class DecryptionFailed(ComponentError):
    pass


class InvalidMessage(ComponentError, ValueError):
    pass


class StateConflict(VersionConflict):
    """``expected_version`` is stale; ``current_version`` says what to reload."""

    def __init__(self, state_id: str, expected: int, current: int) -> None:
        super().__init__(
            f"state {state_id!r} is at version {current}, not {expected}; "
            "reload it and apply the change again",
            details={"current_version": current},
        )
        self.state_id = state_id
        self.current_version = current


class SettingsInvalid(ConfigurationError):
    """A setting failed validation at start-up; ``issues`` lists each one."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("the stub cannot start: " + "; ".join(issues))
        self.issues = issues
