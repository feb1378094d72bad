"""The judge itself: it must see every way a run can go wrong, each in its own category, or
a green chaos run proves nothing.

Each test doctors one thing in an otherwise clean, consistent history (the client's outbox,
the server's audit trail and approvals, and what the server answered per key) and checks
that exactly that category is found. The last test runs a short chaos run with an outbox
that gives up on a 503 and checks that the judge fails it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync.errors import ServerUnreachable
from sync.models import Attachment, DecisionAction, OutboxState
from sync.outbox import Outbox, UploadReport
from sync.store import Claimed, LocalStore, Outcome
from tests.chaos.harness import (
    CATEGORIES,
    CLIENT_TIMEOUT,
    ChaosWorld,
    Intent,
    SingleStub,
    intents,
    judge,
    queue_decisions,
    signed_in_engine,
)
from tests.chaos.proxy import ServerAnswer
from tests.support.server_state import ServerApproval, ServerDecision, ServerState

SUB, DEVICE = "governor", "dev-1"
EVIDENCE = b"the egress log"
APPLIED = ServerAnswer(200, "applied", None)
CONFLICT = ServerAnswer(200, "rejected", "VERSION_CONFLICT")


@dataclass
class History:
    """a: approve REQ-0 (applied); b: veto REQ-1 with a file (applied); c: request changes
    on REQ-2 (rejected VERSION_CONFLICT, as the server answered); REQ-3 untouched."""

    store: LocalStore
    made: dict[str, Intent]
    server: ServerState
    answers: dict[str, list[ServerAnswer]]

    def row(self, key: str) -> ServerDecision:
        return next(d for d in self.server.decisions if d.key == key)

    def replace_row(self, key: str, **changes: Any) -> None:
        self.server.decisions = [dataclasses.replace(d, **changes) if d.key == key else d
                                 for d in self.server.decisions]

    def set_approval(self, approval_id: str, status: str, decided_by: str | None) -> None:
        self.server.approvals[approval_id] = ServerApproval(approval_id, status, decided_by)

    def drop_row(self, key: str) -> None:
        self.server.decisions = [d for d in self.server.decisions if d.key != key]

    def found(self) -> set[str]:
        verdict = judge(self.store, self.made, self.server, self.answers)
        assert set(verdict.findings) == set(CATEGORIES)
        return verdict.found()


def _queue(store: LocalStore, key: str, approval: str, action: str,
           files: tuple[bytes, ...] = (), **fields: str) -> None:
    payload = {"id": key, "approval_id": approval, "action": action, "device_id": DEVICE,
               "decided_at": "2026-01-01T12:00:00Z", **fields}
    store.enqueue(entry_id=key, kind="decision", payload=payload, created_at=datetime.now(UTC),
                  approval_id=approval, action=DecisionAction(action), expected_version=1,
                  sub=SUB, attachments=[Attachment(name=f"f{i}.txt", content_type="text/plain",
                                                   data_base64=base64.b64encode(f).decode())
                                        for i, f in enumerate(files)])


def _settle(store: LocalStore, outcomes: list[Outcome]) -> None:
    store.record_outcomes(outcomes, datetime.now(UTC))


def _history(a: Outcome | None = None) -> History:
    """The clean history; ``a`` replaces what the client recorded for decision a."""
    store = LocalStore()
    _queue(store, "a", "REQ-0", "approve", comment="fine")
    _queue(store, "b", "REQ-1", "veto", (EVIDENCE,), category="safety", reason="egress")
    _queue(store, "c", "REQ-2", "request_changes", reason="narrow it")
    made = intents(store, ["a", "b", "c"])  # taken before the outbox drops applied files
    _settle(store, [a or Outcome("a", applied=True), Outcome("b", applied=True),
                    Outcome("c", applied=False, error_code="VERSION_CONFLICT",
                            error_message="changed since you read it")])
    digest = hashlib.sha256(EVIDENCE).hexdigest()
    server = ServerState(
        decisions=[
            ServerDecision(1, None, "REQ-9", "approve", None, None, None, "demo", "demo"),
            ServerDecision(2, "a", "REQ-0", "approve", None, None, "fine", SUB, DEVICE),
            ServerDecision(3, "b", "REQ-1", "veto", "safety", "egress", None, SUB, DEVICE,
                           (digest,))],
        approvals={a.id: a for a in [
            ServerApproval("REQ-9", "deployed", "demo"),
            ServerApproval("REQ-0", "approved", SUB), ServerApproval("REQ-1", "vetoed", SUB),
            ServerApproval("REQ-2", "pending_approval", None),
            ServerApproval("REQ-3", "auto_approved", None)]})
    # b met a real 503 from the server first (the client kept it queued), then applied.
    answers = {"a": [APPLIED], "b": [ServerAnswer(503, "refused", "INTERNAL"), APPLIED],
               "c": [CONFLICT]}
    return History(store, made, server, answers)


@pytest.fixture
def history() -> Iterator[History]:
    h = _history()
    yield h
    h.store.close()


def test_a_clean_history_passes(history: History) -> None:
    verdict = judge(history.store, history.made, history.server, history.answers)
    assert verdict.problems == [] and verdict.found() == set()
    assert (verdict.applied, verdict.rejected) == (2, 1)
    assert verdict.rejection_codes == {"VERSION_CONFLICT": 1}
    assert verdict.as_dict()["findings"] == {name: 0 for name in CATEGORIES}


def test_the_intent_holds_what_was_queued_with_file_digests(history: History) -> None:
    assert history.made["b"] == Intent("REQ-1", "veto", "safety", "egress", None, SUB, DEVICE,
                                       (hashlib.sha256(EVIDENCE).hexdigest(),))
    assert history.made["a"].comment == "fine" and history.made["a"].attachments == ()
    with pytest.raises(LookupError, match="'nope'"):
        intents(history.store, ["nope"])


def test_a_lost_decision_the_client_marked_rejected_is_an_unexplained_rejection() -> None:
    """The issue's mutant: a 503 the proxy injected, shown as SERVER_ERROR, never sent."""
    h = _history(Outcome("a", applied=False, error_code="SERVER_ERROR",
                         error_message="The server failed (503)."))
    h.drop_row("a")
    h.set_approval("REQ-0", "pending_approval", None)
    h.answers["a"] = [ServerAnswer(503, "refused", "INTERNAL")]  # a real 503 is no rejection
    verdict = judge(h.store, h.made, h.server, h.answers)
    assert verdict.found() == {"unexplained_rejection"}
    assert "SERVER_ERROR, which the server never answered" in verdict.problems[0]
    h.store.close()


def test_a_rejection_with_a_code_the_server_gave_another_key_is_unexplained(
        history: History) -> None:
    history.answers["c"] = [ServerAnswer(401, "refused", "UNAUTHORIZED")]
    assert history.found() == {"unexplained_rejection"}


def test_a_rejection_the_server_applied_is_unexplained(history: History) -> None:
    history.server.decisions.append(
        ServerDecision(4, "c", "REQ-2", "request_changes", None, "narrow it", None, SUB,
                       DEVICE))
    history.set_approval("REQ-2", "changes_requested", SUB)
    assert history.found() == {"unexplained_rejection"}


def test_a_rejection_without_a_message_is_unexplained(history: History) -> None:
    _queue(history.store, "d", "REQ-3", "veto", category="budget", reason="too much")
    history.made.update(intents(history.store, ["d"]))
    _settle(history.store, [Outcome("d", applied=False, error_code="", error_message="")])
    assert history.found() == {"unexplained_rejection"}


def test_applied_on_the_client_but_missing_on_the_server_is_lost(history: History) -> None:
    history.drop_row("a")
    history.set_approval("REQ-0", "pending_approval", None)
    assert history.found() == {"lost"}


def test_an_entry_gone_from_the_outbox_is_lost(history: History) -> None:
    history.store.remove("c", {OutboxState.REJECTED})
    assert history.found() == {"lost"}


def test_a_double_apply_is_duplicated(history: History) -> None:
    history.server.decisions.append(dataclasses.replace(history.row("b"), id=4))
    assert history.found() == {"duplicated"}


@pytest.mark.parametrize(("key", "changes", "status"), [
    pytest.param("a", {"action": "request_changes"}, ("REQ-0", "changes_requested"),
                 id="action"),
    pytest.param("a", {"approval_id": "REQ-3"}, None, id="approval"),
    pytest.param("b", {"reason": "something else"}, None, id="reason"),
    pytest.param("b", {"category": "budget"}, None, id="category"),
    pytest.param("a", {"comment": None}, None, id="comment"),
    pytest.param("b", {"attachments": ("0" * 64,)}, None, id="attachment-digest"),
    pytest.param("b", {"attachments": ()}, None, id="attachment-missing"),
    pytest.param("a", {"sub": "intruder"}, ("REQ-0", "approved"), id="decider"),
    pytest.param("a", {"device_id": "dev-2"}, None, id="device"),
])
def test_a_row_with_other_content_is_wrong_content(
        history: History, key: str, changes: dict[str, object],
        status: tuple[str, str] | None) -> None:
    history.replace_row(key, **changes)
    if "approval_id" in changes:  # a consistent server: the other request took it
        history.set_approval("REQ-0", "pending_approval", None)
        history.set_approval("REQ-3", "approved", SUB)
    if status is not None:
        history.set_approval(status[0], status[1], str(changes.get("sub", SUB)))
    assert history.found() == {"wrong_content"}
    verdict = judge(history.store, history.made, history.server, history.answers)
    assert next(iter(changes)) in verdict.findings["wrong_content"][0]


@pytest.mark.parametrize(("approval", "status", "decided_by"), [
    pytest.param("REQ-1", "approved", SUB, id="veto-applied-but-approved"),
    pytest.param("REQ-0", "pending_approval", None, id="approve-applied-but-pending"),
    pytest.param("REQ-3", "vetoed", SUB, id="vetoed-without-a-veto"),
    pytest.param("REQ-0", "approved", "someone", id="decided-by-another"),
])
def test_a_final_status_the_decisions_do_not_imply_is_wrong_status(
        history: History, approval: str, status: str, decided_by: str | None) -> None:
    history.set_approval(approval, status, decided_by)
    assert history.found() == {"wrong_status"}


def test_two_decisions_on_one_request_are_wrong_status(history: History) -> None:
    history.server.decisions.append(
        ServerDecision(4, None, "REQ-0", "request_changes", None, "x", None, "demo", "demo"))
    history.set_approval("REQ-0", "changes_requested", "demo")
    assert history.found() == {"wrong_status"}


def test_an_entry_still_queued_is_unfinished(history: History) -> None:
    _queue(history.store, "d", "REQ-3", "veto", category="budget", reason="too much")
    history.made.update(intents(history.store, ["d"]))
    assert history.found() == {"unfinished"}


def test_a_decision_the_client_never_made_is_foreign(history: History) -> None:
    history.server.decisions.append(
        ServerDecision(4, "ghost", "REQ-3", "veto", "safety", "x", None, SUB, DEVICE))
    history.set_approval("REQ-3", "vetoed", SUB)
    assert history.found() == {"foreign"}


def test_queue_decisions_makes_intents_the_judge_can_hold_to() -> None:
    store = LocalStore()
    ids = queue_decisions(store, [{"id": "REQ-0", "version": 1}], SUB, DEVICE, 4,
                          random.Random(3), "q")
    made = intents(store, ids)
    assert list(made) == ids and all(i.approval_id == "REQ-0" and i.sub == SUB
                                     for i in made.values())
    store.close()


# --- the mutant, through a short chaos run ---------------------------------------

class GivesUpOn503(Outbox):
    """The mutant from the issue: a 503 makes it mark the batch rejected with SERVER_ERROR
    instead of leaving it queued, so those decisions are never sent again."""

    async def _send_decisions(self, batch: list[Claimed], report: UploadReport) -> None:
        try:
            await super()._send_decisions(batch, report)
        except ServerUnreachable as exc:
            if "503" not in str(exc):
                raise
            claimed = self.store.claim_ids([e.id for e in batch], self.clock.now())
            self._record(report, [Outcome(e.id, applied=False, error_code="SERVER_ERROR",
                                          error_message=str(exc)) for e in claimed])


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("outbox", [Outbox, GivesUpOn503], ids=["real-outbox", "mutant"])
def test_the_judge_fails_an_outbox_that_gives_up_on_a_503_and_passes_the_real_one(
        tmp_path: Path, outbox: type[Outbox]) -> None:
    world = ChaosWorld.start(SingleStub(tmp_path / "stub"))
    try:
        world.new_pending(12)

        async def run() -> tuple[set[str], int, int, int]:
            engine = await signed_in_engine(world.url, tmp_path / "client", batch_size=2)
            engine.outbox_sender = outbox(engine.store, engine.api, engine.clock, batch_size=2)
            await engine.sync_now()
            account = engine.account()
            assert account is not None
            made = intents(engine.store, queue_decisions(
                engine.store, engine.store.approval_summaries(), account.sub,
                engine.device_id, 16, random.Random(7), "m"))
            world.proxy.inject("error_5xx", 3)
            for _ in range(20):
                await engine.upload()
                if not engine.status().pending_count:
                    break
            verdict = judge(engine.store, made, world.server(), world.proxy.answers)
            await engine.stop()
            await engine.auth.aclose()  # type: ignore[attr-defined]
            return (verdict.found(), len(verdict.findings["unexplained_rejection"]),
                    verdict.rejection_codes["SERVER_ERROR"], verdict.applied)

        found, unexplained, server_errors, applied = asyncio.run(run())
    finally:
        world.close()
    assert world.proxy.injected["error_5xx"] == 3
    assert world.proxy.faults_that_matter(CLIENT_TIMEOUT) == 3
    assert applied > 0
    if outbox is GivesUpOn503:
        assert server_errors > 0 and unexplained == server_errors
        assert found == {"unexplained_rejection"}
    else:
        assert server_errors == 0 and found == set()
