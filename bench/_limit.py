"""The limit: the least a durable server can do with the requests the stub answers, the
baseline every decision and seed figure is a ratio to (issue #17).

A bare FastAPI app on the same uvicorn as the stub, with two endpoints and no auth,
validation, audit or events:

- ``POST /v1/mobile/decisions``: takes the very body the client sends (``{"decisions":
  [...]}``), parses it with orjson and inserts every item into SQLite (WAL,
  ``synchronous=FULL``) with one ``executemany`` in one transaction per batch; answers
  ``{"data": [{"id", "outcome": "applied"}, ...]}`` in order, the contract's shape.
- ``GET /v1/mobile/seeds?limit=N&cursor=C``: the rows put in its ``seed`` table (the
  stub's own seeds, as the stub serves them), paged by rowid, ``meta.next_cursor`` as the
  contract has it; each body is spliced into the answer as stored.
- ``GET /cpu``: this process's CPU time so far (``time.process_time()``, seconds), read
  before and after a run so the limit's cost is measured as the client's is (CPU time of
  its own process), whatever else the machine is running.

``running_limit(data_dir)`` starts it in its own process on a free loopback port, as
``bench._stub.running_stub`` starts the stub; ``python bench/_limit.py PORT DB`` serves it.

For information beside it, ``running_limit(data_dir, orm=True)`` (``... PORT DB --orm``)
serves ``POST /v1/mobile/decisions`` as FastAPI is usually written: a pydantic body, an
SQLModel bulk insert (``add_all``, one commit), a response model. The issue that set the
targets measured "a bare FastAPI endpoint" at 20,000 decisions a second; the bare app
above takes ~105,000-140,000 a second here and this one ~15,000, so the figures against
it show what the targets mean under the issue's own measure. No target uses it.
"""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
# ``python bench/_limit.py`` puts bench/ first on sys.path, where bench/sync.py would
# shadow the ``sync`` package; the repository root goes there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._stub import free_port, stop_process  # noqa: E402

SCHEMA = ("CREATE TABLE IF NOT EXISTS decision (id TEXT PRIMARY KEY, approval_id TEXT NOT NULL, "
          "action TEXT NOT NULL, body TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS seed (num INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, "
          "body TEXT NOT NULL);")


def connect(path: Path) -> sqlite3.Connection:
    """The limit's database: WAL and ``synchronous=FULL``, as durable as the stub's."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


def put_seeds(path: Path, bodies: Sequence[tuple[str, str]]) -> None:
    """Store ``(id, json body)`` rows for ``GET /v1/mobile/seeds`` to serve."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    with conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO seed (id, body) VALUES (?, ?)", bodies)
    conn.close()


def create_app(path: Path) -> FastAPI:
    conn = connect(path)
    app = FastAPI()

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"data": {"status": "ok"}}', media_type="application/json")

    @app.get("/cpu")
    async def cpu() -> Response:
        return Response(orjson.dumps({"data": {"cpu_s": time.process_time()}}),
                        media_type="application/json")

    @app.post("/v1/mobile/decisions")
    async def decisions(request: Request) -> Response:
        items = orjson.loads(await request.body())["decisions"]
        rows = [(i["id"], i["approval_id"], i["action"], orjson.dumps(i)) for i in items]
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT OR IGNORE INTO decision (id, approval_id, action, body) "
                             "VALUES (?, ?, ?, ?)", rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        data = [{"id": r[0], "outcome": "applied"} for r in rows]
        return Response(orjson.dumps({"data": data, "meta": {}}),
                        media_type="application/json")

    @app.get("/v1/mobile/seeds")
    async def seeds(limit: int = 200, cursor: int = 0) -> Response:
        rows = conn.execute("SELECT num, body FROM seed WHERE num > ? ORDER BY num LIMIT ?",
                            (cursor, limit)).fetchall()
        more = len(rows) == limit and conn.execute(
            "SELECT 1 FROM seed WHERE num > ? LIMIT 1", (rows[-1][0],)).fetchone()
        next_cursor = orjson.dumps(str(rows[-1][0]) if more else None).decode()
        body = ('{"data": [' + ",".join(r[1] for r in rows) + '], "meta": {"next_cursor": '
                + next_cursor + "}}")
        return Response(body.encode(), media_type="application/json")

    return app


@contextmanager
def running_limit(data_dir: Path, *, orm: bool = False) -> Iterator[str]:
    """The limit app (``orm``: the usual-FastAPI one) in its own process over
    ``data_dir/limit.db``; yields its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(port),
                             str(data_dir / "limit.db"), *(["--orm"] if orm else [])],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the limit app did not start:\n" + "".join(output[-20:]))
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        stop_process(proc)


def main() -> None:
    import uvicorn

    path = Path(sys.argv[2])
    if sys.argv[3:] == ["--orm"]:
        from bench._limit_orm import create_orm_app

        app = create_orm_app(path)
    else:
        app = create_app(path)
    gc.collect()
    gc.freeze()  # as the stub's cli does
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
