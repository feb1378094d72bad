"""The decision the shell holds for its undo window is a typed attribute of the shell
(``Shell.held``): one at a time, taken back by Undo, gone once its window ran out.
Driven through a page that records what the shell asks of it (no browser)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import flet as ft

from governor_app.views.screen import Screen
from governor_app.views.shell import Shell
from sync.fakes import FakeGovernorClient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class RecordingPage:
    """The few page calls the shell makes while holding and undoing a decision."""

    width = 1280.0

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.snacks: list[str] = []

    def update(self) -> None:
        pass

    def navigate(self, route: str) -> None:
        self.addresses.append(route)

    def show_dialog(self, bar: Any) -> None:
        self.snacks.append(bar.content.value)


def routes(route: str) -> tuple[Any, tuple[str, ...]]:
    def build(screen: Screen) -> ft.Control:
        return ft.Text(route)
    return build, ()


def make_shell() -> tuple[Shell, RecordingPage]:
    page = RecordingPage()
    client = FakeGovernorClient(now=lambda: NOW)
    return Shell(page, client, routes=routes, clock=lambda: NOW), page  # type: ignore[arg-type]


def test_a_new_shell_holds_nothing() -> None:
    shell, _ = make_shell()
    assert shell.held is None


def test_undo_takes_the_held_decision_back_and_opens_its_form() -> None:
    async def scenario() -> None:
        shell, page = make_shell()
        answer = shell.hold_decision("REQ-0001", "Veto", 30,
                                     undo_to="/approvals/REQ-0001/veto")
        held = shell.held
        assert held is not None and held.approval_id == "REQ-0001" and held.what == "Veto"
        assert shell.route == "/approvals/REQ-0001"
        shell.undo_decision()
        assert answer.result() is False and shell.held is None
        assert held.window.cancelled
        assert page.snacks[-1] == "Veto of REQ-0001 taken back; nothing was sent."
        assert shell.route == "/approvals/REQ-0001/veto"
    asyncio.run(scenario())


def test_undo_with_nothing_held_says_it_is_too_late() -> None:
    async def scenario() -> None:
        shell, page = make_shell()
        shell.undo_decision()
        assert page.snacks == ["Too late to undo: the decision has already been queued."]
    asyncio.run(scenario())


def test_a_second_hold_takes_the_first_back() -> None:
    async def scenario() -> None:
        shell, _ = make_shell()
        first = shell.hold_decision("REQ-0001", "Approval", 30)
        second = shell.hold_decision("REQ-0002", "Veto", 30)
        assert first.result() is False and not second.done()
        assert shell.held is not None and shell.held.approval_id == "REQ-0002"
        shell.undo_decision()
    asyncio.run(scenario())


def test_a_window_that_ran_out_lets_the_decision_go_and_holds_nothing() -> None:
    async def scenario() -> None:
        shell, _ = make_shell()
        answer = shell.hold_decision("REQ-0001", "Approval", 0)
        assert await answer is True
        assert shell.held is None
    asyncio.run(scenario())
