"""Each screen's state: its defaults, and what a change of filter or a finished form
resets. (A form built again reading its draft: ``test_forms_keep_typing.py``.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import get_args

from governor_app import screen_state
from governor_app.preferences import Preferences
from governor_app.state import UndoWindow
from sync.models import VetoCategory

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_a_new_session_starts_every_screen_at_its_defaults() -> None:
    kept = screen_state.ScreenState()
    assert (kept.approvals.filter, kept.approvals.query, kept.approvals.limit) == (
        "pending", "", None)
    assert kept.seeds == screen_state.SeedsState(query="")
    assert kept.seed_wizard.step == 0 and kept.seed_wizard.title == ""
    assert kept.settings_draft.changes() == {}
    assert kept.sign_in == screen_state.SignInState()
    assert kept.sign_in.flow is None and kept.sign_in.task is None
    assert kept.veto_forms == {}


def test_two_sessions_share_no_state() -> None:
    one, two = screen_state.ScreenState(), screen_state.ScreenState()
    one.approvals.query = "sandbox"
    one.veto_form("REQ-1").reason = "Imports env.exec"
    one.sign_in.field_errors["username"] = "Type your user name."
    assert two.approvals.query == "" and two.veto_forms == {}
    assert two.sign_in.field_errors == {}


def test_the_approvals_list_pages_on_and_starts_again_at_one_page() -> None:
    listed = screen_state.ApprovalsState()
    assert listed.rows(20) == 20
    listed.more(20)
    listed.more(20)
    assert listed.rows(20) == 60
    listed.start_again()
    assert listed.rows(20) == 20


def test_a_dashboard_figure_opens_its_filter_with_the_search_cleared() -> None:
    listed = screen_state.ApprovalsState(filter="decided", query="sandbox", limit=40)
    listed.open("veto_window")
    assert listed == screen_state.ApprovalsState(filter="veto_window", query="", limit=None)


def test_a_veto_form_is_kept_per_request_until_it_is_dropped() -> None:
    kept = screen_state.ScreenState()
    form = kept.veto_form("REQ-1")
    form.category = VetoCategory.SAFETY
    assert kept.veto_form("REQ-1") is form  # a re-render finds the form as it was
    assert kept.veto_form("REQ-2") is not form
    kept.veto_forms.pop("REQ-1")  # queued
    assert kept.veto_form("REQ-1").category is None


def test_the_settings_draft_holds_only_what_was_changed() -> None:
    draft = screen_state.SettingsDraft()
    draft.set("quiet_start", "23:00")
    draft.set("notifications", False)  # a False is a change, not "left alone"
    draft.set("sync_interval", "45")
    assert draft.changes() == {"quiet_start": "23:00", "notifications": False,
                               "sync_interval": "45"}


def test_every_draft_field_is_a_preference() -> None:
    names = set(get_args(screen_state.DraftField))
    assert names == set(screen_state.SettingsDraft().__dataclass_fields__)
    assert names <= set(Preferences().__dataclass_fields__)


def test_ending_a_sign_in_flow_hands_back_its_task_and_forgets_the_flow() -> None:
    async def scenario() -> None:
        waiting = screen_state.SignInState(username="governor", flow="device")
        waiting.task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        task = waiting.end_flow()
        assert task is not None
        task.cancel()
        assert (waiting.flow, waiting.task, waiting.device) == (None, None, None)
        assert waiting.username == "governor"  # the form itself is kept
        assert waiting.end_flow() is None
    asyncio.run(scenario())


def test_a_finished_sign_in_leaves_nothing_for_the_next_one() -> None:
    done = screen_state.SignInState(username="governor", error="Wrong password.", flow="password",
                       field_errors={"password": "Type your password."})
    done.clear()
    assert done == screen_state.SignInState()


def test_a_held_decision_starts_with_no_wait_and_no_answer() -> None:
    async def scenario() -> None:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        held = screen_state.HeldDecision("REQ-1", UndoWindow(NOW, 5.0), "Veto",
                                         "/approvals/REQ-1/veto", answer)
        assert held.task is None and held.window.left(NOW) == 5.0
        assert not held.answer.done()
    asyncio.run(scenario())

