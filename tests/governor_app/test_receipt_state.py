"""What the detail screen says of a decision's receipt, and the fake client's receipts."""

from __future__ import annotations

import asyncio

from governor_app import state
from sync.fakes import FakeGovernorClient
from sync.models import Receipt


def test_the_receipt_line_says_verified_invalid_or_awaited() -> None:
    ok = Receipt(decision_id="d", approval_id="A", action="veto", status="verified",
                 audit_seq=12)
    assert state.receipt_line(ok) == (
        "Receipt verified: Veto signed by the server, audit entry 12.", "ok")
    bad = ok.model_copy(update={"status": "invalid", "problem": "it was altered"})
    assert state.receipt_line(bad) == ("Receipt invalid: it was altered", "bad")
    wait = ok.model_copy(update={"status": "awaiting"})
    assert state.receipt_line(wait) is not None and state.receipt_line(wait)[1] == "wait"  # type: ignore[index]
    assert state.receipt_line(None) is None


def test_the_fake_client_verifies_applied_decisions_and_can_show_a_bad_one() -> None:
    client = FakeGovernorClient()
    pending = [a.id for a in client.approvals("pending")]
    first = client.approve(pending[0])
    second = client.approve(pending[1])
    assert client.receipt(pending[0]).status == "awaiting"  # type: ignore[union-attr]
    client.bad_receipts[second.id] = "signed with another key"
    asyncio.run(client.sync_now())
    assert client.receipt(pending[0]).status == "verified"  # type: ignore[union-attr]
    assert client.receipt(pending[1]).problem == "signed with another key"  # type: ignore[union-attr]
    assert [r.decision_id for r in client.receipts()] == [first.id, second.id]
    assert client.receipt("nothing-decided") is None
