"""The governance platform the stub pretends to be: requests, decisions, seeds, budgets.

``GovernanceService`` is the one object the API talks to. It takes its store (a
``Database``) and its clock in the constructor, writes every change and the events it
causes in one transaction, and hands the committed events to ``publish`` afterwards.

Writes are serialised by a process-wide lock (SQLite allows one writer anyway) and, for
several stub processes on one database, by the database itself: ``BEGIN IMMEDIATE`` on
SQLite; on PostgreSQL, row locks, idempotency keys claimed under their unique key before
anything else (``_claim_keys``), and a transaction-scoped advisory lock taken just before
events are numbered, so event ids are committed in order (a stream resuming after id N on
another replica never misses a smaller id committed later).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    Row,
    Table,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from backend_stub.clock import Clock, rfc3339
from backend_stub.components.resources import ResourceManager
from backend_stub.db import Database, hold_write_lock
from backend_stub.domain import capabilities as caps
from backend_stub.domain import events as ev
from backend_stub.domain import pipeline as pl
from backend_stub.domain.attestations import Attestor, Subject
from backend_stub.domain.models import (
    Agent,
    AgentSubmission,
    ApprovalRequest,
    Counter,
    Decision,
    DecisionAttachment,
    Event,
    IdempotencyRecord,
    Seed,
    SeedMatchLink,
    Tombstone,
    UtcDateTime,
    Violation,
)
from backend_stub.domain.modules import InMemoryModuleStore, ModuleStore
from backend_stub.domain.seeds import (
    RequestFacts,
    SeedMatcher,
    SeedRule,
    condition_errors,
)
from backend_stub.domain.wasm import validate_module
from backend_stub.errors import (
    AlreadyDecided,
    ApiError,
    IdempotencyKeyReused,
    InsufficientScope,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    VersionConflict,
    VetoWindowClosed,
)

log = logging.getLogger("backend_stub.domain")


def _columns(model: Any) -> Any:
    """The table's columns, for Core expressions (typed, unlike the model's attributes)."""
    return cast(Table, model.__table__).c


AR = _columns(ApprovalRequest)
APPROVALS = cast(Table, getattr(ApprovalRequest, "__table__"))  # noqa: B009
AG = _columns(Agent)
SD = _columns(Seed)
# What ``seed_view`` reads, selected as columns for the seed pages.
_SEED_COLUMNS = (SD.id, SD.title, SD.description, SD.conditions, SD.auto_approve, SD.status,
                 SD.matches, SD.vetoes, SD.match_rate, SD.veto_rate, SD.created_by,
                 SD.created_at, SD.updated_at, SD.version)
VI = _columns(Violation)
TB = _columns(Tombstone)
CT = _columns(Counter)
IR = _columns(IdempotencyRecord)
EV = _columns(Event)
DE = _columns(Decision)
SML = _columns(SeedMatchLink)
SB = _columns(AgentSubmission)
# A request's pipeline evidence by stage, JSON text (``pl.split``; migration 0006).
EVIDENCE = table("approval_evidence", column("approval_id"), column("evidence"))

VETO_WINDOW = timedelta(hours=24)
CLOSING_NOTICE = timedelta(hours=1)
IDEMPOTENCY_TTL = timedelta(days=7)
# PostgreSQL advisory lock that orders event commits across stub processes.
EVENTS_LOCK_ID = 0x676F7665  # "gove"
# The status of a key claimed by a write still in progress (never committed).
_CLAIMED = 0
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
# The dashboard's fleet compliance looks at the requests of this window.
COMPLIANCE_WINDOW = timedelta(days=30)
# The fields of a request in a minimal decision answer (``Prefer: return=minimal``).
MINIMAL_FIELDS = ("id", "status", "version", "updated_at")
ACTION_SCOPES = {"approve": "governance:write", "request_changes": "governance:write",
                 "veto": "veto:execute"}

# Core tables (via any column) make bulk inserts skip the ORM's per-row bookkeeping.
# Columns of a request that listing needs: never the module bytes or the big JSON.
_SUMMARY_COLUMNS = (AR.id, AR.agent_id, AR.agent_name,
                    AR.agent_kind, AR.requester,
                    AR.industry, AR.status, AR.stage,
                    AR.version, AR.veto_deadline,
                    AR.created_at)
_CHANGE_COLUMNS = (*_SUMMARY_COLUMNS, AR.pipeline, AR.decided_by, AR.decided_at,
                   AR.decision_note, AR.updated_at)
_DETAIL_COLUMNS = (*_SUMMARY_COLUMNS, AR.pipeline, AR.capabilities,
                   AR.budget, AR.wasm_report,
                   AR.seed_matches, AR.matched_seed_id,
                   AR.decided_by, AR.decided_at,
                   AR.decision_note, AR.updated_at)


@dataclass(frozen=True)
class Actor:
    """Who is acting: the token's subject and what the token allows."""

    sub: str
    scopes: frozenset[str]
    client_id: str | None = None
    request_id: str | None = None


PLATFORM = Actor(sub="platform", scopes=frozenset(ACTION_SCOPES.values()) | {"governance:read"},
                 client_id="governance-stub")


@dataclass(frozen=True)
class AttachmentIn:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class DecisionCommand:
    """One decision as the client sent it; ``key`` makes it happen once."""

    key: str
    approval_id: str
    action: str
    expected_version: int | None = None
    category: str | None = None
    reason: str | None = None
    comment: str | None = None
    attachments: tuple[AttachmentIn, ...] = ()
    device_id: str | None = None
    device_decided_at: datetime | None = None

    def fingerprint(self) -> str:
        # The device's clock and id are not part of what is decided: a retry from the same
        # outbox entry may carry a refreshed timestamp and is still the same decision.
        body = {"approval_id": self.approval_id, "action": self.action,
                "expected_version": self.expected_version, "category": self.category,
                "reason": self.reason, "comment": self.comment,
                "attachments": [[a.name, a.content_type, hashlib.sha256(a.data).hexdigest()]
                                for a in self.attachments]}
        return _digest(body)


@dataclass
class DecisionResult:
    key: str
    outcome: str  # applied | replayed | rejected
    status_code: int
    body: dict[str, Any] | None = None
    error: ApiError | None = None

    @property
    def approval(self) -> dict[str, Any] | None:
        return None if self.body is None else self.body.get("data")


# Writes that belong to a batch of decisions (``decide(also=)``): given the transaction's
# connection and the results, in order (what it returns is not used here).
AlsoWrite = Callable[[Connection, Sequence[DecisionResult]], object]


@dataclass
class _Tx:
    session: Session
    now: datetime
    events: list[ev.PendingEvent] = field(default_factory=list)


def _digest(value: Any) -> str:
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(raw).hexdigest()


def _sqlite_rows(table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
                 ) -> list[tuple[Any, ...]]:
    """Rows of ``columns`` as SQLAlchemy stores them on SQLite: UtcDateTime columns as
    naive UTC text, JSON columns as JSON text, the rest as they are.

    Converters are chosen by column type once per batch, and each distinct time is
    formatted once (a batch stamps most rows with the same ``now``).
    """
    stamps: dict[datetime, str] = {}

    def stamp(value: datetime | None) -> str | None:
        if value is None:
            return None
        text = stamps.get(value)
        if text is None:
            text = stamps[value] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return text

    def json_text(value: Any) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    converters: list[tuple[int, Callable[[Any], Any]]] = [
        (i, stamp if isinstance(table.c[c].type, UtcDateTime) else json_text)
        for i, c in enumerate(columns) if isinstance(table.c[c].type, UtcDateTime | JSON)]
    converted: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i])
        converted.append(tuple(values))
    return converted


def _from_sqlite(table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
                 ) -> list[dict[str, Any]]:
    """Rows of ``columns`` read straight from the SQLite driver, as SQLAlchemy would give
    them (``_sqlite_rows`` in reverse): UtcDateTime text as aware UTC datetimes, JSON text
    parsed, the rest as they are; each row a dict by column name."""
    def stamp(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

    def json_value(value: str | None) -> Any:
        return None if value is None else orjson.loads(value)

    converters: list[tuple[int, Callable[[Any], Any]]] = [
        (i, stamp if isinstance(table.c[c].type, UtcDateTime) else json_value)
        for i, c in enumerate(columns) if isinstance(table.c[c].type, UtcDateTime | JSON)]
    read: list[dict[str, Any]] = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i])
        read.append(dict(zip(columns, values, strict=True)))
    return read


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise _bad_cursor(cursor) from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise _bad_cursor(cursor)
    return parts


def _bad_cursor(cursor: str) -> ValidationFailed:
    return ValidationFailed(
        f"Cursor {cursor[:40]!r} was not issued by this server; start again without a cursor.",
        details={"fields": {"cursor": "not a cursor this server issued"}})


def _target(part: int, whole: int, target: float, direction: str,
            counts: dict[str, int]) -> dict[str, Any]:
    """A rate against its target; ``value`` and ``met`` are null with nothing to count."""
    value = round(part / whole, 4) if whole else None
    met = None if value is None else (value > target if direction == "above" else value < target)
    return {"value": value, "target": target, "direction": direction, "met": met, **counts}


def _utilisation(used: float, limit: float) -> float:
    return round(used / limit, 4) if limit else 0.0


class GovernanceService:
    """The stub's domain. Use one per app; it is thread-safe."""

    def __init__(self, db: Database, clock: Clock, *,
                 publish: Callable[[dict[str, Any]], None] | None = None,
                 publish_many: Callable[[list[dict[str, Any]]], None] | None = None,
                 veto_window: timedelta = VETO_WINDOW,
                 modules: ModuleStore | None = None) -> None:
        """``publish`` gets each committed event (a platform message); ``publish_many``,
        when given, gets the events of one commit at once instead (a batch of 500
        decisions makes 500). ``modules`` keeps submitted modules (``submit_agent``)."""
        self.db = db
        self.modules: ModuleStore = modules or InMemoryModuleStore()
        self.clock = clock
        self.publish = publish
        self.publish_many = publish_many
        self.veto_window = veto_window
        self.matcher = SeedMatcher()
        self._lock = threading.RLock()
        # When the next deadline or closing notice falls due; None: ask the database.
        self._next_due: datetime | None = None
        self._next_due_known = False
        # Bumped on every committed write: lets readers cache by it.
        self.change_count = 0
        # Set by the security component (its Vault): attachments are stored encrypted,
        # each bound to its decision; None stores them as sent.
        self.seal_attachment: Callable[[bytes, bytes], bytes] | None = None
        # The review stages' evidence (certificate, reviews); the app gives it a signer.
        self.attestor = Attestor()
        # The budget alert rule (80 / 95 %, once per agent per day): the resources
        # component's; the app gives it the component's shared store.
        self.budgets = ResourceManager(clock=clock)

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        with self._lock, self.db.session() as session:
            tx = _Tx(session, self.clock.now())
            with session.begin():
                # What a write reads (the audit log's head above all) stays true until
                # it commits.
                hold_write_lock(session.connection())
                yield tx
                if tx.events:
                    self._insert_events(tx)
            self.change_count += 1
        self._publish(tx.events)

    def _insert_events(self, tx: _Tx) -> None:
        rows = [e.row() for e in tx.events]
        if self.db.is_sqlite:
            # SQLite runs RETURNING row by row; numbering the rows ourselves is one
            # executemany. Safe: the transaction holds SQLite's write lock (``_write``),
            # so nobody else can add events meanwhile.
            start = int(tx.session.execute(select(func.max(EV.id))).scalar() or 0)
            for offset, (pending, row) in enumerate(zip(tx.events, rows, strict=True), 1):
                pending.id = row["id"] = start + offset
            self._bulk_insert(tx, EV.id.table, rows)
            return
        # Held until the commit: ids come from the sequence in commit order.
        tx.session.execute(select(func.pg_advisory_xact_lock(EVENTS_LOCK_ID)))
        ids = tx.session.execute(
            insert(EV.id.table).returning(EV.id, sort_by_parameter_order=True),
            rows).scalars().all()
        for pending, event_id in zip(tx.events, ids, strict=True):
            pending.id = int(event_id)

    def _publish(self, events: list[ev.PendingEvent]) -> None:
        # An event is stored before it is published: a failed push must not fail the write.
        if not events or (self.publish is None and self.publish_many is None):
            return
        messages = [ev.message(p.id, p.type, p.timestamp, p.source, p.data, p.correlation_id,
                               p.causation_id, p.user_id) for p in events if p.id is not None]
        if self.publish_many is not None:
            try:
                self.publish_many(messages)
            except Exception:
                log.exception("publishing events %s to %s failed", messages[0]["id"],
                              messages[-1]["id"])
            return
        assert self.publish is not None
        for message in messages:
            try:
                self.publish(message)
            except Exception:
                log.exception("publishing event %s failed", message["id"])

    def _emit(self, tx: _Tx, type_: str, data: dict[str, Any], *,
              correlation_id: str | None = None, causation_id: str | None = None,
              user_id: str | None = None) -> ev.PendingEvent:
        pending = ev.PendingEvent(type_, tx.now, data, correlation_id, causation_id, user_id)
        tx.events.append(pending)
        return pending

    def _next(self, session: Session, name: str) -> int:
        """Increment and return the counter ``name`` (row-locked on PostgreSQL)."""
        result = session.execute(update(Counter).where(CT.name == name)
                                 .values(value=CT.value + 1).returning(CT.value))
        value = result.scalar()
        if value is None:
            session.execute(insert(Counter).values(name=name, value=1))
            return 1
        return int(value)

    def _current(self, session: Session, name: str) -> int:
        value = session.execute(select(CT.value).where(CT.name == name)).scalar()
        return int(value or 0)

    # ------------------------------------------------------------------ deadlines
    def due(self) -> bool:
        """Whether ``sweep`` has work (or must look): a deadline or a notice is due."""
        if not self._next_due_known:
            return True
        return self._next_due is not None and self.clock.now() >= self._next_due

    def sweep(self) -> int:
        """Deploy requests whose veto window ended and announce windows closing within an hour.

        Cheap when nothing is due: the next due time is kept in memory.
        """
        if not self.due():
            return 0
        now = self.clock.now()
        changed = 0
        with self._write() as tx:
            due = tx.session.execute(
                select(AR.id, AR.pipeline, AR.agent_id,
                       AR.veto_deadline, AR.version)
                .where(AR.status.in_(pl.IN_WINDOW),
                       AR.veto_deadline <= now)
                .order_by(AR.id)  # the order decide() locks in: no deadlock between them
                .with_for_update()).all()
            for row in due:
                tx.session.execute(
                    update(ApprovalRequest).where(AR.id == row.id)
                    # The deadline stays stored (VETO_WINDOW_CLOSED reports it) but is no
                    # longer shown: veto_deadline is null outside a window.
                    .values(status="deployed", stage="deployed",
                            pipeline=pl.deploy(row.pipeline, now), version=row.version + 1,
                            updated_at=now))
                tx.session.execute(update(Agent).where(AG.id == row.agent_id)
                                   .values(status="active", updated_at=now))
                self._emit(tx, ev.APPROVAL_DEPLOYED,
                           {"approval_id": row.id, "agent_id": row.agent_id,
                            "deadline": rfc3339(row.veto_deadline)}, correlation_id=row.id)
                changed += 1
            closing = tx.session.execute(
                select(AR.id, AR.agent_name,
                       AR.veto_deadline)
                .where(AR.status.in_(pl.IN_WINDOW),
                       AR.closing_notified.is_(False),
                       AR.veto_deadline <= now + CLOSING_NOTICE)
                # Another replica sweeping at once announces each closing window, not both.
                .order_by(AR.id).with_for_update()).all()
            for row in closing:
                tx.session.execute(update(ApprovalRequest)
                                   .where(AR.id == row.id)
                                   .values(closing_notified=True))
                self._emit(tx, ev.VETO_WINDOW_CLOSING,
                           {"approval_id": row.id, "agent_name": row.agent_name,
                            "deadline": rfc3339(row.veto_deadline)}, correlation_id=row.id)
                changed += 1
            self._next_due = self._compute_next_due(tx.session)
            self._next_due_known = True
        return changed

    def _compute_next_due(self, session: Session) -> datetime | None:
        deadline = session.execute(
            select(func.min(AR.veto_deadline))
            .where(AR.status.in_(pl.IN_WINDOW))).scalar()
        notice = session.execute(
            select(func.min(AR.veto_deadline))
            .where(AR.status.in_(pl.IN_WINDOW),
                   AR.closing_notified.is_(False))
        ).scalar()
        candidates = [d for d in (deadline, notice - CLOSING_NOTICE if notice else None) if d]
        return min(candidates) if candidates else None

    def _deadline_set(self, deadline: datetime) -> None:
        due = deadline - CLOSING_NOTICE
        if self._next_due_known and (self._next_due is None or due < self._next_due):
            self._next_due = due

    def forget_deadlines(self) -> None:
        """Make the next sweep ask the database (after the clock jumps or data is loaded)."""
        self._next_due_known = False

    # ------------------------------------------------------------------ representations
    @staticmethod
    def _shown_deadline(status: str, deadline: datetime | None) -> str | None:
        """The veto deadline as shown: only while the window runs (it stays stored after,
        for ``VETO_WINDOW_CLOSED`` to report)."""
        return rfc3339(deadline) if deadline and status in pl.IN_WINDOW else None

    @classmethod
    def _summary(cls, row: Any) -> dict[str, Any]:
        return {
            "id": row.id,
            "agent": {"id": row.agent_id, "name": row.agent_name, "kind": row.agent_kind,
                      "industry": row.industry},
            "requester": row.requester, "industry": row.industry, "status": row.status,
            "stage": row.stage, "version": row.version,
            "veto_deadline": cls._shown_deadline(row.status, row.veto_deadline),
            "created_at": rfc3339(row.created_at),
        }

    @staticmethod
    def _minimal(row: Any) -> dict[str, Any]:
        """What a decision's answer carries under ``Prefer: return=minimal``."""
        return {"id": row.id, "status": row.status, "version": row.version,
                "updated_at": rfc3339(row.updated_at)}

    def _refused_shown(self, tx: _Tx, state: dict[str, Any],
                       represent: Callable[[Any], dict[str, Any]], *, minimal: bool
                       ) -> dict[str, Any]:
        """The request a refused decision is answered with: as the batch shows it, and
        whole under ``minimal`` too (its evidence read for it alone): a client names the
        fields that changed under a ``VERSION_CONFLICT`` from this, and refusals are rare."""
        if not minimal:
            return represent(_Row(state))
        evidence = self._evidence(tx.session, [state["id"]]).get(state["id"], {})
        return self._change(_Row({**state, "evidence": evidence}))

    @staticmethod
    def slim(approval: dict[str, Any]) -> dict[str, Any]:
        """An answered request (any representation) as ``_minimal`` gives it: a replay of a
        fuller first answer, asked for with ``Prefer: return=minimal``."""
        return {k: approval[k] for k in MINIMAL_FIELDS if k in approval}

    @classmethod
    def _change(cls, row: Any) -> dict[str, Any]:
        """The summary plus what a decision changes (the batch results' representation)."""
        data = cls._summary(row)
        data.update(
            pipeline=pl.joined(row.pipeline, row.evidence), decided_by=row.decided_by,
            decided_at=rfc3339(row.decided_at) if row.decided_at else None,
            decision_note=row.decision_note, updated_at=rfc3339(row.updated_at))
        return data

    @classmethod
    def _detail(cls, row: Any) -> dict[str, Any]:
        data = cls._change(row)
        data.update(
            capabilities=[caps.describe(c) for c in row.capabilities],
            wasm_report=row.wasm_report, budget=row.budget, seed_matches=row.seed_matches,
            matched_seed_id=row.matched_seed_id)
        return data

    # ------------------------------------------------------------------ reads
    def list_approvals(self, *, status: str | None = None, cursor: str | None = None,
                       limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        query = select(*_SUMMARY_COLUMNS)
        if status:
            query = query.where(AR.status == status)
        if cursor:
            created, last_id = decode_cursor(cursor, 2)
            try:
                after = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
            except ValueError as exc:
                raise _bad_cursor(cursor) from exc
            query = query.where(or_(AR.created_at < after,
                                    and_(AR.created_at == after,
                                         AR.id < str(last_id))))
        query = query.order_by(AR.created_at.desc(),
                               AR.id.desc()).limit(limit + 1)
        with self.db.engine.connect() as conn:  # Core: no ORM session on the hot path
            rows = conn.execute(query).all()
        items = [self._summary(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
        return items, next_cursor

    def get_approval(self, approval_id: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(*_DETAIL_COLUMNS).where(AR.id == approval_id)).first()
            if row is None:
                raise NotFound(f"Approval request {approval_id!r} does not exist; "
                               "refresh the approvals list.", details={"id": approval_id})
            evidence = self._evidence(conn, [approval_id]).get(approval_id, {})
        return self._detail(_Row({**row._mapping, "evidence": evidence}))

    @staticmethod
    def _evidence(conn: Connection | Session, ids: Sequence[str]) -> dict[str, pl.Evidence]:
        """The pipeline evidence of the requests ``ids``, by request id."""
        found: dict[str, pl.Evidence] = {}
        for start in range(0, len(ids), 500):  # bounded IN lists
            rows = conn.execute(select(EVIDENCE.c.approval_id, EVIDENCE.c.evidence).where(
                EVIDENCE.c.approval_id.in_(ids[start:start + 500]))).all()
            found.update((str(i), orjson.loads(e)) for i, e in rows)
        return found

    @classmethod
    def _add_evidence(cls, tx: _Tx, approval_id: str, evidence: pl.Evidence) -> None:
        """Store the evidence stages of ``approval_id`` just gained (``pl.split``) beside
        what it had."""
        if not evidence:
            return
        held = cls._evidence(tx.session, [approval_id]).get(approval_id)
        encoded = orjson.dumps({**(held or {}), **evidence}).decode()
        if held is None:
            tx.session.execute(insert(EVIDENCE).values(approval_id=approval_id,
                                                       evidence=encoded))
        else:
            tx.session.execute(update(EVIDENCE).where(EVIDENCE.c.approval_id == approval_id)
                               .values(evidence=encoded))

    def get_module(self, approval_id: str) -> bytes:
        with self.db.session() as session:
            data = session.execute(select(AR.wasm_module)
                                   .where(AR.id == approval_id)).scalar()
            if data is not None and not data:  # submitted: kept in the module store
                report = session.execute(select(AR.wasm_report)
                                         .where(AR.id == approval_id)).scalar() or {}
                data = self.modules.get(str(report.get("sha256", "")))
                if data is None:
                    raise NotFound(f"The module of {approval_id!r} is not in this stub's "
                                   "module store; run the stub with the data directory "
                                   "it was submitted to.", details={"id": approval_id})
        if data is None:
            raise NotFound(f"Approval request {approval_id!r} does not exist.",
                           details={"id": approval_id})
        return bytes(data)

    def dashboard(self) -> dict[str, Any]:
        """The dashboard without ``generated_at`` (the caller stamps it, after the ETag)."""
        with self.db.session() as s:
            active = s.execute(select(func.count()).select_from(Agent)
                               .where(AG.status == "active")).scalar_one()
            by_status = dict(s.execute(select(AR.status, func.count())
                                       .group_by(AR.status)).all())
            nearest = s.execute(select(func.min(AR.veto_deadline))
                                .where(AR.status.in_(pl.IN_WINDOW))
                                ).scalar()
            vetoes = s.execute(
                select(DE.approval_id, DE.category, DE.reason, DE.sub,
                       DE.decided_at, AR.agent_name)
                .join(ApprovalRequest, AR.id == DE.approval_id)
                .where(DE.action == "veto")
                .order_by(DE.id.desc()).limit(5)).all()
            agents = s.execute(select(AG.id, AG.name, AG.tokens_used, AG.tokens_limit)
                               .where(AG.status == "active")).all()
            since = self.clock.now() - timedelta(hours=24)
            recent_violations = s.execute(select(func.count()).select_from(Violation)
                                          .where(VI.occurred_at >= since)
                                          ).scalar_one()
            compliance = self._compliance(s, self.clock.now() - COMPLIANCE_WINDOW)
        used = sum(a.tokens_used for a in agents)
        limit = sum(a.tokens_limit for a in agents)
        alerts = []
        for a in agents:
            share = _utilisation(a.tokens_used, a.tokens_limit)
            if share >= 0.8:
                alerts.append({"agent_id": a.id, "agent_name": a.name,
                               "threshold": 95 if share >= 0.95 else 80, "utilisation": share})
        alerts.sort(key=lambda x: -x["utilisation"])
        return {
            "active_agents": active,
            "pending_approvals": by_status.get("pending_approval", 0),
            "in_veto_window": sum(by_status.get(s, 0) for s in pl.IN_WINDOW),
            "nearest_veto_deadline": rfc3339(nearest) if nearest else None,
            "recent_vetoes": [{"approval_id": v.approval_id, "agent_name": v.agent_name,
                               "category": v.category, "reason": v.reason,
                               "decided_by": v.sub, "decided_at": rfc3339(v.decided_at)}
                              for v in vetoes],
            # The API adds each dependency's check (backend_stub.api.readiness.health).
            "health": {"violations_24h": recent_violations},
            "budget": {"utilisation": _utilisation(used, limit), "tokens_used": used,
                       "tokens_limit": limit, "alerts": alerts},
            "compliance": compliance,
        }

    @staticmethod
    def _compliance(s: Session, since: datetime) -> dict[str, Any]:
        """Seed 002's targets over the requests created since ``since``: the share that
        fully matches an active precedent seed (above 60 %), and the share of those no
        longer pending that a governor vetoed (below 5 %)."""
        totals = s.execute(
            select(func.count(),
                   func.sum(case((AR.status != "pending_approval", 1), else_=0)),
                   func.sum(case((AR.status == "vetoed", 1), else_=0)))
            .where(AR.created_at >= since)).one()
        matched = s.execute(
            select(func.count(func.distinct(SML.approval_id)))
            .join(ApprovalRequest, AR.id == SML.approval_id)
            .join(Seed, SD.id == SML.seed_id)
            .where(AR.created_at >= since, SD.status == "active")).scalar_one()
        requests, decided, vetoed = int(totals[0]), int(totals[1] or 0), int(totals[2] or 0)
        return {
            "window_days": COMPLIANCE_WINDOW.days,
            "seed_match_rate": _target(int(matched), requests, 0.60, "above",
                                       counts={"matched": int(matched), "requests": requests}),
            "veto_rate": _target(vetoed, decided, 0.05, "below",
                                 counts={"vetoed": vetoed, "decided": decided}),
        }

    def list_agents(self, *, status: str | None = None, industry: str | None = None,
                    cursor: str | None = None, limit: int = 50
                    ) -> tuple[list[dict[str, Any]], str | None]:
        query = select(Agent)
        if status:
            query = query.where(AG.status == status)
        if industry:
            query = query.where(AG.industry == industry)
        if cursor:
            (after,) = decode_cursor(cursor, 1)
            query = query.where(AG.id > str(after))
        query = query.order_by(AG.id).limit(limit + 1)
        with self.db.session() as session:
            rows = session.execute(query).scalars().all()
        items = [self.agent_view(a) for a in rows[:limit]]
        return items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None

    @staticmethod
    def agent_view(a: Agent) -> dict[str, Any]:
        return {"id": a.id, "name": a.name, "industry": a.industry, "kind": a.kind,
                "status": a.status,
                "budget": {"tokens_used": a.tokens_used, "tokens_limit": a.tokens_limit,
                           "utilisation": _utilisation(a.tokens_used, a.tokens_limit),
                           "cost_used_usd": round(a.cost_used_usd, 2),
                           "cost_limit_usd": round(a.cost_limit_usd, 2),
                           "alert_level": a.alert_level},
                "capabilities": list(a.capabilities)}

    def notifications(self, *, after: int = 0, limit: int = 100
                      ) -> tuple[list[dict[str, Any]], str | None]:
        with self.db.session() as session:
            rows = session.execute(select(Event).where(EV.id > after)
                                   .order_by(EV.id).limit(limit + 1)).scalars().all()
        items = [ev.message(int(r.id or 0), r.type, r.timestamp, r.source, r.data,
                            r.correlation_id, r.causation_id, r.user_id) for r in rows[:limit]]
        return items, items[-1]["id"] if len(rows) > limit else None

    def last_event_id(self) -> int:
        with self.db.session() as session:
            return int(session.execute(select(func.max(EV.id))).scalar() or 0)

    # ------------------------------------------------------------------ seeds
    @staticmethod
    def seed_view(s: Seed | Row[Any]) -> dict[str, Any]:
        """A seed as the API shows it, from the model or a row of ``_SEED_COLUMNS``
        (unpacked by position: a 200-seed page reads 2,800 fields)."""
        fields: tuple[Any, ...] = (tuple(s) if isinstance(s, Row)
                                   else tuple(getattr(s, c.key) for c in _SEED_COLUMNS))
        (id_, title, description, conditions, auto_approve, status, matches, vetoes,
         match_rate, veto_rate, created_by, created_at, updated_at, version) = fields
        return {"id": id_, "title": title, "description": description,
                "conditions": conditions, "auto_approve": auto_approve, "status": status,
                "metrics": {"matches": matches, "vetoes": vetoes, "match_rate": match_rate,
                            "veto_rate": veto_rate},
                "created_by": created_by, "created_at": rfc3339(created_at),
                "updated_at": rfc3339(updated_at), "version": version}

    def list_seeds(self, *, since: int | None = None, cursor: str | None = None,
                   limit: int = 50, q: str | None = None, status: str | None = None
                   ) -> tuple[list[dict[str, Any]], str | None, int, list[str]]:
        """Seeds (changed after ``since``), next cursor, current version, ids deleted."""
        # Plain rows, not models: a 200-seed page skips building and tracking 200 instances.
        query = select(*_SEED_COLUMNS)
        if since is not None:
            query = query.where(SD.version > since)
        if status:
            query = query.where(SD.status == status)
        if q:
            like = f"%{q.lower()}%"
            query = query.where(or_(func.lower(SD.title).like(like),
                                    func.lower(SD.description).like(like),
                                    func.lower(SD.id).like(like)))
        if cursor:
            (after,) = decode_cursor(cursor, 1)
            query = query.where(SD.id > str(after))
        query = query.order_by(SD.id).limit(limit + 1)
        with self.db.session() as session:
            version = self._current(session, "seeds")
            rows = session.execute(query).all()
            deleted = self._tombstones(session, "seeds", since)
        items = [self.seed_view(s) for s in rows[:limit]]
        return items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None, \
            version, deleted

    @staticmethod
    def _tombstones(session: Session, collection: str, since: int | None) -> list[str]:
        if since is None:
            return []
        return list(session.execute(
            select(TB.entity_id).where(TB.collection == collection,
                                              TB.version > since)
            .order_by(TB.version)).scalars().all())

    def get_seed(self, seed_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            seed = session.get(Seed, seed_id)
        if seed is None:
            raise NotFound(f"Seed {seed_id!r} does not exist; refresh the seeds list.",
                           details={"id": seed_id})
        return self.seed_view(seed)

    def seeds_version(self) -> int:
        with self.db.session() as session:
            return self._current(session, "seeds")

    def create_seed(self, actor: Actor, *, key: str, title: str, description: str,
                    conditions: dict[str, Any], auto_approve: bool, status: str = "active"
                    ) -> tuple[int, dict[str, Any], bool]:
        """Create a seed once per key: (status code, response body, replayed)."""
        errors = condition_errors(conditions)
        if errors:
            raise ValidationFailed("The seed's conditions are not valid; fix the rules named "
                                   "in details.", details={"fields": errors})
        fingerprint = _digest({"kind": "seed", "title": title, "description": description,
                               "conditions": conditions, "auto_approve": auto_approve,
                               "status": status})
        with self._write() as tx:
            replay = self._idempotent(tx, actor.sub, key, fingerprint)
            if replay is not None:
                return replay.status_code, replay.body, True
            number = self._next(tx.session, "seed_ids")
            version = self._next(tx.session, "seeds")
            seed = Seed(id=f"GEN-{number:03d}", title=title, description=description,
                        conditions=conditions, auto_approve=auto_approve, status=status,
                        created_by=actor.sub, created_at=tx.now, updated_at=tx.now,
                        version=version)
            tx.session.add(seed)
            tx.session.flush()
            self._backtest_seed(tx, seed)
            self._emit(tx, ev.SEED_CHANGED, {"seed_id": seed.id, "change": "created",
                                             "version": seed.version},
                       correlation_id=actor.request_id, causation_id=key, user_id=actor.sub)
            body = {"data": self.seed_view(seed), "meta": self._meta(actor, tx.now)}
            body["meta"]["version"] = seed.version
            self._remember(tx, actor.sub, key, fingerprint, 201, body)
        return 201, body, False

    def delete_seed(self, actor: Actor, seed_id: str) -> int:
        """Delete a seed and leave a tombstone; returns the new seeds version."""
        with self._write() as tx:
            seed = tx.session.get(Seed, seed_id, with_for_update=True)
            if seed is None:
                raise NotFound(f"Seed {seed_id!r} does not exist; refresh the seeds list.",
                               details={"id": seed_id})
            version = self._next(tx.session, "seeds")
            tx.session.delete(seed)
            tx.session.execute(delete(SeedMatchLink).where(SML.seed_id == seed_id))
            tx.session.add(Tombstone(collection="seeds", entity_id=seed_id, version=version,
                                     deleted_at=tx.now))
            self._emit(tx, ev.SEED_CHANGED, {"seed_id": seed_id, "change": "deleted",
                                             "version": version},
                       correlation_id=actor.request_id, user_id=actor.sub)
        return version

    def retire_seed(self, actor: Actor, seed_id: str, reason: str) -> dict[str, Any]:
        """Retire a seed: from now on it matches and auto-approves nothing; its record and
        metrics stay, and delta readers receive it with its new version. Retiring a
        retired seed changes nothing (the same answer, the same version)."""
        with self._write() as tx:
            seed = tx.session.get(Seed, seed_id, with_for_update=True)
            if seed is None:
                raise NotFound(f"Seed {seed_id!r} does not exist; refresh the seeds list.",
                               details={"id": seed_id})
            if seed.status != "retired":
                seed.status = "retired"
                seed.version = self._next(tx.session, "seeds")
                seed.updated_at = tx.now
                tx.session.flush()
                self._emit(tx, ev.SEED_CHANGED, {"seed_id": seed_id, "change": "retired",
                                                 "version": seed.version, "reason": reason},
                           correlation_id=actor.request_id, user_id=actor.sub)
            return self.seed_view(seed)

    def _backtest_seed(self, tx: _Tx, seed: Seed) -> None:
        """Record which past requests the seed matches fully, then its metrics."""
        rule = SeedRule(seed.id, seed.title, seed.conditions, seed.auto_approve, "active")
        rows = tx.session.execute(select(*_DETAIL_COLUMNS)).all()
        links = []
        for row in rows:
            result = self.matcher.match(self._facts(row), rule)
            if result.full:
                links.append({"approval_id": row.id, "seed_id": seed.id, "score": result.score})
        if links:
            tx.session.execute(insert(SeedMatchLink), links)
        self._recompute_metrics(tx, [seed.id])

    def _recompute_metrics(self, tx: _Tx, seed_ids: Sequence[str] | None = None) -> None:
        """Metrics from the record: full matches, and how many of those were vetoed."""
        # The seeds are locked first: on PostgreSQL the counts read after the lock include
        # what another replica's veto committed meanwhile (counted before it, one would be
        # lost when both write their metrics).
        query = select(Seed).order_by(SD.id).with_for_update()
        if seed_ids is not None:
            query = query.where(SD.id.in_(list(seed_ids)))
        seeds = tx.session.execute(query).scalars().all()
        total = tx.session.execute(select(func.count()).select_from(ApprovalRequest)
                                   ).scalar_one()
        stats = dict(
            (r.seed_id, (r.matches, r.vetoes)) for r in tx.session.execute(
                select(SML.seed_id, func.count().label("matches"),
                       func.sum(case((AR.status == "vetoed", 1), else_=0))
                       .label("vetoes"))
                .join(ApprovalRequest, AR.id == SML.approval_id)
                .group_by(SML.seed_id)).all())
        for seed in seeds:
            matches, vetoes = stats.get(seed.id, (0, 0))
            vetoes = int(vetoes or 0)
            values = (int(matches), vetoes, round(matches / total, 4) if total else 0.0,
                      round(vetoes / matches, 4) if matches else 0.0)
            if values != (seed.matches, seed.vetoes, seed.match_rate, seed.veto_rate):
                seed.matches, seed.vetoes, seed.match_rate, seed.veto_rate = values
                seed.version = self._next(tx.session, "seeds")
                seed.updated_at = tx.now
                tx.session.add(seed)
        tx.session.flush()

    # ------------------------------------------------------------------ requests
    @staticmethod
    def _facts(row: Any) -> RequestFacts:
        budget = row.budget or {}
        report = row.wasm_report or {}
        return RequestFacts(
            industry=row.industry, agent_kind=row.agent_kind,
            capabilities=tuple(row.capabilities or ()),
            daily_token_budget=int(budget.get("daily_token_budget", 0)),
            monthly_cost_usd=float(budget.get("monthly_cost_usd", 0.0)),
            wasm_valid=bool(report.get("valid")), memory_pages=report.get("memory_pages"),
            requester=row.requester)

    def submit_request(self, *, agent_name: str, industry: str, agent_kind: str,
                       requester: str, capabilities: Sequence[str], wasm_module: bytes,
                       daily_token_budget: int, monthly_cost_usd: float,
                       stage: str = "governor_approval", created_at: datetime | None = None,
                       correlation_id: str | None = None, match_seeds: bool = True,
                       submission_key: str | None = None,
                       wasm_report: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new agent-creation request arrives from the platform's pipeline.

        From ``governor_approval`` on, it is matched against the active seeds: a full match
        with an auto-approving seed auto-approves it into the veto window. With
        ``submission_key`` (``submit_agent``) the key is recorded in the same transaction;
        ``wasm_report`` is ``validate_module(wasm_module)``'s, when the caller has it already.
        """
        capabilities = caps.checked(capabilities)
        report = wasm_report or validate_module(wasm_module).as_dict()
        with self._write() as tx:
            now = created_at or tx.now
            number = self._next(tx.session, "approval_ids")
            approval_id = f"REQ-{number:04d}"
            agent_id = f"AGT-{self._next(tx.session, 'agent_ids'):04d}"
            correlation = correlation_id or approval_id
            tx.session.add(Agent(id=agent_id, name=agent_name, industry=industry,
                                 kind=agent_kind, status="proposed",
                                 tokens_limit=daily_token_budget,
                                 cost_limit_usd=monthly_cost_usd,
                                 capabilities=list(capabilities), created_at=now,
                                 updated_at=now))
            budget = {"daily_token_budget": daily_token_budget,
                      "monthly_cost_usd": monthly_cost_usd,
                      "fleet_share": 0.0}
            request = ApprovalRequest(
                id=approval_id, agent_id=agent_id, agent_name=agent_name, agent_kind=agent_kind,
                requester=requester, industry=industry, status="pending_approval", stage=stage,
                version=1, pipeline=[],
                capabilities=list(capabilities), budget=budget, wasm_module=wasm_module,
                wasm_report=report, seed_matches=[], created_at=now, updated_at=now)
            request.pipeline, evidence = pl.split(
                pl.new_pipeline(stage, now, self._attest(request)))
            self._add_evidence(tx, approval_id, evidence)
            if not report["valid"] and stage in ("genesis_certification", "architect_review"):
                request.pipeline[pl.STAGES.index(stage)]["notes"] = (
                    "Waiting: the WASM validation report has errors.")
            facts = self._facts(request)
            rules = [SeedRule(s.id, s.title, s.conditions, s.auto_approve, s.status)
                     for s in tx.session.execute(select(Seed)).scalars().all()]
            links = [{"approval_id": approval_id, "seed_id": r.seed_id, "score": 1.0}
                     for r in rules if self.matcher.match(facts, r).full]
            if pl.STAGES.index(stage) >= pl.STAGES.index("governor_approval") and match_seeds:
                self._route(tx, request, rules, now, correlation)
            tx.session.add(request)
            if submission_key is not None:
                tx.session.add(AgentSubmission(
                    key=submission_key, approval_id=approval_id, submitter=requester,
                    module_sha256=report["sha256"], created_at=now))
            tx.session.flush()
            if links:
                tx.session.execute(insert(SeedMatchLink), links)
            if match_seeds:  # a bulk load (match_seeds=False) leaves the metrics alone
                self._recompute_metrics(tx)
        if request.veto_deadline:
            self._deadline_set(request.veto_deadline)
        return self.get_approval(approval_id)

    def submit_agent(self, *, submitter: str, agent_name: str, agent_kind: str, industry: str,
                     capabilities: Sequence[str], wasm_module: bytes,
                     daily_token_budget: int, monthly_cost_usd: float,
                     wasm_report: dict[str, Any] | None = None,
                     module_file: Path | None = None) -> tuple[dict[str, Any], bool]:
        """A submitter's module and declaration become a request at the governor.

        Returns the request and whether it is new: the same module (SHA-256) with the same
        declaration from the same submitter is the request made the first time. The module
        goes to ``self.modules`` (``module_file``, holding the same bytes, is moved there),
        not into the request's row.
        """
        report = wasm_report or validate_module(wasm_module).as_dict()
        declaration = {"submitter": submitter, "module_sha256": report["sha256"],
                       "agent_name": agent_name, "agent_kind": agent_kind,
                       "industry": industry, "capabilities": sorted(capabilities),
                       "daily_token_budget": daily_token_budget,
                       "monthly_cost_usd": monthly_cost_usd}
        key = _digest(declaration)
        existing = self._submitted(key)
        if existing is None:
            self.modules.put(report["sha256"], wasm_module, module_file)
            try:
                return self.submit_request(
                    agent_name=agent_name, industry=industry, agent_kind=agent_kind,
                    requester=submitter, capabilities=capabilities, wasm_module=b"",
                    daily_token_budget=daily_token_budget, monthly_cost_usd=monthly_cost_usd,
                    submission_key=key, wasm_report=report), True
            except IntegrityError:  # a twin (another process) committed first
                existing = self._submitted(key)
                if existing is None:
                    raise
        return self.get_approval(existing), False

    def _submitted(self, key: str) -> str | None:
        with self.db.engine.connect() as conn:
            found = conn.execute(select(SB.approval_id).where(SB.key == key)).scalar()
        return None if found is None else str(found)

    def _route(self, tx: _Tx, request: ApprovalRequest, rules: list[SeedRule], now: datetime,
               correlation: str) -> None:
        """A request reaches the governor: auto-approve it on precedent or ask a person."""
        matches = self.matcher.best(self._facts(request), rules)
        request.seed_matches = [m.as_dict() for m in matches]
        winner = self.matcher.auto_approver(matches)
        if winner is not None:
            self._auto_approve(tx, request, winner.seed_id, now, correlation)
            return
        self._emit(tx, ev.APPROVAL_PENDING,
                   {"approval_id": request.id, "agent_name": request.agent_name,
                    "industry": request.industry, "requester": request.requester,
                    "best_seed": matches[0].seed_id if matches else None},
                   correlation_id=correlation)

    def advance_pipeline(self, approval_id: str) -> dict[str, Any]:
        """The platform's reviewers pass the open stage of a pending request.

        Reaching ``governor_approval`` the request is matched against the seeds, exactly
        as a new request arriving there would be.
        """
        with self._write() as tx:
            request = tx.session.get(ApprovalRequest, approval_id, with_for_update=True)
            if request is None:
                raise NotFound(f"Approval request {approval_id!r} does not exist.",
                               details={"id": approval_id})
            reached = pl.STAGES.index(request.stage)
            if request.status != "pending_approval" or \
                    reached >= pl.STAGES.index("governor_approval"):
                raise AlreadyDecided(
                    f"Approval request {approval_id!r} is not waiting on a review stage "
                    f"(status {request.status}, stage {request.stage}).",
                    details={"status": request.status, "decided_by": request.decided_by,
                             "decided_at": rfc3339(request.decided_at)
                             if request.decided_at else None})
            request.pipeline, evidence = pl.split(
                pl.advance(request.pipeline, tx.now, self._attest(request)))
            self._add_evidence(tx, approval_id, evidence)
            request.stage = pl.current_stage(request.pipeline)
            request.version += 1
            request.updated_at = tx.now
            if request.stage == "governor_approval":
                rules = [SeedRule(s.id, s.title, s.conditions, s.auto_approve, s.status)
                         for s in tx.session.execute(select(Seed)).scalars().all()]
                self._route(tx, request, rules, tx.now, request.id)
            tx.session.add(request)
        if request.veto_deadline:
            self._deadline_set(request.veto_deadline)
        return self.get_approval(approval_id)

    def _attest(self, request: ApprovalRequest) -> pl.Attest:
        """The evidence of ``request``'s stages, judged from its own facts."""
        budget = request.budget or {}
        subject = Subject(
            approval_id=request.id, agent_id=request.agent_id, agent_name=request.agent_name,
            industry=request.industry, requester=request.requester,
            capabilities=tuple(request.capabilities or ()),
            # A submitted module is kept on disk by its digest (the row holds no bytes): the
            # report's SHA-256 is the module's, whichever way it arrived.
            module_sha256=(request.wasm_report or {}).get("sha256")
            or hashlib.sha256(request.wasm_module).hexdigest(),
            wasm_report=request.wasm_report or {},
            daily_token_budget=int(budget.get("daily_token_budget", 0)),
            monthly_cost_usd=float(budget.get("monthly_cost_usd", 0.0)))
        return lambda stage, when: self.attestor.attest(stage, subject, when)

    def early_requests(self) -> list[str]:
        """Pending requests still in a review stage before the governor's."""
        early = pl.STAGES[:pl.STAGES.index("governor_approval")]
        with self.db.engine.connect() as conn:
            return list(conn.execute(
                select(AR.id).where(AR.status == "pending_approval", AR.stage.in_(early))
                .order_by(AR.created_at)).scalars().all())

    def _auto_approve(self, tx: _Tx, request: ApprovalRequest, seed_id: str, now: datetime,
                      correlation: str) -> None:
        request.status = "auto_approved"
        request.stage = "veto_window"
        request.matched_seed_id = seed_id
        request.veto_deadline = now + self.veto_window
        request.decided_by = f"seed:{seed_id}"
        request.decided_at = now
        request.pipeline = pl.enter_veto_window(
            request.pipeline, now, "skipped", f"Auto-approved: precedent seed {seed_id} matched.")
        self._emit(tx, ev.SEED_AUTO_APPROVED,
                   {"approval_id": request.id, "seed_id": seed_id,
                    "agent_name": request.agent_name,
                    "veto_deadline": rfc3339(request.veto_deadline)},
                   correlation_id=correlation)

    # ------------------------------------------------------------------ decisions
    def decide(self, actor: Actor, commands: Sequence[DecisionCommand], *,
               full_detail: bool = False, minimal: bool = False,
               also: AlsoWrite | None = None) -> list[DecisionResult]:
        """Apply decisions in one transaction, each at most once per key; results in order.

        A rejected decision writes nothing and is not remembered, so resending it is
        judged again; applied ones are remembered and replayed. Results carry the request
        as changed (``_change``: what a decision changes); ``full_detail`` gives the whole
        request instead, as the single-decision routes answer; ``minimal`` only its id,
        status, version and update time (``_minimal``), and that is what is remembered. A
        replay answers what was remembered (under ``minimal`` slimmed to those fields: a
        projection of the first answer, never more than it said). ``also(connection,
        results)`` runs in the same transaction before it commits: what it writes (the
        audit log, the state mirror) is committed with the decisions or not at all.
        """
        if not commands:
            return []
        results: list[DecisionResult] = []
        with self._write() as tx:
            keys = sorted({c.key for c in commands})
            # Claimed first: a send of the same key on another replica waits here until
            # this transaction ends, then reads what it stored and replays it.
            self._claim_keys(tx, actor.sub, keys)
            records = self._answered(tx, actor.sub, keys)
            ids = sorted({c.approval_id for c in commands})
            columns = _DETAIL_COLUMNS if full_detail else _CHANGE_COLUMNS
            represent = (self._minimal if minimal else
                         self._detail if full_detail else self._change)
            approvals = {r["id"]: r for r in self._lock_approvals(tx, ids, columns)}
            if not minimal:  # the answers show the stages' evidence
                evidence = self._evidence(tx.session, list(approvals))
                for approval_id, held in approvals.items():
                    held["evidence"] = evidence.get(approval_id, {})
            original = {k: (v["version"]) for k, v in approvals.items()}
            decisions: list[tuple[dict[str, Any], DecisionCommand]] = []
            remembered: list[dict[str, Any]] = []
            fresh: dict[str, tuple[str, DecisionResult]] = {}
            vetoed_any = False
            for command in commands:
                fingerprint = command.fingerprint()
                record = records.get(command.key)
                earlier = fresh.get(command.key)
                seen: tuple[str, int, dict[str, Any] | None] | None = None
                if record is not None:
                    seen = (record["request_hash"], record["status_code"], record["body"])
                elif earlier is not None:
                    seen = (earlier[0], earlier[1].status_code, earlier[1].body)
                if seen is not None:
                    stored_hash, status_code, body = seen
                    if stored_hash != fingerprint:
                        results.append(self._rejected(command, IdempotencyKeyReused(
                            f"Idempotency key {command.key!r} was used for a different "
                            "decision; make a new key for a new decision.",
                            details={"key": command.key})))
                        continue
                    if minimal and body is not None and "data" in body:
                        body = {**body, "data": self.slim(body["data"])}
                    results.append(DecisionResult(command.key, "replayed", status_code, body))
                    continue
                state = approvals.get(command.approval_id)
                try:
                    if state is None:
                        raise NotFound(f"Approval request {command.approval_id!r} does not "
                                       "exist; refresh the approvals list.",
                                       details={"id": command.approval_id})
                    self._check_scope(actor, command)
                    self._apply(state, command, actor, tx.now)
                except ApiError as exc:
                    rejected = self._rejected(command, exc)
                    if state is not None:  # the request as it is now, to refresh from
                        rejected.body = {"data": self._refused_shown(tx, state, represent,
                                                                     minimal=minimal)}
                    results.append(rejected)
                    continue
                vetoed_any = vetoed_any or command.action == "veto"
                decision = {
                    "approval_id": command.approval_id, "action": command.action,
                    "category": command.category, "reason": command.reason,
                    "comment": command.comment, "sub": actor.sub,
                    "client_id": actor.client_id, "device_id": command.device_id,
                    "request_id": actor.request_id, "idempotency_key": command.key,
                    "version_before": state["version"] - 1, "version_after": state["version"],
                    "decided_at": tx.now, "device_decided_at": command.device_decided_at}
                decisions.append((decision, command))
                body = {"data": represent(_Row(state)), "meta": self._meta(actor, tx.now)}
                result = DecisionResult(command.key, "applied", 200, body)
                results.append(result)
                fresh[command.key] = (fingerprint, result)
                remembered.append({"sub": actor.sub, "key": command.key,
                                   "request_hash": fingerprint, "status_code": 200,
                                   "body": body, "created_at": tx.now})
                self._emit(tx, ev.APPROVAL_DECIDED,
                           {"approval_id": command.approval_id, "action": command.action,
                            "status": state["status"], "decided_by": actor.sub,
                            "category": command.category,
                            "veto_deadline": self._shown_deadline(
                                state["status"], state["veto_deadline"]),
                            "version": state["version"]},
                           correlation_id=actor.request_id or command.approval_id,
                           causation_id=command.key, user_id=actor.sub)
            self._persist_decisions(tx, approvals, original, decisions, remembered)
            self._release_claims(tx, actor.sub, keys)
            if vetoed_any:
                self._recompute_metrics(tx)
            if also is not None:
                also(tx.session.connection(), results)
        for state in approvals.values():
            if state["veto_deadline"] is not None and state["status"] in pl.IN_WINDOW:
                self._deadline_set(state["veto_deadline"])
        return results

    @staticmethod
    def _rejected(command: DecisionCommand, error: ApiError) -> DecisionResult:
        return DecisionResult(command.key, "rejected", error.status_code, None, error)

    @staticmethod
    def _meta(actor: Actor, now: datetime) -> dict[str, Any]:
        return {"request_id": actor.request_id, "timestamp": rfc3339(now)}

    @staticmethod
    def _check_scope(actor: Actor, command: DecisionCommand) -> None:
        scope = ACTION_SCOPES[command.action]
        if scope not in actor.scopes:
            raise InsufficientScope(scope)

    def _apply(self, state: dict[str, Any], command: DecisionCommand, actor: Actor,
               now: datetime) -> None:
        """Change ``state`` (a request's columns) by the decision, or raise why not."""
        status = state["status"]
        decided = {"status": status, "decided_by": state["decided_by"],
                   "decided_at": rfc3339(state["decided_at"]) if state["decided_at"] else None}
        if command.action == "veto":
            if status == "deployed" or (status in pl.IN_WINDOW and state["veto_deadline"]
                                        and state["veto_deadline"] <= now):
                deadline = state["veto_deadline"]
                raise VetoWindowClosed(
                    f"The veto window of {command.approval_id!r} has closed; the agent is "
                    "deployed. Raise a violation against the running agent instead.",
                    details={"deadline": rfc3339(deadline) if deadline else None,
                             "status": status})
            if status not in pl.VETOABLE:
                raise AlreadyDecided(
                    f"Approval request {command.approval_id!r} was already {status} by "
                    f"{state['decided_by']}; refresh it to see the decision.", details=decided)
            total = sum(len(a.data) for a in command.attachments)
            if total > MAX_ATTACHMENT_BYTES:
                raise PayloadTooLarge(
                    f"The attachments of the veto on {command.approval_id!r} hold {total} "
                    "bytes; at most 5 MB in all are accepted. Attach less.",
                    details={"attachments_bytes": total, "limit": MAX_ATTACHMENT_BYTES})
            note = f"Vetoed ({command.category}): {command.reason}"
            state.update(status="vetoed", veto_deadline=None,
                         pipeline=pl.stop(state["pipeline"], now, note))
        else:
            if status != "pending_approval":
                raise AlreadyDecided(
                    f"Approval request {command.approval_id!r} was already {status} by "
                    f"{state['decided_by']}; refresh it to see the decision.", details=decided)
            if command.expected_version != state["version"]:
                raise VersionConflict(
                    f"Approval request {command.approval_id!r} changed since you read it "
                    f"(version {state['version']}, you had {command.expected_version}); "
                    "refresh it and decide again.",
                    details={"current_version": state["version"],
                             "expected_version": command.expected_version})
            if command.action == "approve":
                deadline = now + self.veto_window
                note = f"Approved by {actor.sub}" + (f": {command.comment}"
                                                      if command.comment else ".")
                state.update(status="approved", veto_deadline=deadline,
                             pipeline=pl.enter_veto_window(state["pipeline"], now, "passed",
                                                           note))
            else:
                note = f"Changes requested by {actor.sub}: {command.reason}"
                state.update(status="changes_requested",
                             pipeline=pl.stop(state["pipeline"], now, note))
        state.update(version=state["version"] + 1, decided_by=actor.sub, decided_at=now,
                     decision_note=note[:2000], updated_at=now,
                     stage=pl.current_stage(state["pipeline"]))

    def _lock_approvals(self, tx: _Tx, ids: Sequence[str], columns: Sequence[Any]
                        ) -> list[dict[str, Any]]:
        """The ``columns`` of the requests ``ids`` (in id order) as dicts, row-locked until
        the commit (SQLite: the transaction holds the write lock already). On SQLite through
        the driver: SQLAlchemy's per-row result processing of 500 requests cost more than
        the query."""
        if not self.db.is_sqlite:
            return [dict(r._mapping) for r in tx.session.execute(
                select(*columns).where(AR.id.in_(ids)).order_by(AR.id)
                .with_for_update()).all()]
        return self._sqlite_read(tx, columns, "", (), AR.id, ids, order_by="id")

    def _answered(self, tx: _Tx, sub: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored answers (not placeholders) of ``sub``'s ``keys``, by key, each a dict
        of ``key``, ``request_hash``, ``status_code`` and ``body``."""
        columns = (IR.key, IR.request_hash, IR.status_code, IR.body)
        if self.db.is_sqlite:  # through the driver, as ``_lock_approvals`` reads
            rows = self._sqlite_read(tx, columns, "sub = ? AND status_code != ?",
                                     (sub, _CLAIMED), IR.key, keys)
        else:
            rows = [dict(r._mapping) for r in tx.session.execute(
                select(*columns).where(IR.sub == sub, IR.key.in_(keys),
                                       IR.status_code != _CLAIMED)).all()]
        return {r["key"]: r for r in rows}

    def _sqlite_read(self, tx: _Tx, columns: Sequence[Any], where: str,
                     params: Sequence[Any], among: Any, values: Sequence[Any], *,
                     order_by: str = "") -> list[dict[str, Any]]:
        """The ``columns`` (of one table) of its rows whose column ``among`` is one of
        ``values`` (and, when given, that match ``where`` with ``params``), as
        ``_from_sqlite`` gives them: read through the session's driver connection, in its
        transaction. SQLAlchemy's expanding IN list and per-row result processing of 500
        rows cost more than the query."""
        table = cast(Table, among.table)
        names = [c.name for c in columns]
        condition = f"{where} AND " if where else ""
        order = f" ORDER BY {order_by}" if order_by else ""
        read: list[dict[str, Any]] = []
        for start in range(0, len(values), 500):  # bounded IN lists
            chunk = list(values[start:start + 500])
            rows = self._raw(tx).execute(
                f"SELECT {', '.join(names)} FROM {table.name} WHERE {condition}{among.name} "
                f"IN ({', '.join('?' for _ in chunk)}){order}", [*params, *chunk]).fetchall()
            read.extend(_from_sqlite(table, names, rows))
        return read

    def _persist_decisions(self, tx: _Tx, approvals: dict[str, dict[str, Any]],
                           original: dict[str, int],
                           decisions: list[tuple[dict[str, Any], DecisionCommand]],
                           remembered: list[dict[str, Any]]) -> None:
        if not decisions:
            return
        changed = [s for k, s in approvals.items() if s["version"] != original[k]]
        self._bulk_update_approvals(tx, changed)
        vetoed_agents = [s["agent_id"] for s in changed if s["status"] == "vetoed"]
        if vetoed_agents:
            tx.session.execute(update(Agent).where(AG.id.in_(vetoed_agents))
                               .values(status="rejected", updated_at=tx.now))
        plain = [d for d, c in decisions if not c.attachments]
        if plain:
            self._bulk_insert(tx, DE.id.table, plain)
        for decision, command in decisions:
            if not command.attachments:
                continue
            decision_id = tx.session.execute(insert(Decision).returning(DE.id),
                                             decision).scalar_one()
            tx.session.execute(insert(DecisionAttachment), [
                {"decision_id": decision_id, "name": a.name, "content_type": a.content_type,
                 "size": len(a.data), "sha256": hashlib.sha256(a.data).hexdigest(),
                 "data": self._sealed(a.data, decision_id)} for a in command.attachments])
        self._store_responses(tx, remembered)

    def _sealed(self, data: bytes, decision_id: int) -> bytes:
        seal = self.seal_attachment
        return data if seal is None else seal(data, f"decision:{decision_id}".encode())

    _APPROVAL_CHANGES = ("status", "stage", "version", "pipeline", "veto_deadline",
                         "decided_by", "decided_at", "decision_note", "updated_at")

    def _bulk_update_approvals(self, tx: _Tx, changed: list[dict[str, Any]]) -> None:
        if self.db.is_sqlite:
            assignments = ", ".join(f"{c} = ?" for c in self._APPROVAL_CHANGES)
            columns = (*self._APPROVAL_CHANGES, "id")
            self._raw(tx).executemany(
                f"UPDATE approval_requests SET {assignments} WHERE id = ?",
                _sqlite_rows(APPROVALS, columns, ([s[c] for c in columns] for s in changed)))
            return
        tx.session.execute(
            update(APPROVALS).where(AR.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in self._APPROVAL_CHANGES}),
            [{"b_id": s["id"], **{f"b_{c}": s[c] for c in self._APPROVAL_CHANGES}}
             for s in changed])

    def _bulk_insert(self, tx: _Tx, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert many rows; on SQLite straight through the driver.

        SQLAlchemy's per-row parameter processing was most of a 500-decision batch; the
        driver takes the values as SQLAlchemy would store them (``_sqlite_rows``).
        """
        if not self.db.is_sqlite:
            tx.session.execute(insert(table), rows)
            return
        columns = list(rows[0])
        self._raw(tx).executemany(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            _sqlite_rows(table, columns, ([row[c] for c in columns] for row in rows)))

    @staticmethod
    def _raw(tx: _Tx) -> Any:
        # The session's own DB-API connection: same transaction, committed with it.
        return tx.session.connection().connection.driver_connection

    # ------------------------------------------------------------------ idempotency
    # Several stub processes on one PostgreSQL database must agree on who answers a key
    # first. Each write claims its keys before anything else: an ``INSERT ... ON CONFLICT
    # DO NOTHING`` of a placeholder row (status ``_CLAIMED``) under the (sub, key) primary
    # key. A second claim of the same key blocks until the first transaction ends; it then
    # finds the stored answer (replayed) or nothing (the first was rolled back or rejected,
    # and this one owns the key). The placeholder becomes the stored answer, or is deleted,
    # before the commit, so no other transaction ever sees one. On SQLite, ``BEGIN
    # IMMEDIATE`` (``_write``) already makes every writer wait for the one before it.
    def _claim_keys(self, tx: _Tx, sub: str, keys: Sequence[str]) -> None:
        if self.db.is_sqlite or not keys:
            return
        # Sorted by the caller, so two batches sharing keys take them in the same order.
        tx.session.execute(
            pg_insert(IR.key.table).on_conflict_do_nothing(index_elements=["sub", "key"]),
            [{"sub": sub, "key": key, "request_hash": "", "status_code": _CLAIMED,
              "body": {}, "created_at": tx.now} for key in keys])

    def _release_claims(self, tx: _Tx, sub: str, keys: Sequence[str]) -> None:
        """Drop the placeholders of keys this write did not answer (rejected decisions are
        not remembered): a later send of the key is judged afresh."""
        if self.db.is_sqlite or not keys:
            return
        tx.session.execute(delete(IdempotencyRecord).where(
            IR.sub == sub, IR.key.in_(keys), IR.status_code == _CLAIMED))

    def _store_responses(self, tx: _Tx, rows: list[dict[str, Any]]) -> None:
        """Store answers to replay: over this write's placeholders on PostgreSQL."""
        if not rows:
            return
        if self.db.is_sqlite:
            self._bulk_insert(tx, IR.key.table, rows)
            return
        stmt = pg_insert(IR.key.table)
        tx.session.execute(stmt.on_conflict_do_update(
            index_elements=["sub", "key"],
            set_={c: stmt.excluded[c] for c in ("request_hash", "status_code", "body",
                                                "created_at")}), rows)

    def _idempotent(self, tx: _Tx, sub: str, key: str, fingerprint: str
                    ) -> IdempotencyRecord | None:
        self._claim_keys(tx, sub, [key])
        session = tx.session
        record = session.get(IdempotencyRecord, (sub, key))
        if record is None or record.status_code == _CLAIMED:
            return None
        if record.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency key {key!r} was used for a different request; make a new key "
                "for a new request.", details={"key": key})
        return record

    def _remember(self, tx: _Tx, sub: str, key: str, fingerprint: str, status_code: int,
                  body: dict[str, Any]) -> None:
        self._store_responses(tx, [{"sub": sub, "key": key, "request_hash": fingerprint,
                                    "status_code": status_code, "body": body,
                                    "created_at": tx.now}])

    def purge_idempotency_keys(self) -> int:
        """Forget keys older than the 7 days the contract promises."""
        with self._write() as tx:
            result = tx.session.execute(delete(IdempotencyRecord).where(
                IR.created_at < tx.now - IDEMPOTENCY_TTL))
            return int(getattr(result, "rowcount", 0) or 0)

    # ------------------------------------------------------------------ agents, budgets, violations
    def add_agent(self, *, name: str, industry: str, kind: str, status: str = "active",
                  tokens_limit: int, tokens_used: int = 0, cost_limit_usd: float = 0.0,
                  cost_used_usd: float = 0.0, capabilities: Sequence[str] = ()) -> str:
        capabilities = caps.checked(capabilities)
        with self._write() as tx:
            agent_id = f"AGT-{self._next(tx.session, 'agent_ids'):04d}"
            share = _utilisation(tokens_used, tokens_limit)
            # An agent that arrives over a threshold has it known, not announced, today.
            level = max(self.budgets.announce(agent_id, share, day=tx.now.date().isoformat(),
                                              conn=tx.session.connection()), default=0)
            tx.session.add(Agent(id=agent_id, name=name, industry=industry, kind=kind,
                                 status=status, tokens_used=tokens_used,
                                 tokens_limit=tokens_limit, cost_used_usd=cost_used_usd,
                                 cost_limit_usd=cost_limit_usd, capabilities=list(capabilities),
                                 alert_level=level, created_at=tx.now, updated_at=tx.now))
        return agent_id

    def consume_budget(self, agent_id: str, tokens: int, *, correlation_id: str | None = None
                       ) -> list[int]:
        """Charge an agent's daily budget; announce each 80 % / 95 % threshold it reached,
        once per agent per day (``ResourceManager.announce``, in this transaction)."""
        with self._write() as tx:
            agent = tx.session.get(Agent, agent_id, with_for_update=True)
            if agent is None:
                raise NotFound(f"Agent {agent_id!r} does not exist.", details={"id": agent_id})
            agent.tokens_used += tokens
            agent.cost_used_usd += tokens * 0.000002
            agent.updated_at = tx.now
            share = _utilisation(agent.tokens_used, agent.tokens_limit)
            crossed = self.budgets.announce(agent.id, share, day=tx.now.date().isoformat(),
                                            conn=tx.session.connection())
            for threshold in crossed:
                self._emit(tx, ev.BUDGET_THRESHOLD,
                           {"agent_id": agent.id, "agent_name": agent.name,
                            "threshold": threshold, "utilisation": share,
                            "tokens_used": agent.tokens_used,
                            "tokens_limit": agent.tokens_limit},
                           correlation_id=correlation_id or agent.id)
            if crossed:
                agent.alert_level = max(crossed)
            tx.session.add(agent)
            if share > 1.0 and agent.alert_level < 100:
                agent.alert_level = 100
                self._violation(tx, agent.id, "budget", "high",
                                f"{agent.name} spent {share:.0%} of its daily token budget.",
                                correlation_id or agent.id)
        return crossed

    def record_violation(self, agent_id: str, kind: str, severity: str, description: str,
                         *, correlation_id: str | None = None,
                         occurred_at: datetime | None = None) -> dict[str, Any]:
        with self._write() as tx:
            if tx.session.get(Agent, agent_id) is None:
                raise NotFound(f"Agent {agent_id!r} does not exist.", details={"id": agent_id})
            violation = self._violation(tx, agent_id, kind, severity, description,
                                        correlation_id, occurred_at)
        return self.violation_view(violation)

    def _violation(self, tx: _Tx, agent_id: str, kind: str, severity: str, description: str,
                   correlation_id: str | None, occurred_at: datetime | None = None) -> Violation:
        number = self._next(tx.session, "violation_ids")
        violation = Violation(id=f"VIO-{number:04d}", agent_id=agent_id, kind=kind,
                              severity=severity, description=description,
                              occurred_at=occurred_at or tx.now,
                              version=self._next(tx.session, "violations"))
        tx.session.add(violation)
        self._emit(tx, ev.AGENT_VIOLATED,
                   {"violation_id": violation.id, "agent_id": agent_id, "kind": kind,
                    "severity": severity, "description": description},
                   correlation_id=correlation_id or violation.id)
        return violation

    def resolve_violation(self, violation_id: str) -> int:
        """Remove a resolved violation, leaving a tombstone for delta readers."""
        with self._write() as tx:
            violation = tx.session.get(Violation, violation_id, with_for_update=True)
            if violation is None:
                raise NotFound(f"Violation {violation_id!r} does not exist.",
                               details={"id": violation_id})
            version = self._next(tx.session, "violations")
            tx.session.delete(violation)
            tx.session.add(Tombstone(collection="violations", entity_id=violation_id,
                                     version=version, deleted_at=tx.now))
        return version

    @staticmethod
    def violation_view(v: Violation) -> dict[str, Any]:
        return {"id": v.id, "agent_id": v.agent_id, "kind": v.kind, "severity": v.severity,
                "description": v.description, "occurred_at": rfc3339(v.occurred_at),
                "version": v.version}

    def list_violations(self, *, since: int | None = None, cursor: str | None = None,
                        limit: int = 50) -> tuple[list[dict[str, Any]], str | None, int,
                                                  list[str]]:
        query = select(Violation)
        if since is not None:
            query = query.where(VI.version > since)
        if cursor:
            (after,) = decode_cursor(cursor, 1)
            query = query.where(VI.id < str(after))
        query = query.order_by(VI.id.desc()).limit(limit + 1)
        with self.db.session() as session:
            version = self._current(session, "violations")
            rows = session.execute(query).scalars().all()
            deleted = self._tombstones(session, "violations", since)
        items = [self.violation_view(v) for v in rows[:limit]]
        return items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None, \
            version, deleted

    def agent_ids(self, status: str | None = "active") -> list[str]:
        with self.db.session() as session:
            query = select(AG.id)
            if status:
                query = query.where(AG.status == status)
            return list(session.execute(query.order_by(AG.id)).scalars().all())

    def is_empty(self) -> bool:
        with self.db.session() as session:
            return session.execute(select(func.count()).select_from(Agent)).scalar_one() == 0


class _Row:
    """Attribute access over a request's column dict, for the shared representations."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
