"""The domain's named migrations, applied once each by ``Database.migrate``.

A migration that has shipped is never edited; a schema change is a new migration. Those
after the first check what exists, because ``0001`` builds the tables from the current
models and a fresh database may therefore already have what a later one adds.
"""

from __future__ import annotations

import json
from typing import cast

from sqlalchemy import Connection, Table, inspect, select, text, update
from sqlmodel import SQLModel

from backend_stub.db import Migration
from backend_stub.domain import pipeline as pl
from backend_stub.domain.models import DOMAIN_TABLES, AgentSubmission, ApprovalRequest


def _initial(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn, tables=DOMAIN_TABLES)


def _audit_indexes(conn: Connection) -> None:
    # Audit queries ask "what did this device / person decide"; keep them off a table scan.
    existing = {ix["name"] for ix in inspect(conn).get_indexes("decisions")}
    for name, column in (("idx_decisions_device", "device_id"), ("idx_decisions_sub", "sub")):
        if name not in existing:
            conn.execute(text(f"CREATE INDEX {name} ON decisions ({column})"))


def _event_correlation_index(conn: Connection) -> None:
    existing = {ix["name"] for ix in inspect(conn).get_indexes("events")}
    if "idx_events_correlation" not in existing:
        conn.execute(text("CREATE INDEX idx_events_correlation ON events (correlation_id)"))


def _agent_submissions(conn: Connection) -> None:
    # create_all checks first: a fresh database already has it from 0001.
    table = cast(Table, getattr(AgentSubmission, "__table__"))  # noqa: B009
    SQLModel.metadata.create_all(conn, tables=[table])


# Indexes no query reads, each paid for by every row of a decision batch (500 decisions
# and 500 events: issue #17's batch figure). Nothing looks decisions up by device or sub,
# nor events by correlation id or type: the API reads decisions by request and events by
# id. An index comes back with the query that needs it.
UNREAD_INDEXES = ("idx_decisions_device", "idx_decisions_sub", "idx_events_correlation",
                  "ix_events_type")


def _drop_unread_indexes(conn: Connection) -> None:
    for name in UNREAD_INDEXES:
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


def _approval_evidence(conn: Connection) -> None:
    # A request's pipeline evidence (certificate, reviews: ~2 KB of its ~3 KB row) moves
    # to a table of its own: a batch of 500 decisions rewrote it with every request row
    # (issue #17). ``pipeline`` keeps the stages' own fields (``pipeline.split``).
    conn.execute(text("CREATE TABLE approval_evidence (approval_id VARCHAR(64) PRIMARY KEY, "
                      "evidence TEXT NOT NULL)"))
    requests = cast(Table, getattr(ApprovalRequest, "__table__"))  # noqa: B009
    rows = conn.execute(select(requests.c.id, requests.c.pipeline)).all()
    for approval_id, pipeline in rows:
        stages, evidence = pl.split(pipeline)
        if not evidence:
            continue
        conn.execute(update(requests).where(requests.c.id == approval_id)
                     .values(pipeline=stages))
        conn.execute(text("INSERT INTO approval_evidence (approval_id, evidence) "
                          "VALUES (:id, :evidence)"),
                     {"id": approval_id, "evidence": json.dumps(evidence)})


MIGRATIONS: list[Migration] = [
    Migration("domain_0001_initial", _initial),
    Migration("domain_0002_audit_indexes", _audit_indexes),
    Migration("domain_0003_event_correlation_index", _event_correlation_index),
    Migration("domain_0004_agent_submissions", _agent_submissions),
    Migration("domain_0005_drop_unread_indexes", _drop_unread_indexes),
    Migration("domain_0006_approval_evidence", _approval_evidence),
]
