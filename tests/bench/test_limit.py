"""The limit app (bench/_limit.py), the baseline the decision and seed figures are ratios to:
it must really store what it is sent, durably, and answer in the contract's shape."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from bench._limit import create_app, put_seeds


def _items(n: int) -> list[dict[str, object]]:
    return [{"id": f"d-{i}", "approval_id": f"REQ-{i}", "action": "approve",
             "expected_version": 1, "decided_at": "2026-01-01T00:00:00Z",
             "device_id": "bench"} for i in range(n)]


def test_a_batch_is_stored_and_answered_in_order(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "limit.db"))
    response = client.post("/v1/mobile/decisions", content=json.dumps(
        {"decisions": _items(500)}), headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["data"]] == [f"d-{i}" for i in range(500)]
    assert {r["outcome"] for r in response.json()["data"]} == {"applied"}
    with sqlite3.connect(tmp_path / "limit.db") as db:
        assert db.execute("SELECT count(*) FROM decision").fetchone()[0] == 500
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = json.loads(db.execute("SELECT body FROM decision WHERE id = 'd-7'")
                            .fetchone()[0])
    assert stored["approval_id"] == "REQ-7"


def test_a_bad_batch_stores_nothing_and_the_next_one_goes_through(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "limit.db"), raise_server_exceptions=False)
    broken = [*_items(3), {"id": "no-approval"}]
    assert client.post("/v1/mobile/decisions", content=json.dumps(
        {"decisions": broken})).status_code == 500
    assert client.post("/v1/mobile/decisions", content=json.dumps(
        {"decisions": _items(2)})).status_code == 200
    with sqlite3.connect(tmp_path / "limit.db") as db:
        assert db.execute("SELECT count(*) FROM decision").fetchone()[0] == 2


def test_seeds_are_served_in_pages_as_stored(tmp_path: Path) -> None:
    put_seeds(tmp_path / "limit.db", [(f"S-{i}", json.dumps({"id": f"S-{i}", "version": i}))
                                      for i in range(450)])
    client = TestClient(create_app(tmp_path / "limit.db"))
    seen: list[str] = []
    params: dict[str, object] = {"limit": 200}
    pages = 0
    while True:
        body = client.get("/v1/mobile/seeds", params=params).json()
        seen += [s["id"] for s in body["data"]]
        pages += 1
        if not body["meta"]["next_cursor"]:
            break
        params["cursor"] = body["meta"]["next_cursor"]
    assert pages == 3 and seen == [f"S-{i}" for i in range(450)]


def test_its_cpu_time_grows_with_the_work_it_does(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "limit.db"))
    before = client.get("/cpu").json()["data"]["cpu_s"]
    for n in range(20):
        client.post("/v1/mobile/decisions", content=json.dumps(
            {"decisions": [{**i, "id": f"{n}-{i['id']}"} for i in _items(200)]}))
    after = client.get("/cpu").json()["data"]["cpu_s"]
    assert isinstance(before, float) and after > before


# --- the decisions endpoint as FastAPI is usually written (information beside the limit) ---

def test_the_usual_fastapi_endpoint_stores_a_batch_durably_in_order(tmp_path: Path) -> None:
    from bench._limit_orm import create_orm_app

    client = TestClient(create_orm_app(tmp_path / "orm.db"))
    response = client.post("/v1/mobile/decisions", json={"decisions": _items(500)})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["data"]] == [f"d-{i}" for i in range(500)]
    assert {r["outcome"] for r in response.json()["data"]} == {"applied"}
    with sqlite3.connect(tmp_path / "orm.db") as db:
        assert db.execute("SELECT count(*) FROM decision").fetchone()[0] == 500
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT approval_id FROM decision WHERE id = 'd-7'"
                          ).fetchone()[0] == "REQ-7"


def test_the_usual_fastapi_endpoint_refuses_a_bad_batch_and_stores_none(
        tmp_path: Path) -> None:
    from bench._limit_orm import create_orm_app

    client = TestClient(create_orm_app(tmp_path / "orm.db"))
    broken = [*_items(3), {"id": "no-approval"}]
    answer = client.post("/v1/mobile/decisions", json={"decisions": broken})
    assert answer.status_code == 422 and "approval_id" in answer.text
    assert client.post("/v1/mobile/decisions", json={"decisions": _items(2)}).status_code == 200
    with sqlite3.connect(tmp_path / "orm.db") as db:
        assert db.execute("SELECT count(*) FROM decision").fetchone()[0] == 2


def test_the_usual_fastapi_endpoint_keeps_its_table_out_of_the_stubs_metadata() -> None:
    from sqlmodel import SQLModel

    import backend_stub.domain.models  # noqa: F401  (the stub's own decision table)
    from bench._limit_orm import OrmDecision

    assert OrmDecision.metadata is not SQLModel.metadata
