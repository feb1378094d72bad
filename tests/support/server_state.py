"""What the stub holds, read straight from its database: the audit trail of applied
decisions (with each file's digest) and every approval's status. SQLAlchemy reads SQLite
and PostgreSQL alike, so this works for one stub on its file and for replicas sharing a
PostgreSQL database. Used by the chaos judge and by end-to-end tests that must see the
server's side, not only the app's label.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text


@dataclass(frozen=True)
class ServerDecision:
    """One row of the stub's audit trail (``decisions``) with its files' digests."""

    id: int
    key: str | None
    approval_id: str
    action: str
    category: str | None
    reason: str | None
    comment: str | None
    sub: str
    device_id: str | None
    attachments: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        return {"approval_id": self.approval_id, "action": self.action, "sub": self.sub,
                "device_id": self.device_id, "idempotency_key": self.key}


@dataclass(frozen=True)
class ServerApproval:
    id: str
    status: str
    decided_by: str | None


@dataclass
class ServerState:
    decisions: list[ServerDecision]  # in the order they were applied
    approvals: dict[str, ServerApproval]


def read_server(database_url: str) -> ServerState:
    """The stub's decisions and approvals, straight from its database (any the stub runs
    on: SQLAlchemy reads SQLite and PostgreSQL alike)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            files: dict[int, list[str]] = defaultdict(list)
            for decision_id, digest in conn.execute(text(
                    "SELECT decision_id, sha256 FROM decision_attachments")):
                files[int(decision_id)].append(str(digest))
            decisions = [ServerDecision(
                id=int(r.id), key=r.idempotency_key, approval_id=r.approval_id,
                action=r.action, category=r.category, reason=r.reason, comment=r.comment,
                sub=r.sub, device_id=r.device_id, attachments=tuple(sorted(files[int(r.id)])))
                for r in conn.execute(text(
                    "SELECT id, idempotency_key, approval_id, action, category, reason, "
                    "comment, sub, device_id FROM decisions ORDER BY id"))]
            approvals = {r.id: ServerApproval(r.id, r.status, r.decided_by)
                         for r in conn.execute(text(
                             "SELECT id, status, decided_by FROM approval_requests"))}
    finally:
        engine.dispose()
    return ServerState(decisions, approvals)
