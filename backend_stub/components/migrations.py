"""The core components' tables, created by named migrations (``components_*``).

Types are the portable subset SQLite and PostgreSQL share; times are stored as epoch
seconds (``DOUBLE PRECISION``) or RFC 3339 text so both dialects compare them alike.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from backend_stub.db import Migration


def _create_cache(conn: Connection) -> None:
    conn.execute(text(
        "CREATE TABLE components_cache (cache_key VARCHAR(512) PRIMARY KEY, "
        "value TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)"))


def _create_state(conn: Connection) -> None:
    # One row per version: the versions themselves are the audit trail, and the primary
    # key makes two writers of the same version collide (optimistic locking for free).
    conn.execute(text(
        "CREATE TABLE components_state (state_id VARCHAR(200) NOT NULL, "
        "version INTEGER NOT NULL, data TEXT NOT NULL, actor VARCHAR(200), "
        "reason VARCHAR(500), created_at VARCHAR(40) NOT NULL, "
        "PRIMARY KEY (state_id, version))"))


def _create_audit_log(conn: Connection) -> None:
    conn.execute(text(
        "CREATE TABLE components_audit_log (seq INTEGER PRIMARY KEY, at VARCHAR(40) NOT NULL, "
        "actor VARCHAR(200) NOT NULL, action VARCHAR(200) NOT NULL, "
        "resource VARCHAR(500) NOT NULL, details TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, "
        "hash VARCHAR(64) NOT NULL, mac VARCHAR(64) NOT NULL)"))
    # The signed head catches deletion of the newest entries, which a chain alone cannot.
    conn.execute(text(
        "CREATE TABLE components_audit_head (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
        "hash VARCHAR(64) NOT NULL, mac VARCHAR(64) NOT NULL)"))


def _create_dlq(conn: Connection) -> None:
    conn.execute(text(
        "CREATE TABLE components_dlq (id VARCHAR(36) PRIMARY KEY, queue VARCHAR(100) NOT NULL, "
        "payload TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL, "
        "created_at VARCHAR(40) NOT NULL)"))
    conn.execute(text("CREATE INDEX ix_components_dlq_queue ON components_dlq (queue)"))


def _create_budgets(conn: Connection) -> None:
    conn.execute(text(
        "CREATE TABLE components_budget_usage (agent_id VARCHAR(200) NOT NULL, "
        "day VARCHAR(10) NOT NULL, tokens_used BIGINT NOT NULL, requests INTEGER NOT NULL, "
        "PRIMARY KEY (agent_id, day))"))
    # A row per threshold crossed: the primary key makes "once per threshold per day" hold
    # even with several stub processes sharing the database.
    conn.execute(text(
        "CREATE TABLE components_budget_alerts (agent_id VARCHAR(200) NOT NULL, "
        "day VARCHAR(10) NOT NULL, threshold INTEGER NOT NULL, "
        "PRIMARY KEY (agent_id, day, threshold))"))


def _create_audit_keys(conn: Connection) -> None:
    # Keys of entries that must be written once (a decision and its replays): written in
    # the entry's own transaction, so a key exists exactly when its entry does.
    conn.execute(text(
        "CREATE TABLE components_audit_keys (once_key VARCHAR(500) PRIMARY KEY, "
        "seq INTEGER NOT NULL)"))


MIGRATIONS: list[Migration] = [
    Migration("components_0001_cache", _create_cache),
    Migration("components_0002_state", _create_state),
    Migration("components_0003_audit_log", _create_audit_log),
    Migration("components_0004_dlq", _create_dlq),
    Migration("components_0005_budgets", _create_budgets),
    Migration("components_0006_audit_keys", _create_audit_keys),
]
