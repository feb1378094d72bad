"""The screens' state belongs to the account that wrote it: a sign-out drops it (the
device may be handed to someone else), a session that expired under it gets it back on
the same account's next sign-in, and another account signing in on the tab starts with
none of it (an unfinished veto reason is one governor's, not the next one's)."""

from __future__ import annotations

import asyncio
from typing import Any

from governor_app.views.shell import Shell
from sync.fakes import FakeGovernorClient
from tests.governor_app.test_shell_held_decision import NOW, RecordingPage, routes


class RenderingPage(RecordingPage):
    """Also takes the controls a re-render puts on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[Any] = []

    def clean(self) -> None:
        self.controls.clear()

    def add(self, *controls: Any) -> None:
        self.controls.extend(controls)

    def run_task(self, fn: Any, *args: Any) -> None:
        asyncio.get_running_loop().create_task(fn(*args))


def make(signed_in_as: str | None = "governor") -> tuple[Shell, FakeGovernorClient]:
    client = FakeGovernorClient(now=lambda: NOW, signed_in_as=signed_in_as)
    shell = Shell(RenderingPage(), client, routes=routes,  # type: ignore[arg-type]
                  clock=lambda: NOW)
    return shell, client


def write_a_veto(shell: Shell) -> None:
    form = shell.state.veto_form("REQ-0001")
    form.reason = "Dangerous exec import"
    shell.state.seeds.query = "crm"


def test_signing_out_drops_the_screens_state() -> None:
    async def scenario() -> None:
        shell, _ = make()
        write_a_veto(shell)
        await shell.sign_out()
        assert shell.state.veto_forms == {} and shell.state.seeds.query == ""
    asyncio.run(scenario())


def test_the_same_account_signing_in_again_gets_its_state_back() -> None:
    async def scenario() -> None:
        shell, client = make()
        write_a_veto(shell)
        await client.sign_out()  # the session ended under the app (expiry)
        await shell._changed("auth")
        await client.sign_in_with_password("governor", "governor")
        await shell._changed("auth")
        assert shell.state.veto_form("REQ-0001").reason == "Dangerous exec import"
    asyncio.run(scenario())


def test_another_account_signing_in_starts_with_none_of_it() -> None:
    async def scenario() -> None:
        shell, client = make()
        write_a_veto(shell)
        await client.sign_out()
        await shell._changed("auth")
        await client.sign_in_with_password("auditor", "auditor")
        await shell._changed("auth")
        assert shell.state.veto_forms == {} and shell.state.seeds.query == ""
    asyncio.run(scenario())


def test_a_tab_opened_signed_in_knows_whose_state_it_holds() -> None:
    async def scenario() -> None:
        shell, client = make()  # no "auth" change ever reached this tab
        write_a_veto(shell)
        await client.sign_out()
        await client.sign_in_with_password("auditor", "auditor")
        await shell._changed("auth")
        assert shell.state.veto_forms == {}
    asyncio.run(scenario())


def test_the_step_up_is_asked_of_the_launcher_when_a_veto_needs_it_not_at_the_start(
        ) -> None:
    """The launcher's answer reads the engine's settings: the first screen must not wait
    for it (``Shell.step_up_for_veto``)."""
    asked: list[bool] = []

    def step_up() -> bool:
        asked.append(True)
        return True

    client = FakeGovernorClient(now=lambda: NOW)
    shell = Shell(RenderingPage(), client, routes=routes,  # type: ignore[arg-type]
                  clock=lambda: NOW, step_up_for_veto=step_up)
    assert asked == []
    assert shell.step_up_for_veto is True and asked == [True]
    shell.step_up_for_veto = False  # a plain answer, as the view tests give
    assert shell.step_up_for_veto is False and asked == [True]
