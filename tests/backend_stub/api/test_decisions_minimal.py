"""``POST /v1/mobile/decisions`` with ``Prefer: return=minimal`` (RFC 7240): each result's
request is only ``{id, status, version, updated_at}``, the receipt stays, and a replay
answers in the shape its first send asked for (a minimal replay of a full first answer is
a projection of it)."""

from __future__ import annotations

from typing import Any

import pytest

from backend_stub.api.mobile import prefers_minimal
from tests.backend_stub.api.conftest import Api
from tests.backend_stub.api.test_contract import data, item

MINIMAL = {"Prefer": "return=minimal"}
FIELDS = {"id", "status", "version", "updated_at"}


def _post(api: Api, batch: list[dict[str, Any]], headers: dict[str, str] | None = None
          ) -> Any:
    response = api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                               headers={**api.auth(), **(headers or {})})
    assert response.status_code == 200, response.text
    return response


def test_minimal_answers_carry_four_fields_and_every_receipt(api: Api) -> None:
    a, b, c = (api.submit(agent_name=n) for n in ("A", "B", "C"))
    batch = [item(a["id"], "m1"), item(b["id"], "m2", "veto"),
             item(c["id"], "m3", expected_version=9), item("REQ-0404", "m4")]
    response = _post(api, batch, MINIMAL)
    assert response.headers["Preference-Applied"] == "return=minimal"
    applied, vetoed, conflict, unknown = data(response)
    assert applied["approval"] == {"id": a["id"], "status": "approved", "version": 2,
                                   "updated_at": applied["approval"]["updated_at"]}
    assert vetoed["approval"]["status"] == "vetoed" and set(vetoed["approval"]) == FIELDS
    assert applied["receipt"]["claims"]["decision_id"] == "m1"
    assert vetoed["receipt"]["claims"]["approval_version"] == vetoed["approval"]["version"]
    # A rejection: the request as it is now, whole (the client names the fields that
    # changed from it), and no receipt.
    assert conflict["error"]["code"] == "VERSION_CONFLICT" and "receipt" not in conflict
    assert {k: conflict["approval"][k] for k in FIELDS} == {
        "id": c["id"], "status": "pending_approval", "version": 1,
        "updated_at": c["updated_at"]}
    assert {"pipeline", "agent", "decided_by"} <= set(conflict["approval"])
    assert conflict["approval"]["pipeline"] == c["pipeline"]  # its evidence joined back
    assert unknown["error"]["code"] == "NOT_FOUND" and "approval" not in unknown
    # What was stored is what was answered.
    full = api.client.get(f"/v1/mobile/approvals/{a['id']}", headers=api.auth()).json()
    assert {k: full["data"][k] for k in FIELDS} == applied["approval"]


def test_without_the_preference_the_answer_is_full_and_says_nothing(api: Api) -> None:
    a, b = api.submit(agent_name="A"), api.submit(agent_name="B")
    for headers in (None, {"Prefer": "return=representation"}):
        approval_id = (a if headers is None else b)["id"]
        response = _post(api, [item(approval_id, f"f-{approval_id}")], headers)
        assert "Preference-Applied" not in response.headers
        [result] = data(response)
        assert {"pipeline", "agent", "decided_by", "decision_note"} <= set(result["approval"])


def test_a_minimal_replay_of_a_full_answer_is_its_projection(api: Api) -> None:
    a = api.submit()
    [first] = data(_post(api, [item(a["id"], "r1")]))
    response = _post(api, [item(a["id"], "r1")], MINIMAL)
    assert response.headers["Preference-Applied"] == "return=minimal"
    [again] = data(response)
    # The same decision (the preference is not part of it): replayed, not a reused key.
    assert again["outcome"] == "replayed"
    assert again["approval"] == {k: first["approval"][k] for k in FIELDS}
    assert again["receipt"] == first["receipt"]


def test_a_replay_of_a_minimal_answer_stays_minimal_without_the_preference(api: Api) -> None:
    a = api.submit()
    [first] = data(_post(api, [item(a["id"], "r2")], MINIMAL))
    response = _post(api, [item(a["id"], "r2")])
    assert "Preference-Applied" not in response.headers
    [again] = data(response)
    assert again["outcome"] == "replayed"
    # The stored answer, as it was given: the stub makes up no representation it never gave.
    assert again["approval"] == first["approval"] and set(again["approval"]) == FIELDS
    assert again["receipt"] == first["receipt"]


def test_a_key_reused_for_another_decision_is_refused_under_the_preference(api: Api) -> None:
    a = api.submit()
    _post(api, [item(a["id"], "r3")], MINIMAL)
    [reused] = data(_post(api, [item(a["id"], "r3", comment="other")], MINIMAL))
    assert reused["outcome"] == "rejected"
    assert reused["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_repeated_item_in_one_minimal_batch_replays_the_first(api: Api) -> None:
    a = api.submit()
    first, second = data(_post(api, [item(a["id"], "r4"), item(a["id"], "r4")], MINIMAL))
    assert [first["outcome"], second["outcome"]] == ["applied", "replayed"]
    assert second["approval"] == first["approval"] and set(first["approval"]) == FIELDS


@pytest.mark.parametrize("header, minimal", [
    ("return=minimal", True),
    ("respond-async, return=minimal", True),
    ('RETURN = "Minimal"', True),
    ("return=minimal; foo=bar", True),
    ("wait=10,return=minimal", True),
    ("return=representation", False),
    ("return-minimal", False),
    ("minimal", False),
    ("", False),
    (None, False),
])
def test_the_prefer_header_is_read_as_rfc_7240_has_it(header: str | None,
                                                       minimal: bool) -> None:
    assert prefers_minimal(header) is minimal
