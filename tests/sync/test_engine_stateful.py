"""The engine against a misbehaving server, driven by Hypothesis.

Invariant: every enqueued decision ends applied exactly once, or rejected and shown;
never both, never neither.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sync.errors import InvalidDecision, SignInRequired
from sync.models import OutboxState, VetoCategory
from tests.sync.conftest import GOVERNOR, OTHER, World

APPROVALS = [f"APR-{i}" for i in range(5)]
FAULTS = ["connect_error", "server_error", "lose_ack", "rate_limited", "reorder",
          "drop_result", "refuse_batch", "expire_token"]


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world = World()
        self.enqueued: set[str] = set()
        self.cancelled: set[str] = set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize()
    def setup(self) -> None:
        for i, approval_id in enumerate(APPROVALS):
            status = "approved" if i % 2 else "pending_approval"
            deadline = self.world.clock.now() + timedelta(hours=1 + i) if i % 2 else None
            self.world.server.add_approval(approval_id, status, veto_deadline=deadline)
        self.run(self.world.engine.download())

    # --- the governor ---------------------------------------------------------------
    @rule(approval=st.sampled_from(APPROVALS),
          action=st.sampled_from(["approve", "request_changes", "veto"]),
          poison=st.booleans())
    def decide(self, approval: str, action: str, poison: bool) -> None:
        engine = self.world.engine
        try:
            if action == "approve":
                entry = engine.approve(approval, comment="ok")
            elif action == "request_changes":
                entry = engine.request_changes(approval, "POISON" if poison else "why")
            else:
                entry = engine.veto(approval, VetoCategory.SAFETY, "unsafe")
        except (InvalidDecision, SignInRequired):
            return
        self.enqueued.add(entry.id)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        # In sequence order: ids are random UUIDs, and draws must not depend on them.
        queued = [e.id for e in self.world.engine.outbox({OutboxState.QUEUED})]
        if not queued:
            return
        entry_id = data.draw(st.sampled_from(queued))
        try:
            self.world.engine.cancel(entry_id)
        except InvalidDecision:
            return
        self.cancelled.add(entry_id)

    @rule(data=st.data())
    def decide_again(self, data: st.DataObject) -> None:
        rejected = [e.id for e in self.world.engine.outbox({OutboxState.REJECTED})]
        if not rejected:
            return
        entry_id = data.draw(st.sampled_from(rejected))
        try:
            entry = self.world.engine.decide_again(entry_id)
        except (InvalidDecision, SignInRequired):
            return
        self.enqueued.add(entry.id)
        self.cancelled.add(entry_id)  # replaced by the new entry, removed locally

    # --- the world ------------------------------------------------------------------
    @rule(approval=st.sampled_from(APPROVALS),
          status=st.sampled_from(["approved", "changes_requested", "bump"]))
    def elsewhere(self, approval: str, status: str) -> None:
        record = self.world.server.approvals[approval]
        if status == "bump":
            record["version"] += 1
        elif record["status"] == "pending_approval":
            self.world.server.decide_elsewhere(approval, status)

    @rule(faults=st.lists(st.sampled_from(FAULTS), max_size=3))
    def misbehave(self, faults: list[str]) -> None:
        self.world.server.faults.extend(faults)  # type: ignore[arg-type]

    @rule()
    def expire_tokens(self) -> None:
        self.world.server.expire_tokens(self.world.auth.generation)

    @rule(refuse=st.booleans())
    def refresh_refused(self, refuse: bool) -> None:
        self.world.auth.refuse_refresh = refuse

    @rule(other=st.booleans())
    def switch_account(self, other: bool) -> None:
        self.world.auth.sign_in_as(OTHER if other else GOVERNOR)

    @rule(seconds=st.sampled_from([1, 30, 600, 3600, 7200]))
    def advance_clock(self, seconds: int) -> None:
        self.world.clock.advance(seconds)

    @rule()
    def upload(self) -> None:
        self.run(self.world.engine.upload())

    @rule()
    def sync(self) -> None:
        self.run(self.world.engine.sync_now())

    @rule(mid_send=st.booleans())
    def restart(self, mid_send: bool) -> None:
        """The OS kills the app (possibly between marking a batch sending and sending)."""
        account = self.world.auth.account()
        if mid_send and account is not None:
            self.world.store.claim("decision", 3, account.sub, self.world.clock.now())
        # A killed app runs nothing more: the old engine's probe (sleeping after a failed
        # send) must not wake later beside the new engine, nor be left pending on this
        # loop when it closes ("Task was destroyed but it is pending" at the end of the
        # run). It does not own the store, so stopping it leaves the store to the new one.
        self.run(self.world.engine.stop())
        self.world.engine = self.world.new_engine()

    # --- the judge ------------------------------------------------------------------
    @invariant()
    def never_both(self) -> None:
        for entry in self.world.store.entries():
            applied = self.world.server.applied_count(entry.id)
            assert applied <= 1, f"{entry.id} applied {applied} times"
            if entry.state == OutboxState.APPLIED:
                assert applied == 1
            if entry.state == OutboxState.REJECTED:
                assert applied == 0 and entry.error_code

    def teardown(self) -> None:
        try:
            server, auth = self.world.server, self.world.auth
            server.faults.clear()
            server.offline = False
            server.min_token_generation = 0
            self.world.clock.advance(3600)  # past any Retry-After
            # Each author signs in in turn and their held entries go out.
            for account in (OTHER, GOVERNOR):
                auth.sign_in_as(account)
                for _ in range(2):
                    self.run(self.world.engine.sync_now())
            entries = {e.id: e for e in self.world.store.entries()}
            for entry_id in self.enqueued:
                applied = self.world.server.applied_count(entry_id)
                assert applied <= 1
                if entry_id in self.cancelled:
                    # Only never-sent entries can be cancelled; a replaced rejected one
                    # was never applied.
                    assert applied == 0
                    continue
                entry = entries.get(entry_id)
                assert entry is not None, f"{entry_id} vanished"
                if entry.state == OutboxState.APPLIED:
                    assert applied == 1
                else:
                    assert entry.state == OutboxState.REJECTED, entry
                    assert applied == 0 and entry.error_code
        finally:
            self.run(self.world.engine.stop())  # its probe may still sleep on this loop
            self.loop.close()


EngineMachine.TestCase.settings = settings(
    # SYNC_STATEFUL_EXAMPLES raises the count for a long soak.
    max_examples=int(os.environ.get("SYNC_STATEFUL_EXAMPLES", "60")),
    stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestEngineMachine = EngineMachine.TestCase
