"""Small helpers the components share: time from a clock, canonical JSON, a connection."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Connection

from backend_stub.clock import Clock
from backend_stub.db import Database


def timer_from(clock: Clock | None) -> Callable[[], float]:
    """Seconds as a float: the clock's when one is given (tests and the demo move it),
    else the monotonic clock (never jumps backwards)."""
    if clock is None:
        return time.monotonic
    return lambda: clock.now().timestamp()


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds
# for every call, built once.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The scalars orjson writes as ``_CANONICAL`` does, and that a JSON round trip gives back
# as they are (exact types: a subclass may differ).
_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only objects with text keys, lists, text, integers, booleans
    and nulls (exact types): what orjson encodes byte for byte as ``_CANONICAL`` does."""
    # Scalars are checked in place, not by a call each: this runs for every event and
    # audit entry signed (1,000 values of ~12 fields in a batch of 500 decisions), and the
    # calls were most of its time.
    kind = type(value)
    if kind is dict:  # a loop, not all() over a generator, for the same reason
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _PLAIN_SCALARS and not _plain(item):
                return False
        return True
    if kind is list:
        return all(type(item) in _PLAIN_SCALARS or _plain(item) for item in value)
    return kind in _PLAIN_SCALARS


def canonical_json(value: Any) -> str:
    """The one byte-exact JSON form signatures and hashes are computed over.

    Plain values (``_plain``: no floats, whose text the two encoders write differently)
    go through orjson at twice the speed (every event and audit entry of a 500-decision
    batch is signed); what orjson refuses (an integer beyond 64 bits, a lone surrogate)
    and everything else through the standard library's encoder."""
    if _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return _CANONICAL.encode(value)


# A string in canonical JSON: what canonical_json(text) gives, without its dispatch.
quote: Callable[[str], str] = json.encoder.encode_basestring


def survives_json(value: Mapping[str, Any]) -> bool:
    """Whether a JSON round trip gives ``value`` back as it is: a flat object of strings,
    integers, booleans and nulls (exact types: a str or int subclass may not come back).
    Lets a caller skip the round trip it would make to store exactly what it hashed."""
    return all(type(k) is str and type(v) in _PLAIN_SCALARS for k, v in value.items())


@contextmanager
def transaction(db: Database, conn: Connection | None) -> Iterator[Connection]:
    """``conn`` when the caller is in a transaction already (a store writing with a batch
    of decisions), else a transaction of our own, committed on leaving."""
    if conn is not None:
        yield conn
        return
    with db.engine.begin() as own:
        yield own


def insert_rows(conn: Connection, table: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], *, on_conflict: str = "") -> int:
    """``INSERT`` rows through the driver's executemany, returning how many were stored.

    For a batch (500 audit entries, 500 state versions): SQLAlchemy's per-row parameter
    processing cost more than the inserts. Values must be what the driver takes as they
    are (text, numbers, None). ``on_conflict``: e.g. ``"ON CONFLICT DO NOTHING"``.
    """
    if not rows:
        return 0
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    result = conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)}) {on_conflict}",
        [tuple(row) for row in rows])
    return int(result.rowcount or 0)
