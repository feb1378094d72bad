"""Stream tickets: how a browser's ``EventSource`` (which cannot send an ``Authorization``
header) opens ``GET /v1/mobile/events``.

``POST /v1/mobile/events/ticket`` with the bearer token gives ``{ticket, expires_in}``; the
browser opens ``/v1/mobile/events?ticket=...``. A ticket

- is 256 random bits, stored only as its SHA-256 hash, in the database (so any stub process
  sharing it redeems it);
- lives ``TICKET_TTL_S`` seconds (the stub's clock);
- works once: redeeming is one ``DELETE ... RETURNING``, so of two concurrent uses (on one
  process or several) exactly one gets the row;
- carries the token's subject, username, scopes, client and token id: the stream runs as
  that principal, and a ticket of a token revoked since is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import Connection, text

from backend_stub.clock import Clock
from backend_stub.db import Database, Migration
from backend_stub.errors import InvalidToken
from backend_stub.oauth.guard import Principal

TICKET_TTL_S = 30


def _create_table(conn: Connection) -> None:
    conn.execute(text("""CREATE TABLE stream_tickets (
        ticket_hash TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        username TEXT NOT NULL,
        scopes TEXT NOT NULL,
        client_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    )"""))
    conn.execute(text("CREATE INDEX ix_stream_tickets_expires ON stream_tickets (expires_at)"))


MIGRATIONS = [Migration("events_0001_stream_tickets", _create_table)]


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8")).hexdigest()


class StreamTickets:
    """Issues and redeems single-use stream tickets (see the module docstring)."""

    def __init__(self, db: Database, clock: Clock, *, ttl_s: int = TICKET_TTL_S,
                 is_revoked: Any = None) -> None:
        self.db = db
        self.clock = clock
        self.ttl_s = ttl_s
        self._is_revoked = is_revoked or (lambda jti: False)

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def issue(self, principal: Principal) -> str:
        ticket = secrets.token_urlsafe(32)
        now = self._now()
        with self.db.engine.begin() as conn:
            # Tickets nobody redeemed are forgotten here (an index keeps this cheap).
            conn.execute(text("DELETE FROM stream_tickets WHERE expires_at < :now"),
                         {"now": now})
            conn.execute(text(
                "INSERT INTO stream_tickets (ticket_hash, sub, username, scopes, client_id, "
                "jti, expires_at) VALUES (:h, :sub, :u, :s, :c, :j, :e)"),
                {"h": _hash(ticket), "sub": principal.sub, "u": principal.username,
                 "s": " ".join(sorted(principal.scopes)), "c": principal.client_id,
                 "j": principal.jti, "e": now + self.ttl_s})
        return ticket

    def redeem(self, ticket: str) -> Principal:
        """The principal the ticket was issued to; the ticket is gone afterwards. Raises
        ``InvalidToken`` (401) for an unknown, used, expired or revoked one."""
        with self.db.engine.begin() as conn:
            row = conn.execute(text(
                "DELETE FROM stream_tickets WHERE ticket_hash = :h "
                "RETURNING sub, username, scopes, client_id, jti, expires_at"),
                {"h": _hash(ticket)}).mappings().first()
        if row is None:
            raise InvalidToken("This stream ticket is unknown or was already used; get a "
                               "new one with POST /v1/mobile/events/ticket.")
        if self._now() >= row["expires_at"]:
            raise InvalidToken(f"This stream ticket expired (tickets last {self.ttl_s} s); "
                               "get a new one with POST /v1/mobile/events/ticket.")
        if self._is_revoked(row["jti"]):
            raise InvalidToken("The sign-in this stream ticket came from was revoked; sign "
                               "in again.")
        return Principal(row["sub"], row["username"], frozenset(row["scopes"].split()),
                         row["client_id"], row["jti"])
