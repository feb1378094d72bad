"""Small helpers the API routes call to run through the components, each a no-op (plain
call) when the components are not installed, so features stay testable alone.

- ``cached(request, key, compute, ttl)``: ``app.state.cache.get_or_compute``.
- ``observed_decisions(request, actor, commands, decide)``: a span around the batch and one
  per decision, ``governance_decisions_total{action,outcome}``, and, in the decisions' own
  transaction, an audit-log entry per applied decision (who, which client and device, the
  request id). (Approval versions live in the approval row, the one source the decision
  path reads; the state component no longer keeps a copy nothing read.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import Request

from backend_stub.components.observability import request_id_var
from backend_stub.components.security import AuditEntry, AuditItem

T = TypeVar("T")
# Writes that go into the decisions' own transaction: (connection, results in order); the
# audit entries written, by once key (``decision_once_key``).
AlsoWrite = Callable[[Any, Sequence[T]], Mapping[str, AuditEntry]]


def decision_once_key(sub: str, key: str) -> str:
    """The audit log's once key of ``sub``'s decision ``key`` (its receipt names it)."""
    return f"decision:{sub}:{key}"


def cached(request: Request, key: str, compute: Callable[[], T], ttl: float) -> T:
    """``compute()`` through the app's cache; a deep copy, so callers may change it."""
    cache = getattr(request.app.state, "cache", None)
    if cache is None:
        return compute()
    return copy.deepcopy(cache.get_or_compute(key, compute, ttl=ttl))


def instance_key(request: Request, name: str, version: object) -> str:
    """A cache key private to this process (``version`` is a per-process counter: another
    process's number 5 is not this one's)."""
    components = getattr(request.app.state, "components", None)
    instance = getattr(components, "instance_id", "none")
    return f"{name}:{instance}:{version}"


def observed_decisions(request: Request, actor: Any, commands: Sequence[Any],
                       decide: Callable[[AlsoWrite[T] | None], list[T]]) -> list[T]:
    """Run ``decide(also)``, which must call ``also(connection, results)`` inside its
    transaction: the audit entries are written there, so they commit
    with the decisions or not at all, and ``also`` returns them by once key. Without the
    components, ``decide(None)``."""
    state = request.app.state
    tracer = getattr(state, "tracer", None)
    if tracer is None:
        return decide(None)
    rid = request_id_var.get()
    sub = str(getattr(actor, "sub", "?"))

    def also(conn: Any, results: Sequence[T]) -> Mapping[str, AuditEntry]:
        audit: list[AuditItem] = []
        for command, result in zip(commands, results, strict=False):
            outcome = getattr(result, "outcome", None)
            if outcome not in ("applied", "replayed"):
                continue
            # A replay records too (once per decision, by its key): an entry missing for
            # a decision (written before its entry shared the decision's transaction) is
            # written by the client's retry.
            audit.append(AuditItem(
                f"decision.{command.action}", sub, f"approval:{command.approval_id}",
                {"client_id": getattr(actor, "client_id", None),
                 "device_id": getattr(command, "device_id", None),
                 "request_id": rid, "idempotency_key": command.key,
                 "category": getattr(command, "category", None),
                 "recorded_on_replay": outcome == "replayed"},
                once_key=decision_once_key(sub, command.key)))
        # One write for the whole batch (a batch holds up to 500 decisions).
        return state.audit_log.record_keyed(audit, conn=conn) if audit else {}

    with tracer.span("decisions", **{"decisions.count": len(commands), "request.id": rid,
                                     "enduser.id": getattr(actor, "sub", None)}):
        results = decide(also)
        for command, result in zip(commands, results, strict=False):
            outcome = str(getattr(result, "outcome", "unknown"))
            state.metrics.record_decision(command.action, outcome)
            # A span per decision only when spans are recorded: a 500-item batch would
            # otherwise pay for 500 spans nobody reads.
            if tracer.recording:
                with tracer.span("decision", **{"decision.action": command.action,
                                                "decision.approval_id": command.approval_id,
                                                "decision.outcome": outcome}):
                    pass
    return results

