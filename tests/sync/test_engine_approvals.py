"""The approvals list in SQL: filters, search, paging and counts, with the unanswered
decisions laid over the cached statuses, checked against the plain Python meaning."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.api import FakeAuthenticator
from sync.clock import FakeClock
from sync.engine import SyncEngine
from sync.facade import ApprovalFilter
from sync.models import (
    PENDING_SHOWS_AS,
    ApprovalStatus,
    ApprovalSummary,
    DecisionAction,
    OutboxState,
)
from sync.settings import GovernorSettings
from sync.store import MIGRATIONS, LocalStore, iso, search_text, utc_text
from tests.sync.conftest import GOVERNOR

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FILTERS: tuple[ApprovalFilter, ...] = ("all", "pending", "veto_window", "decided")


def engine_over(store: LocalStore, clock: FakeClock | None = None) -> SyncEngine:
    return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0,
                                       device_id="dev-test"),
                      authenticator=FakeAuthenticator(GOVERNOR), store=store,
                      clock=clock or FakeClock(NOW))


def expected(store: LocalStore, filter: ApprovalFilter, query: str, limit: int,
             offset: int) -> list[ApprovalSummary]:
    """The list's meaning, as the engine computed it in Python before it moved to SQL:
    every cached request validated, the pending decision laid over it, then filtered."""
    # The unanswered decisions, in sequence order; a veto wins over an earlier approve.
    pending: dict[str | None, DecisionAction] = {}
    for entry in store.entries({OutboxState.QUEUED, OutboxState.SENDING, OutboxState.HELD}):
        if entry.kind == "decision" and entry.action is not None \
                and pending.get(entry.approval_id) != DecisionAction.VETO:
            pending[entry.approval_id] = entry.action
    needle = query.strip().lower()
    out = []
    for fields in store.approval_summaries():
        item = ApprovalSummary.model_validate(fields)
        action = pending.get(item.id)
        if action is not None:
            item.pending_decision = action
            item.status = PENDING_SHOWS_AS[action]
        if filter == "pending" and item.status != ApprovalStatus.PENDING_APPROVAL:
            continue
        if filter == "veto_window" and not (
                item.status in (ApprovalStatus.APPROVED, ApprovalStatus.AUTO_APPROVED)
                and item.veto_deadline is not None and item.veto_deadline > NOW):
            continue
        if filter == "decided" and item.status == ApprovalStatus.PENDING_APPROVAL:
            continue
        if needle and needle not in " ".join(
                (item.id, str(item.agent.get("name", "")), str(item.agent.get("id", "")),
                 item.requester, item.industry)).lower():
            continue
        out.append(item)
    return out[offset:offset + limit]


def _deadline(minutes: int | None, style: str) -> str | None:
    if minutes is None:
        return None
    moment = NOW + timedelta(minutes=minutes)
    if style == "z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "offset":  # the same instant written in another zone
        return moment.astimezone(timezone_plus_2).isoformat()
    return moment.isoformat()


timezone_plus_2 = timezone(timedelta(hours=2))

NAMES = ("Tutor", "Ledger", "Nurse", "ÄRZTE Bot", "İstanbul", "straße")

approval_st = st.fixed_dictionaries({
    "status": st.sampled_from(list(ApprovalStatus)),
    "name": st.sampled_from(NAMES),
    "requester": st.sampled_from(("ops", "Finance Team", "Ωmega")),
    "industry": st.sampled_from(("healthcare", "education", "finance")),
    "deadline": st.sampled_from((None, -90, -1, 0, 1, 90)),  # minutes from now
    "style": st.sampled_from(("z", "offset", "iso")),
    "created": st.integers(0, 5),  # few values: ties are ordered by id
})
# (approval index, action, state the entry is in)
decision_st = st.tuples(st.integers(0, 6), st.sampled_from(list(DecisionAction)),
                        st.sampled_from([OutboxState.QUEUED, OutboxState.SENDING,
                                         OutboxState.HELD, OutboxState.APPLIED,
                                         OutboxState.REJECTED]))


def fill(store: LocalStore, approvals: list[dict[str, Any]],
         decisions: list[tuple[int, DecisionAction, OutboxState]]) -> None:
    store.upsert_approvals([{
        "id": f"APR-{i:02d}", "agent": {"id": f"agent-{i}", "name": f"{a['name']} {i}"},
        "requester": a["requester"], "industry": a["industry"], "status": a["status"].value,
        "version": 1, "veto_deadline": _deadline(a["deadline"], a["style"]),
        "created_at": iso(NOW - timedelta(hours=a["created"]))}
        for i, a in enumerate(approvals)])
    for index, action, state in decisions:
        if index >= len(approvals):
            continue
        entry_id = str(uuid.uuid4())
        store.enqueue(entry_id=entry_id, kind="decision", payload={}, created_at=NOW,
                      approval_id=f"APR-{index:02d}", action=action, sub=GOVERNOR.sub)
        with store.transaction() as conn:
            conn.exec_driver_sql("UPDATE outbox SET state = ? WHERE id = ?",
                                 (state.value, entry_id))


def request(**fields: Any) -> dict[str, Any]:
    """One request for ``fill``: pending, made now, no deadline, unless told otherwise."""
    return {"status": ApprovalStatus.PENDING_APPROVAL, "name": "Tutor", "requester": "ops",
            "industry": "education", "deadline": None, "style": "z", "created": 0, **fields}


def shown(items: list[ApprovalSummary]) -> list[tuple[str, str, str | None]]:
    return [(a.id, a.status.value, a.pending_decision.value if a.pending_decision else None)
            for a in items]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(approvals=st.lists(approval_st, max_size=24),
       decisions=st.lists(decision_st, max_size=10),
       filter=st.sampled_from(FILTERS),
       query=st.one_of(st.just(""), st.sampled_from(
           ("apr-0", "APR-1", "tutor", "ärzte", "İSTANBUL", "strasse", "STRASSE", "ops f",
            "finance team", "agent-2", "  nurse  ", "ωmega", "healthcare", "zz"))),
       limit=st.integers(0, 40), offset=st.integers(0, 10))
def test_the_sql_list_means_what_the_python_list_meant(
        approvals: list[dict[str, Any]], decisions: list[tuple[int, DecisionAction,
                                                                OutboxState]],
        filter: ApprovalFilter, query: str, limit: int, offset: int) -> None:
    store = LocalStore()
    fill(store, approvals, decisions)
    engine = engine_over(store)
    assert shown(engine.approvals(filter, query, limit, offset)) == \
        shown(expected(store, filter, query, limit, offset))
    assert engine.approval_count(filter, query) == \
        len(expected(store, filter, query, 10_000, 0))


def test_an_unanswered_veto_wins_over_any_other_decision_and_moves_the_counts() -> None:
    store = LocalStore()
    fill(store, [request()], [])
    engine = engine_over(store)
    assert engine.approval_count("pending") == 1
    store.enqueue(entry_id="e1", kind="decision", payload={}, created_at=NOW,
                  approval_id="APR-00", action=DecisionAction.VETO, sub=GOVERNOR.sub)
    assert (engine.approval_count("pending"), engine.approval_count("decided")) == (0, 1)
    # A later approve (held from another account, say) does not hide the veto.
    store.enqueue(entry_id="e2", kind="decision", payload={}, created_at=NOW,
                  approval_id="APR-00", action=DecisionAction.APPROVE, sub=GOVERNOR.sub)
    [item] = engine.approvals("decided")
    assert (item.status, item.pending_decision) == (ApprovalStatus.VETOED,
                                                    DecisionAction.VETO)
    assert engine.approval_count("veto_window") == 0


def test_a_search_spans_the_fields_and_ignores_case_and_surrounding_space() -> None:
    store = LocalStore()
    fill(store, [request(name="ÄRZTE Bot", requester="Finance Team",
                         industry="healthcare")], [])
    engine = engine_over(store)
    for query in ("apr-00", "ärzte bot 0", "AGENT-0", "finance", "HEALTH", "  team  "):
        assert [a.id for a in engine.approvals(query=query)] == ["APR-00"], query
        assert engine.approval_count(query=query) == 1
    assert engine.approvals(query="nobody") == [] and engine.approval_count(query="x") == 0


def test_only_the_page_is_validated() -> None:
    """A cached row the models cannot read breaks only the page that shows it."""
    store = LocalStore()
    fill(store, [request(created=0), request(created=1)], [])
    with store.transaction() as conn:  # the older one loses a required field
        conn.exec_driver_sql("UPDATE approval SET summary = json_remove(summary, "
                             "'$.requester') WHERE id = 'APR-01'")
    engine = engine_over(store)
    assert [a.id for a in engine.approvals(limit=1)] == ["APR-00"]
    assert engine.approval_count() == 2
    with pytest.raises(ValueError, match="requester"):
        engine.approvals(limit=1, offset=1)


def test_negative_limits_and_offsets_read_as_zero() -> None:
    store = LocalStore()
    fill(store, [request(status=ApprovalStatus.APPROVED, deadline=30)], [])
    engine = engine_over(store)
    assert engine.approvals(limit=-1) == []
    assert [a.id for a in engine.approvals(offset=-5)] == ["APR-00"]


@pytest.mark.parametrize("call", [
    lambda e: e.approvals("open"),
    lambda e: e.approval_count("open", "x"),
])
def test_an_unknown_filter_is_refused_by_name(call: Any) -> None:
    with pytest.raises(ValueError, match="Unknown approvals filter 'open'; use one of all"):
        call(engine_over(LocalStore()))


def test_deadlines_are_stored_in_utc_and_unreadable_ones_never_count() -> None:
    assert utc_text("2026-03-01T14:00:00+02:00") == "2026-03-01T12:00:00.000000+00:00"
    assert utc_text("2026-03-01T12:00:00Z") == "2026-03-01T12:00:00.000000+00:00"
    assert utc_text("2026-03-01T12:00:00") == "2026-03-01T12:00:00.000000+00:00"  # naive: UTC
    assert utc_text("tomorrow") is None and utc_text(None) is None and utc_text(5) is None
    store = LocalStore()
    store.upsert_approvals([{"id": "A", "agent": {}, "requester": "r", "industry": "i",
                             "status": "approved", "version": 1, "veto_deadline": "soon"}])
    engine = engine_over(store)
    assert engine.approval_count("veto_window") == 0 and engine.approval_count("decided") == 1


def test_search_text_reads_odd_summaries() -> None:
    assert search_text({"id": "A", "agent": "not a dict"}) == "a    "
    assert search_text({"id": "B", "agent": {"name": "İ"}, "requester": "Ops"}) == \
        "b i̇  ops "


def test_an_approvals_cache_from_before_the_list_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = [m for m in MIGRATIONS if m.name < "0006"]
    LocalStore(path, migrations=before).close()
    with sqlite3.connect(path) as db:  # rows as the previous release wrote them
        db.execute(
            "INSERT INTO approval (id, status, version, veto_deadline, created_at, summary) "
            "VALUES ('APR-OLD', 'approved', 2, '2026-03-01T14:00:00+02:00', "
            "'2026-02-01T00:00:00Z', ?)",
            ('{"id": "APR-OLD", "agent": {"id": "ag-1", "name": "Ärzte Bot"}, '
             '"requester": "ops", "industry": "healthcare", "status": "approved", '
             '"version": 2, "veto_deadline": "2026-03-01T14:00:00+02:00", '
             '"created_at": "2026-02-01T00:00:00Z"}',))
    store = LocalStore(path)
    assert store.applied_migrations == [m.name for m in MIGRATIONS if m.name >= "0006"]
    clock = FakeClock(NOW - timedelta(hours=1))  # 11:00 UTC: the window is open
    engine = engine_over(store, clock)
    [item] = engine.approvals("veto_window", "ÄRZTE")
    assert (item.id, item.version) == ("APR-OLD", 2)
    clock.advance(7200)  # 13:00 UTC: closed
    assert engine.approval_count("veto_window") == 0
    store.close()
