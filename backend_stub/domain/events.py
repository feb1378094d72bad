"""Platform events: stored durably first, then published on the bus (if one is installed).

The message format is the platform's: ``{id, type, timestamp, source, data, metadata:
{correlation_id, causation_id, user_id}}``. ``id`` is the stored row's integer id as a
string; it is the SSE ``id:`` and the ``after=`` cursor of ``/notifications``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backend_stub.clock import rfc3339

SOURCE = "governance-stub"

APPROVAL_PENDING = "governance.approval.pending"
APPROVAL_DECIDED = "governance.approval.decided"
APPROVAL_DEPLOYED = "governance.approval.deployed"
SEED_AUTO_APPROVED = "governance.seed.auto_approved"
SEED_CHANGED = "governance.seed.changed"
BUDGET_THRESHOLD = "governance.budget.threshold_exceeded"
AGENT_VIOLATED = "governance.agent.violated"
VETO_WINDOW_CLOSING = "governance.veto_window.closing"

EVENT_TYPES = (APPROVAL_PENDING, APPROVAL_DECIDED, APPROVAL_DEPLOYED, SEED_AUTO_APPROVED,
               SEED_CHANGED, BUDGET_THRESHOLD, AGENT_VIOLATED, VETO_WINDOW_CLOSING)


@dataclass
class PendingEvent:
    """An event written in the current transaction; ``id`` is set once it is inserted."""

    type: str
    timestamp: datetime
    data: dict[str, Any]
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    source: str = SOURCE
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": self.timestamp, "source": self.source,
                "data": self.data, "correlation_id": self.correlation_id,
                "causation_id": self.causation_id, "user_id": self.user_id}


def message(event_id: int, type_: str, timestamp: datetime, source: str, data: dict[str, Any],
            correlation_id: str | None, causation_id: str | None, user_id: str | None
            ) -> dict[str, Any]:
    return {
        "id": str(event_id), "type": type_, "timestamp": rfc3339(timestamp), "source": source,
        "data": data,
        "metadata": {"correlation_id": correlation_id, "causation_id": causation_id,
                     "user_id": user_id},
    }
