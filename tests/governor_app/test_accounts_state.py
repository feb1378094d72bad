"""Accounts apart and counts that agree, as the screens read them (no Flet)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from governor_app import state
from sync.errors import InvalidDecision
from sync.fakes import FakeGovernorClient
from sync.models import OutboxState, SyncStatus, VetoCategory

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def governor_with_a_refusal() -> tuple[FakeGovernorClient, str, str]:
    client = FakeGovernorClient(approvals=8, now=lambda: NOW)
    refused = client.veto("REQ-0001", VetoCategory.SAFETY, "exec").id
    client.reject(refused, "VETO_WINDOW_CLOSED", "The window closed.")
    queued = client.approve("REQ-0007").id
    return client, refused, queued


def test_each_badge_counts_what_its_list_shows() -> None:
    client, _refused, _queued = governor_with_a_refusal()
    badges = state.badges(client)
    # The outbox badge counts every entry the outbox lists, the refused one included.
    listed = sum(len(rows) for _k, _t, rows in state.outbox_sections(client, NOW))
    assert badges["/outbox"] == listed == 2 == badges["/more"]
    # The approvals badge counts the "Pending" list, where a queued decision has taken
    # its request out.
    assert badges["/approvals"] == len(client.approvals("pending")) \
        == client.approval_count("pending")
    assert "REQ-0007" not in {a.id for a in client.approvals("pending")}
    assert badges["/notifications"] == sum(not n.read for n in client.notifications()) == 2


def test_the_next_account_inherits_no_badge_and_sees_no_entry() -> None:
    client, refused, queued = governor_with_a_refusal()
    asyncio.run(client.sign_out())
    asyncio.run(client.sign_in_with_password("auditor", "auditor"))
    assert state.badges(client)["/outbox"] == 0 and state.badges(client)["/notifications"] == 0
    assert all(not rows for _k, _t, rows in state.outbox_sections(client, NOW))
    assert "REQ-0007" in {a.id for a in client.approvals("pending")}
    with pytest.raises(InvalidDecision, match="only the account that queued it"):
        client.discard(refused)
    with pytest.raises(InvalidDecision, match="only the account that queued it"):
        client.cancel(queued)
    assert client.conflict(refused) is None
    assert state.others_line(client.status()) == (
        "2 outbox entries of other accounts wait on this device for their author to sign "
        "in; only the author can see, send or discard them.")
    asyncio.run(client.sign_in_with_password("governor", "governor"))
    assert {e.id for e in client.outbox()} == {refused, queued}
    assert client.outbox({OutboxState.REJECTED})[0].id == refused


def test_sign_out_says_what_stays_on_the_device() -> None:
    kept = SyncStatus(pending_count=1, rejected_count=1)
    assert state.sign_out_words("governor", kept) == (
        "Signed out of governor. 2 outbox entries of governor stay on this device, held: "
        "no other account can see, send or discard them; they are sent when governor "
        "signs in here again. The requests and seeds cached on this device stay, sealed "
        "with its key; notifications stay with the account they came for.")
    one = state.sign_out_words("governor", SyncStatus(pending_count=1))
    assert "1 outbox entry of governor" in one and "discard it; it is sent" in one
    assert state.sign_out_words("auditor", SyncStatus()).startswith(
        "Signed out of auditor. Nothing of auditor waits to be sent.")
    assert state.others_line(SyncStatus()) is None
    assert state.others_line(SyncStatus(other_accounts_count=1)) == (
        "1 outbox entry of other accounts waits on this device for its author to sign in; "
        "only the author can see, send or discard them.")
