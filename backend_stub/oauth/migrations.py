"""The OAuth server's tables, created by named migrations (all prefixed ``oauth_``).

Secrets (authorization codes, refresh tokens, device codes) are stored only as SHA-256
hashes, so a copy of the database does not hand out sessions. Times are epoch seconds
(``DOUBLE PRECISION``), which SQLite and PostgreSQL both store exactly enough.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from backend_stub.db import Migration

_TABLES = (
    """CREATE TABLE oauth_users (
        username TEXT PRIMARY KEY,
        sub TEXT UNIQUE NOT NULL,
        password_hash TEXT NOT NULL,
        scopes TEXT NOT NULL
    )""",
    """CREATE TABLE oauth_signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_pem TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        retired_at DOUBLE PRECISION
    )""",
    """CREATE TABLE oauth_codes (
        code_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        scope TEXT NOT NULL,
        sub TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        code_challenge_method TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION,
        family_id TEXT
    )""",
    """CREATE TABLE oauth_refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        sub TEXT NOT NULL,
        scope TEXT NOT NULL,
        access_jti TEXT NOT NULL,
        access_exp DOUBLE PRECISION NOT NULL,
        issued_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION
    )""",
    "CREATE INDEX ix_oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id)",
    """CREATE TABLE oauth_revoked_jti (
        jti TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE oauth_device_codes (
        device_code_hash TEXT PRIMARY KEY,
        user_code TEXT UNIQUE NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        poll_interval INTEGER NOT NULL,
        last_poll_at DOUBLE PRECISION,
        status TEXT NOT NULL,
        sub TEXT
    )""",
)


def _create_tables(conn: Connection) -> None:
    for ddl in _TABLES:
        conn.execute(text(ddl))


def _create_client_secrets(conn: Connection) -> None:
    # Generated client secrets (the resource server's when no setting names one): kept in
    # the database so every stub process sharing it agrees on them.
    conn.execute(text("""CREATE TABLE oauth_client_secrets (
        client_id TEXT PRIMARY KEY,
        secret TEXT NOT NULL
    )"""))


MIGRATIONS: list[Migration] = [Migration("oauth_0001_tables", _create_tables),
                               Migration("oauth_0002_client_secrets", _create_client_secrets)]
