"""``POST /v1/mobile/seeds/{id}/retire``: a retired seed matches and auto-approves nothing,
keeps its record, and reaches delta readers; it needs governance:write."""

from __future__ import annotations

from tests.backend_stub.api.conftest import Api
from tests.backend_stub.api.test_contract import READ, SEED, data, error

WHY = {"reason": "Replaced by a narrower seed."}


def test_a_retired_seed_no_longer_auto_approves_and_reaches_delta_readers(api: Api) -> None:
    api.client.post("/v1/mobile/seeds", json=SEED, headers={**api.auth(),
                                                            "Idempotency-Key": "s1"})
    assert api.submit()["status"] == "auto_approved"
    version = api.client.get("/v1/mobile/seeds", headers=api.auth(READ)).json()["meta"][
        "version"]
    retired = api.client.post("/v1/mobile/seeds/GEN-001/retire", json=WHY,
                              headers=api.auth())
    assert retired.status_code == 200
    seed = data(retired)
    assert seed["status"] == "retired" and seed["version"] == version + 1
    assert seed["metrics"]["matches"] == 1  # its record stays
    delta = api.client.get("/v1/mobile/seeds", params={"since": version},
                           headers=api.auth(READ)).json()
    assert [s["id"] for s in delta["data"]] == ["GEN-001"]
    assert delta["data"][0]["status"] == "retired"
    # The same request again: nothing auto-approves it now.
    assert api.submit()["status"] == "pending_approval"
    # Retiring again changes nothing.
    before = data(api.client.get("/v1/mobile/seeds/GEN-001", headers=api.auth(READ)))
    again = api.client.post("/v1/mobile/seeds/GEN-001/retire", json=WHY,
                            headers=api.auth())
    assert again.status_code == 200 and data(again) == before


def test_retiring_needs_the_write_scope_and_an_existing_seed(api: Api) -> None:
    api.client.post("/v1/mobile/seeds", json=SEED, headers={**api.auth(),
                                                            "Idempotency-Key": "s1"})
    refused = api.client.post("/v1/mobile/seeds/GEN-001/retire", json=WHY,
                              headers=api.auth(READ))
    assert refused.status_code == 403 and error(refused)["code"] == "INSUFFICIENT_SCOPE"
    assert data(api.client.get("/v1/mobile/seeds/GEN-001",
                               headers=api.auth(READ)))["status"] == "active"
    missing = api.client.post("/v1/mobile/seeds/GEN-404/retire", json=WHY,
                              headers=api.auth())
    assert missing.status_code == 404 and error(missing)["code"] == "NOT_FOUND"
    unsaid = api.client.post("/v1/mobile/seeds/GEN-001/retire", json={"reason": ""},
                             headers=api.auth())
    assert unsaid.status_code == 422 and error(unsaid)["code"] == "VALIDATION_FAILED"
