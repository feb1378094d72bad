"""The decisions endpoint as FastAPI is usually written, for information beside the limit
(``bench/_limit.py``; see its docstring): a pydantic body, an SQLModel bulk insert
(``add_all``, one commit, SQLite WAL with ``synchronous=FULL``), a response model. Served
by ``python bench/_limit.py PORT DB --orm``. Its table has a metadata of its own: the stub's
models (which have a ``decision`` table too) share SQLModel's.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, create_engine


class _OwnTables(SQLModel, registry=registry()):
    pass


class OrmDecision(_OwnTables, table=True):
    __tablename__ = "decision"
    id: str = Field(primary_key=True)
    approval_id: str
    action: str
    expected_version: int
    decided_at: datetime
    device_id: str


class OrmItem(BaseModel):
    id: str
    approval_id: str
    action: str
    expected_version: int
    decided_at: datetime
    device_id: str


class OrmBatch(BaseModel):
    decisions: list[OrmItem]


class OrmResult(BaseModel):
    id: str
    outcome: str


class OrmAnswer(BaseModel):
    data: list[OrmResult]
    meta: dict[str, Any]


def create_orm_app(path: Path) -> FastAPI:
    """The decisions endpoint as FastAPI is usually written (information only)."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def durable(conn: sqlite3.Connection, record: object) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")

    _OwnTables.metadata.create_all(engine)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/cpu")
    def cpu() -> dict[str, dict[str, float]]:
        return {"data": {"cpu_s": time.process_time()}}

    @app.post("/v1/mobile/decisions", response_model=OrmAnswer)
    def decisions(batch: OrmBatch) -> OrmAnswer:
        with Session(engine) as session:
            session.add_all([OrmDecision(**item.model_dump()) for item in batch.decisions])
            session.commit()
        return OrmAnswer(data=[OrmResult(id=item.id, outcome="applied")
                               for item in batch.decisions], meta={})

    return app
