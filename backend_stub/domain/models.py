"""The stub's tables (SQLModel); created and evolved only by ``domain.migrations``.

Timestamps are stored in UTC and always come back timezone-aware, on SQLite as on
PostgreSQL, so deadline arithmetic never mixes naive and aware values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, Table, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime column that refuses naive values and returns aware UTC ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(UTC)
        # SQLite keeps no offset; storing naive UTC keeps string order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dt(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


def _json(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    industry: str = Field(max_length=64, index=True)
    # "industry" agents serve one industry; "coe" agents are centres of excellence.
    kind: str = Field(max_length=16)
    status: str = Field(max_length=32, index=True)
    tokens_used: int = 0
    tokens_limit: int = 0
    cost_used_usd: float = 0.0
    cost_limit_usd: float = 0.0
    capabilities: list[str] = _json()
    # The highest budget threshold (0, 80 or 95) already announced, so each crossing is
    # announced once.
    alert_level: int = 0
    created_at: datetime = _dt()
    updated_at: datetime = _dt()


class ApprovalRequest(SQLModel, table=True):
    __tablename__ = "approval_requests"

    id: str = Field(primary_key=True, max_length=64)
    agent_id: str = Field(max_length=64, index=True)
    agent_name: str = Field(max_length=200)
    agent_kind: str = Field(max_length=16)
    requester: str = Field(max_length=200)
    industry: str = Field(max_length=64)
    status: str = Field(max_length=32, index=True)
    stage: str = Field(max_length=32)
    version: int = 1
    pipeline: list[dict[str, Any]] = _json()
    capabilities: list[str] = _json()
    budget: dict[str, Any] = _json()
    wasm_module: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wasm_report: dict[str, Any] = _json()
    seed_matches: list[dict[str, Any]] = _json()
    matched_seed_id: str | None = Field(default=None, max_length=64)
    veto_deadline: datetime | None = _dt(nullable=True, index=True)
    closing_notified: bool = False
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = _dt(nullable=True)
    decision_note: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _dt()
    updated_at: datetime = _dt()

    __table_args__ = (Index("idx_approval_requests_created", "created_at", "id"),)


class SeedMatchLink(SQLModel, table=True):
    """Which requests each seed matched fully: the base of the seeds' metrics."""

    __tablename__ = "seed_match_links"

    approval_id: str = Field(primary_key=True, max_length=64)
    seed_id: str = Field(primary_key=True, max_length=64, index=True)
    score: float = 0.0


class Decision(SQLModel, table=True):
    """The audit trail of every applied decision."""

    __tablename__ = "decisions"

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(max_length=64, index=True)
    action: str = Field(max_length=32)
    category: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, max_length=2000)
    comment: str | None = Field(default=None, max_length=2000)
    sub: str = Field(max_length=200)
    client_id: str | None = Field(default=None, max_length=200)
    device_id: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)
    version_before: int = 0
    version_after: int = 0
    decided_at: datetime = _dt()
    # The device's clock: recorded for the audit trail, never used for deadlines.
    device_decided_at: datetime | None = _dt(nullable=True)


class DecisionAttachment(SQLModel, table=True):
    __tablename__ = "decision_attachments"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(index=True)
    name: str = Field(max_length=255)
    content_type: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Seed(SQLModel, table=True):
    __tablename__ = "seeds"

    id: str = Field(primary_key=True, max_length=64)
    title: str = Field(max_length=200)
    description: str = Field(max_length=4000)
    conditions: dict[str, Any] = _json()
    auto_approve: bool = False
    status: str = Field(max_length=16)
    created_by: str = Field(max_length=200)
    created_at: datetime = _dt()
    updated_at: datetime = _dt()
    # The seeds change counter when this seed last changed: its version and delta position.
    version: int = Field(index=True)
    matches: int = 0
    vetoes: int = 0
    match_rate: float = 0.0
    veto_rate: float = 0.0


class Violation(SQLModel, table=True):
    __tablename__ = "violations"

    id: str = Field(primary_key=True, max_length=64)
    agent_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32)
    severity: str = Field(max_length=16)
    description: str = Field(max_length=2000)
    occurred_at: datetime = _dt()
    version: int = Field(index=True)


class Tombstone(SQLModel, table=True):
    """An id deleted from a delta-synced collection, at the counter value of the deletion."""

    __tablename__ = "tombstones"

    id: int | None = Field(default=None, primary_key=True)
    collection: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    version: int
    deleted_at: datetime = _dt()

    __table_args__ = (Index("idx_tombstones_collection_version", "collection", "version"),)


class Counter(SQLModel, table=True):
    """Monotonic change counters (``seeds``, ``violations``, ``approval_ids`` ...)."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True, max_length=64)
    value: int = 0


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    sub: str = Field(primary_key=True, max_length=200)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = _json()
    created_at: datetime = _dt(index=True)


class AgentSubmission(SQLModel, table=True):
    """A module submitted through ``POST /v1/agents``: one request per submitter, module
    (SHA-256) and declaration; ``key`` is the digest of the three."""

    __tablename__ = "agent_submissions"

    key: str = Field(primary_key=True, max_length=64)
    approval_id: str = Field(max_length=64, index=True)
    submitter: str = Field(max_length=200)
    module_sha256: str = Field(max_length=64)
    created_at: datetime = _dt()


class Event(SQLModel, table=True):
    """Every platform event, in order; ``id`` is the SSE ``id:`` and the ``after=`` cursor."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=100)  # not indexed: nothing reads events by type
    timestamp: datetime = _dt()
    source: str = Field(max_length=100)
    data: dict[str, Any] = _json()
    correlation_id: str | None = Field(default=None, max_length=200)
    causation_id: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)


DOMAIN_TABLES: list[Table] = [
    cast(Table, getattr(model, "__table__"))  # noqa: B009 (SQLModel sets it at class creation)
    for model in (Agent, ApprovalRequest, SeedMatchLink, Decision, DecisionAttachment, Seed,
                  Violation, Tombstone, Counter, IdempotencyRecord, Event, AgentSubmission)
]
