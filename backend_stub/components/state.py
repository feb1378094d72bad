"""State: versioned records with an audit trail of every change.

``StateManager.save`` writes a new version (optionally only if the caller saw the latest:
``expected_version``), ``load`` reads the latest or any earlier version, ``atomic_update``
applies a function with optimistic locking and retries, and ``history`` is the audit trail:
who changed what, when, and why.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from backend_stub.clock import Clock, rfc3339
from backend_stub.components.errors import StateConflict, StateNotFound
from backend_stub.db import Database


@dataclass(frozen=True)
class StateVersion:
    state_id: str
    version: int
    data: dict[str, Any]
    actor: str | None
    reason: str | None
    created_at: str


class StateStore(Protocol):
    def latest(self, state_id: str) -> StateVersion | None: ...
    def get(self, state_id: str, version: int) -> StateVersion | None: ...
    def insert(self, record: StateVersion) -> bool:
        """Store a new version; ``False`` when that version exists already (a lost race)."""
        ...
    def history(self, state_id: str) -> list[StateVersion]: ...


class MemoryStateStore:
    def __init__(self) -> None:
        self._versions: dict[str, list[StateVersion]] = {}
        self._lock = threading.Lock()

    def latest(self, state_id: str) -> StateVersion | None:
        with self._lock:
            versions = self._versions.get(state_id)
            return versions[-1] if versions else None

    def get(self, state_id: str, version: int) -> StateVersion | None:
        with self._lock:
            for record in self._versions.get(state_id, []):
                if record.version == version:
                    return record
            return None

    def insert(self, record: StateVersion) -> bool:
        with self._lock:
            versions = self._versions.setdefault(record.state_id, [])
            if versions and record.version <= versions[-1].version:
                return False
            versions.append(record)
            return True

    def history(self, state_id: str) -> list[StateVersion]:
        with self._lock:
            return list(self._versions.get(state_id, []))


class SqlStateStore:
    """Versions in ``components_state``; the (state_id, version) key settles races."""

    def __init__(self, db: Database) -> None:
        self.db = db

    _COLUMNS = "state_id, version, data, actor, reason, created_at"

    @staticmethod
    def _row(row: Any) -> StateVersion:
        return StateVersion(row[0], int(row[1]), json.loads(row[2]), row[3], row[4], row[5])

    def latest(self, state_id: str) -> StateVersion | None:
        with self.db.engine.begin() as conn:
            row = conn.execute(text(
                f"SELECT {self._COLUMNS} FROM components_state WHERE state_id = :s "
                "ORDER BY version DESC LIMIT 1"), {"s": state_id}).first()
        return None if row is None else self._row(row)

    def get(self, state_id: str, version: int) -> StateVersion | None:
        with self.db.engine.begin() as conn:
            row = conn.execute(text(
                f"SELECT {self._COLUMNS} FROM components_state WHERE state_id = :s "
                "AND version = :v"), {"s": state_id, "v": version}).first()
        return None if row is None else self._row(row)

    def insert(self, record: StateVersion) -> bool:
        try:
            with self.db.engine.begin() as conn:
                conn.execute(text(
                    f"INSERT INTO components_state ({self._COLUMNS}) "
                    "VALUES (:s, :v, :d, :a, :r, :c)"),
                    {"s": record.state_id, "v": record.version, "d": json.dumps(record.data),
                     "a": record.actor, "r": record.reason, "c": record.created_at})
        except IntegrityError:
            return False
        return True

    def history(self, state_id: str) -> list[StateVersion]:
        with self.db.engine.begin() as conn:
            rows = conn.execute(text(
                f"SELECT {self._COLUMNS} FROM components_state WHERE state_id = :s "
                "ORDER BY version"), {"s": state_id}).all()
        return [self._row(r) for r in rows]


class StateManager:
    """Versioned state with an audit trail; in memory unless given a ``SqlStateStore``."""

    def __init__(self, store: StateStore | None = None, *, clock: Clock | None = None) -> None:
        self.store: StateStore = store or MemoryStateStore()
        self._clock = clock

    def _now(self) -> str:
        return rfc3339(self._clock.now() if self._clock else datetime.now(UTC))

    def version(self, state_id: str) -> int:
        """The latest version of ``state_id``; 0 when it was never saved."""
        latest = self.store.latest(state_id)
        return 0 if latest is None else latest.version

    def save(self, state_id: str, state_data: Mapping[str, Any], *,
             expected_version: int | None = None, actor: str | None = None,
             reason: str | None = None, at_version: int | None = None) -> int:
        """Store ``state_data`` as the next version and return that version number.

        With ``expected_version`` the write happens only if it is still the latest
        (``StateConflict`` otherwise, carrying the current version). ``at_version`` mirrors
        a record whose versions are numbered elsewhere (the approval requests' table): the
        new version is that number, which must be above the latest stored.
        """
        current = self.version(state_id)
        if expected_version is not None and expected_version != current:
            raise StateConflict(state_id, expected_version, current)
        if at_version is not None and at_version <= current:
            raise StateConflict(state_id, at_version - 1, current)
        data = {k: v for k, v in state_data.items() if k != "version"}
        try:
            # A JSON round trip: memory and SQL stores keep exactly the same data.
            data = json.loads(json.dumps(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state {state_id!r} is not JSON-compatible ({exc}); "
                             "store dicts, lists, strings, numbers, booleans or None") from exc
        record = StateVersion(state_id, at_version or current + 1, data, actor, reason,
                              self._now())
        if not self.store.insert(record):
            raise StateConflict(state_id, current, self.version(state_id))
        return record.version

    def load(self, state_id: str, version: int | None = None) -> dict[str, Any]:
        """The latest (or the given) version's data, with its ``version``."""
        record = (self.store.latest(state_id) if version is None
                  else self.store.get(state_id, version))
        if record is None:
            what = f"state {state_id!r}" + ("" if version is None else f" version {version}")
            raise StateNotFound(f"{what} does not exist; save it first or check the id")
        return {**record.data, "version": record.version}

    def atomic_update(self, state_id: str,
                      update_fn: Callable[[dict[str, Any]], Mapping[str, Any]], *,
                      actor: str | None = None, reason: str | None = None,
                      initial: Mapping[str, Any] | None = None,
                      max_retries: int = 20) -> dict[str, Any]:
        """Apply ``update_fn`` to the latest data and save it, retrying if another writer
        got in first. ``initial`` is the data to start from when nothing was saved yet."""
        for _ in range(max_retries):
            latest = self.store.latest(state_id)
            if latest is None and initial is None:
                raise StateNotFound(f"state {state_id!r} does not exist; save it first or "
                                    "pass initial= to atomic_update")
            current = latest.version if latest else 0
            base = dict(latest.data if latest else initial or {})
            updated = update_fn(base)
            try:
                version = self.save(state_id, updated, expected_version=current, actor=actor,
                                    reason=reason)
            except StateConflict:
                continue
            return {**{k: v for k, v in updated.items() if k != "version"}, "version": version}
        raise StateConflict(state_id, current, self.version(state_id))

    def history(self, state_id: str) -> list[dict[str, Any]]:
        """The audit trail: every version with who, when, why and which keys changed."""
        trail: list[dict[str, Any]] = []
        previous: dict[str, Any] = {}
        for record in self.store.history(state_id):
            keys = set(previous) | set(record.data)
            changed = sorted(k for k in keys if previous.get(k, _ABSENT)
                             != record.data.get(k, _ABSENT))
            trail.append({"version": record.version, "actor": record.actor,
                          "reason": record.reason, "at": record.created_at,
                          "changed": changed})
            previous = record.data
        return trail


_ABSENT = object()
