"""Each governance rule of ``sync.rules``, alone (no engine, no clock of its own)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import rules
from sync.models import (
    AGENT_VIOLATED,
    APPROVAL_DECIDED,
    APPROVAL_PENDING,
    BUDGET_THRESHOLD,
    SCOPE_READ,
    SCOPE_VETO,
    SCOPE_WRITE,
    VETO_UNSENT,
    VETO_WINDOW_CLOSING,
    Account,
    ApprovalStatus,
    Attachment,
    CachedDashboard,
    Dashboard,
    DecisionAction,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def account(*scopes: str) -> Account:
    return Account(sub="u-1", username="someone", scopes=frozenset(scopes))


# --- which statuses a decision can change ------------------------------------------------

@pytest.mark.parametrize("status", list(ApprovalStatus))
def test_a_veto_applies_exactly_while_pending_or_in_the_window(status: ApprovalStatus) -> None:
    vetoable = status in (ApprovalStatus.PENDING_APPROVAL, ApprovalStatus.APPROVED,
                          ApprovalStatus.AUTO_APPROVED)
    assert rules.can_take(DecisionAction.VETO, status) is vetoable


@pytest.mark.parametrize("status", list(ApprovalStatus))
@pytest.mark.parametrize("action", [DecisionAction.APPROVE, DecisionAction.REQUEST_CHANGES])
def test_approve_and_request_changes_apply_only_while_pending(
        action: DecisionAction, status: ApprovalStatus) -> None:
    assert rules.can_take(action, status) is (status == ApprovalStatus.PENDING_APPROVAL)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_the_veto_window_is_open_strictly_before_its_deadline(offset_s: int) -> None:
    deadline = NOW + timedelta(seconds=offset_s)
    assert rules.window_open(deadline, NOW) is (offset_s > 0)
    assert rules.window_open(None, NOW)


# --- veto limits --------------------------------------------------------------------------

@given(st.text(alphabet="ab ", max_size=2100))
def test_a_reason_is_valid_from_1_to_2000_characters_once_trimmed(reason: str) -> None:
    problem = rules.reason_problem(reason, "veto")
    assert (problem is None) is (1 <= len(reason.strip()) <= rules.MAX_REASON)
    if problem is not None:
        assert "veto reason" in problem and "2000" in problem


def test_the_comment_on_an_approval_is_optional_up_to_2000_characters() -> None:
    assert rules.comment_problem(None) is None
    assert rules.comment_problem("x" * 2000) is None
    problem = rules.comment_problem("x" * 2001)
    assert problem is not None and "2001" in problem and "keep it to 2000" in problem


@given(st.lists(st.integers(min_value=0, max_value=3 * 1024 * 1024), max_size=8))
def test_a_veto_carries_at_most_5_files_of_5_mb_in_all(sizes: list[int]) -> None:
    problem = rules.attachments_problem(sizes)
    fits = len(sizes) <= 5 and sum(sizes) <= 5 * 1024 * 1024
    assert (problem is None) is fits
    if len(sizes) > 5:
        assert problem is not None and f"remove {len(sizes) - 5}" in problem
    elif not fits:
        assert problem is not None and str(sum(sizes)) in problem


def test_a_veto_is_checked_for_its_files_then_its_reason() -> None:
    ok = Attachment(name="a.txt", content_type="text/plain", data_base64="YWJj")
    bad = Attachment(name="bad.bin", content_type="a/b", data_base64="***")
    assert rules.veto_problem("why", [ok]) is None
    assert "'bad.bin' is not valid base64" in (rules.veto_problem("why", [ok, bad]) or "")
    assert "at most 5 files" in (rules.veto_problem("why", [ok] * 6) or "")
    assert "veto reason is empty" in (rules.veto_problem("  ", [ok]) or "")


@pytest.mark.parametrize("pending", [None, *DecisionAction])
@pytest.mark.parametrize("action", list(DecisionAction))
def test_a_queued_decision_blocks_another_except_a_following_veto(
        pending: DecisionAction | None, action: DecisionAction) -> None:
    expected = pending is not None and (pending == action or action != DecisionAction.VETO)
    assert rules.queued_blocks(pending, action) is expected
    if pending is not None and pending != DecisionAction.VETO:
        assert not rules.queued_blocks(pending, DecisionAction.VETO)


@given(st.lists(st.sampled_from(list(DecisionAction)), max_size=4))
def test_a_request_shows_a_queued_veto_else_its_latest_decision(
        actions: list[DecisionAction]) -> None:
    shown = rules.shown_pending(actions)
    if DecisionAction.VETO in actions:
        assert shown == DecisionAction.VETO
    else:
        assert shown == (actions[-1] if actions else None)


# --- urgency per event type -----------------------------------------------------------------

@given(st.floats(min_value=0, max_value=200, allow_nan=False))
def test_a_budget_event_is_urgent_from_95_percent(threshold: float) -> None:
    expected = rules.Urgency.HIGH if threshold >= 95 else rules.Urgency.NORMAL
    assert rules.urgency(BUDGET_THRESHOLD, threshold) is expected


@given(st.floats(min_value=0, max_value=200, allow_nan=False))
def test_violations_and_unsent_veto_reminders_are_always_urgent(threshold: float) -> None:
    assert rules.urgency(AGENT_VIOLATED, threshold) is rules.Urgency.HIGH
    assert rules.urgency(VETO_UNSENT, threshold) is rules.Urgency.HIGH


@pytest.mark.parametrize(("event_type", "expected"), [
    (APPROVAL_DECIDED, rules.Urgency.LOW), (APPROVAL_PENDING, rules.Urgency.NORMAL),
    (VETO_WINDOW_CLOSING, rules.Urgency.NORMAL), ("governance.unknown", rules.Urgency.NORMAL)])
def test_other_events_are_normal_or_for_information(event_type: str,
                                                    expected: rules.Urgency) -> None:
    assert rules.urgency(event_type) is expected


# --- quiet hours ------------------------------------------------------------------------

times = st.times().map(lambda t: t.replace(microsecond=0))


@given(times, times, times)
def test_quiet_hours_hold_from_start_up_to_end_even_across_midnight(
        start: time, end: time, local: time) -> None:
    quiet = rules.is_quiet(start, end, local)
    if start == end:
        assert not quiet  # none
    elif start < end:
        assert quiet is (start <= local < end)
    else:  # over midnight: the complement of [end, start)
        assert quiet is not (end <= local < start)


@given(times, times)
def test_quiet_hours_over_midnight_are_the_complement_of_the_day_between(
        start: time, end: time) -> None:
    # Swapping start and end turns the quiet period into the rest of the day.
    for local in (start, end, time(0), time(12), time(23, 59, 59)):
        if start != end:
            assert rules.is_quiet(start, end, local) is not rules.is_quiet(end, start, local)


def test_the_first_and_last_minute_of_a_22_to_7_period() -> None:
    assert rules.is_quiet(time(22), time(7), time(22))
    assert rules.is_quiet(time(22), time(7), time(6, 59))
    assert not rules.is_quiet(time(22), time(7), time(7))
    assert not rules.is_quiet(time(22), time(7), time(21, 59))


# --- reminders ----------------------------------------------------------------------------

@given(st.floats(min_value=-7200, max_value=7200, allow_nan=False), st.integers(0, 3))
def test_a_reminder_is_due_once_per_mark_before_the_deadline(left: float, given_bits: int
                                                             ) -> None:
    due = rules.reminder_due(left, given_bits)
    if left > 3600:
        assert due is None
    elif left > 600:  # the hour's reminder, once
        assert due == (None if given_bits & 1 else (1, "1 hour"))
    else:  # the 10 minutes' reminder covers the hour's
        label = "no time" if left <= 0 else "10 minutes"
        assert due == (None if given_bits & 2 else (3, label))


def test_reminders_are_an_hour_and_ten_minutes_before() -> None:
    assert [(r.seconds, r.label) for r in rules.REMINDERS] == [(3600.0, "1 hour"),
                                                              (600.0, "10 minutes")]


# --- permissions per scope -----------------------------------------------------------------

@pytest.mark.parametrize(("scopes", "decide", "veto", "read_only"), [
    ((SCOPE_READ,), False, False, True),
    ((SCOPE_READ, SCOPE_WRITE), True, False, False),
    ((SCOPE_READ, SCOPE_VETO), False, True, False),
    ((SCOPE_READ, SCOPE_WRITE, SCOPE_VETO), True, True, False)])
def test_what_each_scope_allows(scopes: tuple[str, ...], decide: bool, veto: bool,
                                read_only: bool) -> None:
    who = account(*scopes)
    assert rules.may(who, DecisionAction.APPROVE) is decide
    assert rules.may(who, DecisionAction.REQUEST_CHANGES) is decide
    assert rules.may(who, None) is decide  # a precedent seed is a write
    assert rules.may(who, DecisionAction.VETO) is veto
    assert rules.read_only(who) is read_only


def test_nobody_signed_in_may_do_nothing_and_is_not_read_only() -> None:
    assert not rules.may(None, DecisionAction.APPROVE)
    assert not rules.read_only(None)


# --- staleness ----------------------------------------------------------------------------

@given(st.floats(min_value=-3600, max_value=3600, allow_nan=False))
def test_a_cached_dashboard_is_stale_after_its_ttl_and_never_negative_in_age(
        age: float) -> None:
    fetched = NOW - timedelta(seconds=age)
    cached = CachedDashboard(dashboard=Dashboard.model_validate(
        {"active_agents": 0, "pending_approvals": 0, "in_veto_window": 0,
         "generated_at": fetched.isoformat()}), fetched_at=fetched, stale=True, age_s=-1)
    shown = rules.dashboard_as_of(cached, NOW, 300.0)
    assert shown.stale is (age > 300.0)
    assert shown.age_s == pytest.approx(max(0.0, age), abs=1e-6)


# --- where the client may talk to ---------------------------------------------------------

@pytest.mark.parametrize(("url", "secure"), [
    ("https://gov.example", True), ("http://127.0.0.1:8000", True),
    ("http://localhost:8000", True), ("http://[::1]:8000", True),
    ("http://app.localhost", True), ("http://gov.example", False),
    ("http://10.0.0.5:8000", False), ("ftp://gov.example", False), ("", False)])
def test_only_https_or_plain_http_to_this_machine_is_secure(url: str, secure: bool) -> None:
    assert rules.secure_url(url) is secure


# --- the undo window and the step-up ------------------------------------------------------

def test_a_veto_asks_for_the_password_by_default_and_waits_5_seconds() -> None:
    from sync.settings import GovernorSettings

    assert rules.STEP_UP_FOR_VETO is True
    assert GovernorSettings().step_up_for_veto is rules.STEP_UP_FOR_VETO
    assert GovernorSettings().dashboard_ttl == rules.DASHBOARD_TTL_S
    assert rules.UNDO_SECONDS == 5.0
