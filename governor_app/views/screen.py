"""What a screen may ask of the frame it is shown in: the one interface screens depend on.

A screen is a function ``build(screen: Screen) -> ft.Control``; ``views/shell.py``'s
``Shell`` implements ``Screen``, and the route table (``views/routes.py``) is handed to
it by ``app.py``. So screens import this module, never the shell, and the shell imports
no screen: the views have no import circle (``tests/governor_app/test_views_imports.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import flet as ft

if TYPE_CHECKING:
    import asyncio

    from governor_app.preferences import PreferenceStore
    from governor_app.push import PushService
    from governor_app.screen_state import HeldDecision, ScreenState
    from sync.facade import GovernorClient
    from sync.models import Account


@dataclass(frozen=True)
class Destination:
    route: str
    label: str
    icon: ft.IconData
    on_phone_bar: bool


# The top-level screens, in the navigation's order (the rail; the phone's bar takes those
# ``on_phone_bar`` and puts the rest under More).
DESTINATIONS: tuple[Destination, ...] = (
    Destination("/dashboard", "Dashboard", ft.Icons.DASHBOARD_OUTLINED, True),
    Destination("/approvals", "Approvals", ft.Icons.FACT_CHECK_OUTLINED, True),
    Destination("/seeds", "Seeds", ft.Icons.SPA_OUTLINED, True),
    Destination("/notifications", "Notifications", ft.Icons.NOTIFICATIONS_OUTLINED, True),
    Destination("/agents", "Agents", ft.Icons.SMART_TOY_OUTLINED, False),
    Destination("/violations", "Violations", ft.Icons.GPP_MAYBE_OUTLINED, False),
    Destination("/outbox", "Outbox", ft.Icons.OUTBOX_OUTLINED, False),
    Destination("/settings", "Settings", ft.Icons.SETTINGS_OUTLINED, False),
)
MORE = Destination("/more", "More", ft.Icons.MORE_HORIZ, True)


class Screen(Protocol):
    """The frame as a screen sees it: facts to show, where to go, how to act."""

    page: ft.Page
    client: GovernorClient
    preferences: PreferenceStore
    push: PushService | None  # the process's push notifications (None: none)
    server_url: str
    step_up_for_veto: bool
    undo_seconds: float
    route: str  # the address shown
    # Each screen's state that survives re-renders (filters, form drafts).
    state: ScreenState
    # The decision held for its undo window (the request screen shows its bar), if any.
    held: HeldDecision | None
    # Live texts refreshed every second without a re-render (countdowns, ages).
    tickers: list[tuple[ft.Text, Callable[[], str]]]
    shortcuts: dict[str, Callable[[], Any]]  # key -> action, while the screen is shown
    # Set by a screen with a field being typed in: its rows refresh in place instead.
    refreshers: list[Callable[[], None]]
    # What the screen shows, cheaply comparable: an equal one re-renders nothing.
    signature: Callable[[], object] | None
    typing: bool  # a text field has the focus: shortcuts are off
    file_picker: ft.FilePicker | None

    @property
    def account(self) -> Account | None: ...

    @property
    def can_decide(self) -> bool: ...

    @property
    def is_phone(self) -> bool: ...

    def now(self) -> datetime:
        """The server's time (countdowns, windows, ages)."""
        ...

    def go(self, route: str) -> None: ...

    def back(self, fallback: str) -> None: ...

    def signed_in(self) -> None: ...

    async def sign_out(self) -> None: ...

    def apply_theme(self) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def snack(self, message: str, action: str | None = None,
              on_action: Callable[[], Any] | None = None, seconds: float = 4.0) -> None: ...

    def dialog(self, dlg: ft.AlertDialog) -> None: ...

    def close_dialog(self) -> None: ...

    def decide(self, queue: Callable[[], Any], message: str,
               then: str | None = None) -> bool: ...

    def hold_veto(self, approval_id: str, queue: Callable[[], Any]) -> None: ...

    def hold_decision(self, approval_id: str, what: str, seconds: float, *,
                      undo_to: str | None = None) -> asyncio.Future[bool]: ...

    def undo_decision(self) -> None: ...


Builder = Callable[[Screen], ft.Control]
# The route table: an address -> its screen's builder and the client topics that
# re-render it.
Routes = Callable[[str], tuple[Builder, tuple[str, ...]]]
