"""Forms the governor types in are never rebuilt under the fingers by a sync's topic.

The shell rebuilds a screen when one of its topics changes, unless the screen registered
refreshers, which update it in place (``Shell._changed``). A rebuild of a form takes the
focus and the keys still in flight from the field being typed in: found in CI, the
settings' Server URL typed, the form rebuilt on an "auth" change, then saved without it;
and the cold start's hand-over to the engine says "auth" just after the app opens, while
the sign-in form is being filled in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import flet as ft

from governor_app.preferences import PreferenceStore
from governor_app.screen_state import ScreenState
from governor_app.views import settings
from governor_app.views.routes import resolve
from governor_app.views.shell import Shell
from sync.fakes import FakeGovernorClient
from sync.models import Account


@dataclass
class FormShell:
    """What the settings screen reads of the shell, nothing more."""
    client: FakeGovernorClient
    account: Account | None
    preferences: PreferenceStore = field(default_factory=PreferenceStore)
    state: ScreenState = field(default_factory=ScreenState)
    tickers: list[Any] = field(default_factory=list)
    refreshers: list[Any] = field(default_factory=list)
    push: None = None
    server_url: str = "http://127.0.0.1:8000"
    page: Any = None
    typing: bool = False


def the_one(screen: ft.Control, wanted: Callable[[Any], bool]) -> Any:
    """The one control of ``screen`` that is ``wanted``."""
    found: list[Any] = []

    def walk(control: Any) -> None:
        if wanted(control):
            found.append(control)
        for child in (getattr(control, "controls", None) or []):
            walk(child)
        content = getattr(control, "content", None)
        if content is not None:
            walk(content)
    walk(screen)
    assert len(found) == 1, found
    return found[0]


def account_label(screen: ft.Control) -> str:
    label: str = the_one(screen, lambda c: isinstance(c, ft.Semantics)
                         and c.identifier == "settings-account").label or ""
    return label


def field_value(screen: ft.Control, label: str) -> str | None:
    value: str | None = the_one(screen, lambda c: isinstance(c, ft.TextField)
                                and c.label == label).value
    return value


def test_the_sign_in_form_is_re_rendered_by_no_topic() -> None:
    assert resolve("/sign-in")[1] == ()


def test_the_settings_form_refreshes_the_account_in_place_instead_of_being_rebuilt() -> None:
    client = FakeGovernorClient()
    shell = FormShell(client=client, account=client.account())
    screen = settings.build(cast(Shell, shell))
    assert "auth" in resolve("/settings")[1]
    assert shell.refreshers, "with no refresher the shell rebuilds the form on 'auth'"
    assert account_label(screen).startswith("Signed in as governor")

    shell.account = None  # what an "auth" change brought
    for refresh in shell.refreshers:
        refresh()
    assert account_label(screen) == "Not signed in"


def test_a_settings_draft_survives_the_form_being_built_again() -> None:
    client = FakeGovernorClient()
    shell = FormShell(client=client, account=client.account())
    screen = settings.build(cast(Shell, shell))
    assert field_value(screen, "Quiet from (HH:MM)") == "22:00"  # the saved value

    shell.state.settings_draft.set("quiet_start", "23:30")  # typed, not saved
    again = settings.build(cast(Shell, shell))
    assert field_value(again, "Quiet from (HH:MM)") == "23:30"
    assert field_value(again, "Quiet until (HH:MM)") == "07:00"
