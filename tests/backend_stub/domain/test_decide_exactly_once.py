"""Batches of random mixes of repeated ids, replays, key reuse, conflicts and decided
requests apply each decision exactly once: the stub's tables hold what was meant.

The model below is the contract's (``../shared/contract.md``, Idempotency and decisions),
checked against the service's results and its tables after every batch."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.domain import events as ev
from backend_stub.domain.migrations import MIGRATIONS
from backend_stub.domain.service import DecisionCommand, GovernanceService
from tests.backend_stub.domain.test_service import GOV, submit

REQUESTS = 3

item = st.tuples(
    st.sampled_from(["k0", "k1", "k2", "k3", "k4"]),  # few keys: repeats and reuse
    st.integers(min_value=0, max_value=REQUESTS - 1),
    st.sampled_from(["approve", "request_changes", "veto"]),
    st.integers(min_value=1, max_value=3),  # expected version: conflicts happen
    st.sampled_from([None, "ok"]),  # a comment: the same key with another body
)
batches = st.lists(st.tuples(st.lists(item, min_size=1, max_size=8), st.booleans()),
                   min_size=1, max_size=4)


@dataclass
class Model:
    """What the contract says the service holds."""

    status: list[str]
    version: list[int]
    answered: dict[str, tuple[DecisionCommand, dict[str, Any]]] = field(default_factory=dict)
    applied: list[DecisionCommand] = field(default_factory=list)

    def expect(self, command: DecisionCommand, index: int) -> str:
        first = self.answered.get(command.key)
        if first is not None:
            return "replayed" if first[0].fingerprint() == command.fingerprint() else \
                "IDEMPOTENCY_KEY_REUSED"
        status = self.status[index]
        if command.action == "veto":
            if status not in ("pending_approval", "approved"):
                return "ALREADY_DECIDED"
            self.status[index] = "vetoed"
        else:
            if status != "pending_approval":
                return "ALREADY_DECIDED"
            if command.expected_version != self.version[index]:
                return "VERSION_CONFLICT"
            self.status[index] = ("approved" if command.action == "approve"
                                  else "changes_requested")
        self.version[index] += 1
        self.applied.append(command)
        return "applied"


def _command(key: str, approval_id: str, action: str, version: int, comment: str | None
             ) -> DecisionCommand:
    if action == "veto":
        return DecisionCommand(key, approval_id, action, category="safety", reason="r")
    if action == "request_changes":
        return DecisionCommand(key, approval_id, action, expected_version=version,
                               reason="r", comment=comment)
    return DecisionCommand(key, approval_id, action, expected_version=version, comment=comment)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_random_batches_apply_each_decision_exactly_once(
        plan: list[tuple[list[tuple[str, int, str, int, str | None]], bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'domain.db'}")
        db.migrate(MIGRATIONS)
        svc = GovernanceService(db, FakeClock())
        try:
            ids = [submit(svc, agent_name=f"A{i}", match_seeds=False)["id"]
                   for i in range(REQUESTS)]
            model = Model(["pending_approval"] * REQUESTS, [1] * REQUESTS)
            for items, minimal in plan:
                commands = [_command(k, ids[i], a, v, c) for k, i, a, v, c in items]
                results = svc.decide(GOV, commands, minimal=minimal)
                for (_, index, *_), command, result in zip(items, commands, results,
                                                           strict=True):
                    expected = model.expect(command, index)
                    got = result.outcome if result.error is None else result.error.code
                    assert got == expected, (command, result)
                    if expected == "applied":
                        assert result.body is not None
                        model.answered[command.key] = (command, result.body)
                    elif expected == "replayed":
                        # The first answer, slimmed when this send asked for it.
                        first = model.answered[command.key][1]["data"]
                        assert result.approval == (svc.slim(first) if minimal else first)
            # The tables: one decision row per applied decision, its key remembered once,
            # one decided event each, and each request's version counting its decisions.
            with svc.db.engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT idempotency_key, approval_id, action FROM decisions")).all()
                keys = conn.execute(text("SELECT key FROM idempotency_keys")).scalars().all()
                versions: dict[str, int] = dict(conn.execute(text(
                    "SELECT id, version FROM approval_requests")).all())
                decided = conn.execute(text("SELECT count(*) FROM events WHERE type = :t"),
                                       {"t": ev.APPROVAL_DECIDED}).scalar_one()
            assert sorted(tuple(r) for r in rows) == sorted(
                (c.key, c.approval_id, c.action) for c in model.applied)
            assert sorted(keys) == sorted(c.key for c in model.applied)
            assert [versions[i] for i in ids] == model.version
            assert decided == len(model.applied)
        finally:
            db.dispose()
