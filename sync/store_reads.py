"""The store's reads that the cold start shares with it, in plain ``sqlite3``.

``LocalStore`` (SQLAlchemy, ``sync.store``) answers these reads through the functions here,
on its own raw connection; ``sync.cold_start`` answers the first screen through the same
functions on a read-only connection of its own, before the engine (and SQLAlchemy) is
even imported. The schema knowledge of those reads lives here once. Nothing here imports
SQLAlchemy or the cipher: the cold start pays for neither.

Whose rows a read gives (``Owner``): an account's ``sub``, None (nobody signed in), or
``EVERY_ACCOUNT`` (no filter: tools, tests, the migration checks).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from sync.models import PENDING_SHOWS_AS, ApprovalSummary, DecisionAction

Shown = TypeVar("Shown", bound=ApprovalSummary)

# The engine's database in its data directory (``GovernorSettings.database_path``).
DATABASE_NAME = "governor.db"
# The last migration of ``sync.store.MIGRATIONS`` (a test keeps the two equal): a store
# not migrated that far is one the engine must migrate before anything reads it.
SCHEMA = "0015_decision_seen_after_update"
# ``meta`` keys: who the store serves (``Account`` fields as JSON, ``null`` when nobody
# is signed in), the server it caches (``server_identity``), the last full sync.
ACCOUNT_META = "account"
SERVER_META = "server_url"
LAST_SYNCED_META = "last_synced_at"


@dataclass(frozen=True)
class EveryAccount:
    """The store's owner before an account is chosen: reads are not filtered (tools,
    tests and the migration checks see every row)."""


EVERY_ACCOUNT = EveryAccount()
Owner = str | None | EveryAccount  # an account's ``sub``, no account (None), or all


def iso(value: datetime) -> str:
    """Timestamps are stored as UTC ISO strings, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def server_identity(url: str) -> str:
    """``url`` as the name of a server: scheme and host in lower case, no trailing slash
    (``HTTP://Host:8000/`` and ``http://host:8000`` are one server)."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"),
                       parts.query, "")) or url


def open_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection to the database at ``path`` (``mode=ro``: it never creates,
    migrates or writes the file). Raises ``sqlite3.Error`` when it cannot be opened."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                         isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA query_only = ON")
    return db


def schema_current(db: sqlite3.Connection) -> bool:
    """Whether the store holds the current schema (older: the engine migrates it first)."""
    try:
        row = db.execute("SELECT 1 FROM schema_migration WHERE name = ?",
                         (SCHEMA,)).fetchone()
    except sqlite3.OperationalError:  # no schema_migration table: never migrated
        return False
    return row is not None


# --- accounts -----------------------------------------------------------------------------
def mine(owner: Owner, column: str = "sub") -> tuple[str, dict[str, Any]]:
    """The SQL condition (with its parameter) that keeps the owner's rows."""
    if isinstance(owner, EveryAccount):
        return "1", {}
    return f"{column} IS :owner", {"owner": owner}


def notification_sub(owner: Owner) -> str:
    """The ``sub`` a notification is kept under (``''``: nobody signed in)."""
    return owner if isinstance(owner, str) else ""


def mine_notification(owner: Owner) -> tuple[str, dict[str, Any]]:
    if isinstance(owner, EveryAccount):
        return "1", {}
    return "sub = :owner", {"owner": notification_sub(owner)}


# --- meta ---------------------------------------------------------------------------------
def meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def account_text(fields: dict[str, Any] | None) -> str:
    """What ``ACCOUNT_META`` holds for ``fields`` (``sub``, ``username``, ``scopes``)."""
    if fields is None:
        return "null"
    return json.dumps({"sub": fields["sub"], "username": fields["username"],
                       "scopes": sorted(fields["scopes"])})


def kept_account(db: sqlite3.Connection) -> tuple[bool, dict[str, Any] | None]:
    """``(known, fields)``: who the store last served (fields None: nobody signed in);
    ``known`` is False when no version that records it has run on this store."""
    stored = meta(db, ACCOUNT_META)
    if stored is None:
        return False, None
    fields = json.loads(stored)
    if fields is not None and not isinstance(fields, dict):
        raise ValueError(f"the kept account is {type(fields).__name__}, not an object")
    return True, fields


# --- the first screen ---------------------------------------------------------------------
def dashboard_row(db: sqlite3.Connection) -> tuple[str, str | None, str] | None:
    """``(body as stored, etag, fetched_at)`` of the cached dashboard, or None."""
    row = db.execute("SELECT body, etag, fetched_at FROM dashboard WHERE id = 1").fetchone()
    return (row[0], row[1], row[2]) if row else None


def notification_rows(db: sqlite3.Connection, owner: Owner) -> list[tuple[str, str, bool]]:
    """``(id, body as stored, read)`` of the owner's notifications, newest first."""
    where, params = mine_notification(owner)
    rows = db.execute(f"SELECT id, body, read FROM notification WHERE {where} "
                      "ORDER BY timestamp DESC, id DESC", params).fetchall()
    return [(r[0], r[1], bool(r[2])) for r in rows]


def outbox_counts(db: sqlite3.Connection, owner: Owner) -> dict[str, int]:
    """The owner's outbox entries per state."""
    where, params = mine(owner)
    rows = db.execute(f"SELECT state, count(*) FROM outbox WHERE {where} GROUP BY state",
                      params).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def foreign_count(db: sqlite3.Connection, owner: Owner) -> int:
    """How many entries other accounts left on this device (what sign-out and the outbox
    say stays here, without showing them)."""
    if isinstance(owner, EveryAccount):
        return 0
    return int(db.execute("SELECT count(*) FROM outbox WHERE sub IS NOT :o "
                          "AND state != 'applied'", {"o": owner}).fetchone()[0])


def oldest_pending_at(db: sqlite3.Connection, owner: Owner) -> str | None:
    """When the owner's oldest entry still to send was queued (stored UTC text)."""
    where, params = mine(owner)
    value = db.execute("SELECT min(created_at) FROM outbox WHERE state IN "
                       f"('queued', 'sending') AND {where}", params).fetchone()[0]
    return str(value) if value is not None else None


# --- the approvals list -------------------------------------------------------------------
# The approvals list as the governor sees it: a decision not yet answered by the server
# shows as the status it leads to (a queued veto wins over an earlier approve; otherwise
# the latest decision counts), and the list filters on that status.
SHOWN = (
    "WITH unanswered AS (SELECT approval_id, max(seq), action, "
    "sum(action = 'veto') AS vetoes FROM outbox WHERE kind = 'decision' "
    "AND state IN ('queued', 'sending', 'held') AND {mine} GROUP BY approval_id), "
    "shown AS (SELECT a.id, a.created_at, a.veto_deadline, a.search, a.summary, "
    "CASE WHEN u.vetoes > 0 THEN 'veto' ELSE u.action END AS pending, "
    "CASE WHEN u.vetoes > 0 THEN '" + PENDING_SHOWS_AS[DecisionAction.VETO].value + "' "
    + "".join(f"WHEN u.action = '{action.value}' THEN '{status.value}' "
              for action, status in PENDING_SHOWS_AS.items()
              if action != DecisionAction.VETO)
    + "ELSE a.status END AS status "
    "FROM approval a LEFT JOIN unanswered u ON u.approval_id = a.id) ")
LIST_FILTERS = {
    "all": "1",
    "pending": "status = 'pending_approval'",
    "veto_window": "status IN ('approved', 'auto_approved') AND veto_deadline > :now",
    "decided": "status != 'pending_approval'",
}


def list_where(filter: str, needle: str) -> str:
    try:
        where = LIST_FILTERS[filter]
    except KeyError:
        raise ValueError(f"Unknown approvals filter {filter!r}; use one of "
                         f"{', '.join(LIST_FILTERS)}.") from None
    return f"WHERE {where}" + (" AND instr(search, :needle) > 0" if needle else "")


def approval_total(db: sqlite3.Connection, owner: Owner, filter: str, needle: str,
                   now: str) -> int:
    """How many requests the list shows for ``filter`` and ``needle`` (lower-cased by the
    caller) at ``now`` (stored UTC text)."""
    where, params = mine(owner)
    sql = SHOWN.format(mine=where) + "SELECT count(*) FROM shown " + list_where(filter,
                                                                                 needle)
    return int(db.execute(sql, {"now": now, "needle": needle, **params}).fetchone()[0])


def approval_page(db: sqlite3.Connection, owner: Owner, filter: str, needle: str, now: str,
                  limit: int, offset: int) -> list[tuple[str, DecisionAction | None]]:
    """One page of the list, newest first: ``(summary as stored, unanswered decision)``
    for the requests whose shown status passes ``filter`` and whose search text holds
    ``needle`` (lower-cased by the caller), at ``now`` (stored UTC text)."""
    where, params = mine(owner)
    sql = (SHOWN.format(mine=where) + "SELECT summary, pending FROM shown "
           + list_where(filter, needle) + " ORDER BY created_at DESC, id DESC LIMIT :l OFFSET :o")
    rows = db.execute(sql, {"now": now, "needle": needle, "l": max(0, limit),
                            "o": max(0, offset), **params}).fetchall()
    return [(r[0], DecisionAction(r[1]) if r[1] else None) for r in rows]


def shown(model: type[Shown], fields: dict[str, Any], pending: DecisionAction | None
          ) -> Shown:
    """A request as the app shows it: a decision still unanswered shows as the status it
    leads to (``PENDING_SHOWS_AS``), as the list filters on it."""
    item = model.model_validate(fields)
    if pending is not None:
        item.pending_decision = pending
        item.status = PENDING_SHOWS_AS[pending]
    return item
