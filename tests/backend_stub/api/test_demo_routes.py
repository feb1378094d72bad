from __future__ import annotations

from tests.backend_stub.api.conftest import Api


def test_demo_endpoints(demo_api: Api) -> None:
    client, auth = demo_api.client, demo_api.auth()
    made = client.post("/v1/demo/scenario", json={"event": "new_pending_approval"})
    assert made.status_code == 200
    approval_id = made.json()["data"]["result"]["approval_id"]
    assert client.get(f"/v1/mobile/approvals/{approval_id}",
                      headers=auth).json()["data"]["status"] == "pending_approval"
    bad = client.post("/v1/demo/scenario", json={"event": "earthquake"})
    assert bad.status_code == 422
    board = client.get("/v1/mobile/dashboard", headers=auth).json()["data"]
    assert board["in_veto_window"] >= 2
    moved = client.post("/v1/demo/clock", json={"advance_seconds": 25 * 3600})
    assert moved.status_code == 200 and moved.json()["data"]["deployed_or_notified"] >= 2
    after = client.get("/v1/mobile/dashboard", headers=demo_api.auth()).json()["data"]
    assert after["in_veto_window"] == 0
    negative = client.post("/v1/demo/clock", json={"advance_seconds": -5})
    assert negative.status_code == 422
