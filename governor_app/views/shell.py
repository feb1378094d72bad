"""The frame around every screen: navigation (bar on a phone, rail on a desktop), the
connection banner, the account menu, keyboard shortcuts, and re-rendering on change.

Screens are functions ``build(shell) -> ft.Control`` registered in ``ROUTES``; they read
view models from ``governor_app.state`` and call back into the shell to act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import flet as ft

from governor_app import state
from governor_app.preferences import PreferenceStore, should_alert
from sync.facade import GovernorClient, Topic
from sync.models import SCOPE_VETO, SCOPE_WRITE, Account

if TYPE_CHECKING:
    from governor_app.push import PushService
    from governor_app.views.banners import BannerStack

log = logging.getLogger(__name__)

PHONE_MAX_WIDTH = 720


@dataclass(frozen=True)
class Destination:
    route: str
    label: str
    icon: ft.IconData
    on_phone_bar: bool


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

Builder = Callable[["Shell"], ft.Control]


class Shell:
    """One session's UI. ``route`` is the screen shown; ``go`` changes it."""

    def __init__(self, page: ft.Page, client: GovernorClient, *,
                 clock: Callable[[], datetime], step_up_for_veto: bool = False,
                 undo_seconds: float = 5.0, preferences: PreferenceStore | None = None,
                 server_url: str = "", push: PushService | None = None) -> None:
        self.page = page
        # The process's push notifications (None: the client has none, as in view tests).
        self.push = push
        self.banners: BannerStack | None = None
        self.preferences = preferences or PreferenceStore()
        self.server_url = server_url
        self.client = client
        self.clock = clock
        self.step_up_for_veto = step_up_for_veto
        self.undo_seconds = undo_seconds
        self.route = "/dashboard"
        # Per-screen memory that survives re-renders (filters, form drafts).
        self.memory: dict[str, Any] = {}
        # Live texts (countdowns, ages) refreshed every second without a re-render.
        self.tickers: list[tuple[ft.Text, Callable[[], str]]] = []
        self.shortcuts: dict[str, Callable[[], Any]] = {}
        # A screen with a field being typed in refreshes its rows in place instead of being
        # rebuilt (a rebuild would take the focus away mid-word).
        self.refreshers: list[Callable[[], None]] = []
        # What the screen shows, cheaply comparable: a change notification that leaves it
        # equal re-renders nothing (the engine reports every periodic sync).
        self.signature: Callable[[], object] | None = None
        self._last_signature: object = None
        self._top_key: object = None
        self._nav_key: object = None
        self._unsubscribe: Callable[[], None] | None = None
        self._body = ft.Container(expand=True)
        self._banner = ft.Container()
        self._banner_ticker: tuple[ft.Text, Callable[[], str]] | None = None
        self._nav_host = ft.Container(expand=True)
        self._frame_mode = ""
        self._phone_dests = [d for d in DESTINATIONS if d.on_phone_bar] + [MORE]
        self._top = ft.Container()
        self._bar = ft.NavigationBar(destinations=[])
        self._rail = ft.NavigationRail(destinations=[])
        self._tick_task: asyncio.Task[None] | None = None
        self._pending_topics: set[Topic] = set()
        self._render_scheduled = False
        self._closed = False
        self.typing = False  # a text field has focus: shortcuts are off
        self.file_picker: ft.FilePicker | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def mount(self) -> None:
        page = self.page
        page.title = "WAOOAW Governor"
        page.theme = ft.Theme(color_scheme_seed="#1F4E99")
        page.dark_theme = ft.Theme(color_scheme_seed="#1F4E99")
        self.apply_theme()
        page.padding = 0
        page.on_resize = self._on_resize
        page.on_keyboard_event = self._on_key
        page.on_close = self._on_close
        page.on_disconnect = self._on_close
        self._unsubscribe = self.client.subscribe(self._on_client_change)
        self._seen_notifications = {n.id for n in self.client.notifications()}
        account = self.client.account()
        if account is None and not self.client.status().signed_in:
            self.route = "/sign-in"
        frame = ft.Column([self._banner, self._nav_host], spacing=0, expand=True)
        layers: list[ft.Control] = [ft.Container(frame, left=0, top=0, right=0, bottom=0)]
        if self.push is not None:
            from governor_app.views.banners import BannerStack

            # Push banners float over every screen, at the top.
            self.banners = BannerStack(self, self.push)
            layers.append(self.banners.mount())
        self._render()  # before add: the first screen goes out in the page's first message
        page.add(ft.SafeArea(content=ft.Stack(layers, expand=True), expand=True))
        self._tick_task = asyncio.create_task(self._tick())

    def _on_close(self, e: Any = None) -> None:
        self._closed = True
        if self.banners is not None:
            self.banners.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tick_task is not None:
            self._tick_task.cancel()

    def apply_theme(self) -> None:
        self.page.theme_mode = ft.ThemeMode(self.preferences.value.theme)

    # --- facts the screens use ---------------------------------------------------------
    def now(self) -> datetime:
        return self.clock()

    @property
    def account(self) -> Account | None:
        return self.client.account()

    def can(self, scope: str) -> bool:
        account = self.account
        return account is not None and account.can(scope)

    @property
    def can_decide(self) -> bool:
        return self.can(SCOPE_WRITE)

    @property
    def can_veto(self) -> bool:
        return self.can(SCOPE_VETO)

    @property
    def is_phone(self) -> bool:
        width = self.page.width
        return width is not None and width < PHONE_MAX_WIDTH

    # --- navigation --------------------------------------------------------------------
    def go(self, route: str) -> None:
        # A field that disappears with its screen never reports losing the focus.
        self.typing = False
        self.route = route
        self.tickers = []
        self.shortcuts = {}
        self._render()
        self.page.update()

    def back(self, fallback: str) -> None:
        self.go(fallback)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine on the page's loop; errors become a snack bar, not a crash."""
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:  # shown to the governor in words
                log.exception("background action failed")
                self.snack(str(exc) or exc.__class__.__name__)
        asyncio.get_running_loop().create_task(guarded())

    def snack(self, message: str, action: str | None = None,
              on_action: Callable[[], Any] | None = None, seconds: float = 4.0) -> None:
        # persist=False: Flutter keeps a snack bar with an action until it is tapped, which
        # would leave "Open" or "Undo veto" on screen long after it means anything.
        bar = ft.SnackBar(ft.Text(message), action=action,
                          on_action=(lambda e: on_action()) if on_action else None,
                          duration=ft.Duration(milliseconds=int(seconds * 1000)),
                          persist=False)
        self.page.show_dialog(bar)

    def dialog(self, dlg: ft.AlertDialog) -> None:
        self.page.show_dialog(dlg)

    def close_dialog(self) -> None:
        with contextlib.suppress(Exception):
            self.page.pop_dialog()

    # --- decisions ---------------------------------------------------------------------
    def decide(self, queue: Callable[[], Any], message: str, then: str | None = None) -> bool:
        """Queue a decision through the client; refusals become a snack bar in words."""
        try:
            queue()
        except Exception as exc:  # InvalidDecision, SignInRequired: said to the governor
            self.snack(str(exc))
            self.page.update()
            return False
        self.snack(message)
        if then:
            self.go(then)
        else:
            self._render()
            self.page.update()
        return True

    def hold_veto(self, approval_id: str, queue: Callable[[], Any]) -> None:
        """Keep a confirmed veto on the device for the undo window, then queue it."""
        window = state.UndoWindow(self.now(), self.undo_seconds)
        self.memory["veto-hold"] = {"approval_id": approval_id, "window": window,
                                    "queue": queue}

        async def wait_then_queue() -> None:
            while not window.cancelled:
                if window.due(self.now()):
                    window.committed = True
                    self.memory.pop("veto-hold", None)
                    self.decide(queue, f"Veto of {approval_id} queued; it is sent as soon "
                                       "as the server is reachable.")
                    return
                await asyncio.sleep(0.2)

        asyncio.get_running_loop().create_task(wait_then_queue())
        self.go(f"/approvals/{approval_id}")

    def undo_veto(self) -> None:
        hold = self.memory.get("veto-hold")
        if hold is None or not hold["window"].cancel():
            self.snack("Too late to undo: the veto has already been queued.")
            self.page.update()
            return
        self.memory.pop("veto-hold", None)
        self.snack(f"Veto of {hold['approval_id']} taken back; nothing was sent.")
        self.go(f"/approvals/{hold['approval_id']}/veto")

    # --- rendering ---------------------------------------------------------------------
    def _render(self) -> None:
        from governor_app.views.routes import resolve

        builder, topics = resolve(self.route)
        self._screen_topics = topics
        self.tickers = []
        self.refreshers = []
        self.signature = None
        try:
            content = builder(self)
        except Exception as exc:  # a broken screen must not blank the app
            log.exception("screen %s failed", self.route)
            content = ft.Text(f"This screen failed to render ({exc}). Go back and retry.")
        self._body.content = ft.Container(content, padding=ft.Padding.all(12), expand=True)
        self._last_signature = self.signature() if self.signature else None
        self._render_banner()
        self._render_nav()
        if self.banners is not None:
            self.banners.render()  # hidden on the sign-in screen

    def _render_banner(self) -> None:
        conn = state.connection_view(self.client.status(), self.now())
        # The banner stays in the tree (empty when not needed) so the frame below it keeps
        # its place in Flutter's element tree.
        if self.route == "/sign-in" or (conn.online and not conn.detail):
            self._banner.content = None
            self._banner_ticker = None
            return
        color = ft.Colors.AMBER_100 if not conn.online else ft.Colors.RED_50
        text = ft.Text(f"{conn.label}. {conn.synced}. {conn.detail or ''}", size=13,
                       color=ft.Colors.BLACK)
        self._banner_ticker = (text, self._banner_text)
        row: list[ft.Control] = [
            ft.Icon(ft.Icons.CLOUD_OFF if not conn.online else ft.Icons.ERROR_OUTLINE,
                    color=ft.Colors.BLACK),
            ft.Container(text, expand=True)]
        if not conn.online:
            # The engine backs off (up to minutes) after repeated failures; the governor
            # who knows the network is back need not wait for it.
            row.append(ft.TextButton("Retry now",
                                     on_click=lambda e: self.spawn(self.client.sync_now())))
        self._banner.content = ft.Semantics(
            identifier="connection-banner", container=True,
            content=ft.Container(ft.Row(row), bgcolor=color,
                                 padding=ft.Padding.symmetric(vertical=8, horizontal=12)))

    def _banner_text(self) -> str:
        conn = state.connection_view(self.client.status(), self.now())
        return f"{conn.label}. {conn.synced}. {conn.detail or ''}"

    def _badges(self) -> dict[str, int]:
        unread = sum(1 for n in self.client.notifications() if not n.read)
        dash = self.client.dashboard()
        pending = dash.dashboard.pending_approvals if dash else 0
        outbox = self.client.status().pending_count
        return {"/approvals": pending, "/notifications": unread, "/outbox": outbox,
                "/more": outbox}

    def _icon(self, dest: Destination, badges: dict[str, int]) -> ft.Control:
        count = badges.get(dest.route, 0)
        icon = ft.Icon(dest.icon)
        if count:
            icon.badge = ft.Badge(label=str(count))
        return icon

    def _render_nav(self) -> None:
        """Update the frame in place; rebuild it only when its kind changes (sign-in,
        phone, desktop). Replacing an ancestor of the body would rebuild the screen in
        Flutter and take the focus out of a field the governor is typing in."""
        mode = "sign-in" if self.route == "/sign-in" else "phone" if self.is_phone \
            else "desktop"
        if mode != self._frame_mode:
            self._frame_mode = mode
            self._build_frame(mode)
        if mode == "sign-in":
            return
        badges = self._badges()
        account = self.account
        top_key = (state.connection_view(self.client.status(), self.now()).label,
                   account.username if account else None, mode)
        if top_key != self._top_key or self._top.content is None:
            self._top_key = top_key
            self._top.content = self._app_bar()
        current = self.route.split("/")[1] if self.route != "/" else "dashboard"
        nav_key = (mode, tuple(sorted(badges.items())), current)
        if nav_key == self._nav_key:
            return
        self._nav_key = nav_key
        if mode == "phone":
            dests = self._phone_dests
            self._bar.selected_index = next(
                (i for i, d in enumerate(dests) if d.route == f"/{current}"), len(dests) - 1)
            for control, d in zip(self._bar.destinations, dests, strict=True):
                control.icon = self._icon(d, badges)
        else:
            self._rail.selected_index = next(
                (i for i, d in enumerate(DESTINATIONS) if d.route == f"/{current}"), None)
            for rail_dest, d in zip(self._rail.destinations, DESTINATIONS, strict=True):
                rail_dest.icon = self._icon(d, badges)

    def _build_frame(self, mode: str) -> None:
        self._top_key = None
        self._nav_key = None
        if mode == "sign-in":
            self._nav_host.content = self._body
            return
        self._top = ft.Container(padding=ft.Padding.only(left=12, right=4, top=4, bottom=4))
        if mode == "phone":
            dests = self._phone_dests
            self._bar = ft.NavigationBar(
                destinations=[ft.NavigationBarDestination(icon=d.icon, label=d.label)
                              for d in dests],
                on_change=lambda e: self.go(dests[e.control.selected_index].route))
            self._nav_host.content = ft.Column([self._top, self._body, self._bar], spacing=0,
                                               expand=True)
        else:
            self._rail = ft.NavigationRail(
                label_type=ft.NavigationRailLabelType.ALL,
                destinations=[ft.NavigationRailDestination(icon=d.icon, label=d.label)
                              for d in DESTINATIONS],
                on_change=lambda e: self.go(DESTINATIONS[e.control.selected_index].route))
            self._nav_host.content = ft.Column(
                [self._top, ft.Row([self._rail, ft.VerticalDivider(width=1), self._body],
                                   expand=True,
                                   vertical_alignment=ft.CrossAxisAlignment.START)],
                spacing=0, expand=True)

    def _app_bar(self) -> ft.Control:
        account = self.account
        conn = state.connection_view(self.client.status(), self.now())
        chip = ft.Semantics(
            identifier="connection-state", label=f"Connection: {conn.label}",
            content=ft.Container(
                ft.Row([ft.Icon(ft.Icons.CLOUD_DONE if conn.online else ft.Icons.CLOUD_OFF,
                                size=16),
                        ft.Text(conn.label, size=12)], spacing=4, tight=True),
                padding=ft.Padding.symmetric(vertical=4, horizontal=8), border_radius=12,
                bgcolor=ft.Colors.GREEN_100 if conn.online else ft.Colors.AMBER_200))
        items: list[ft.PopupMenuItem] = []
        if account is not None:
            items = [
                ft.PopupMenuItem(content=ft.Text(f"Signed in as {account.username}")),
                ft.PopupMenuItem(content=ft.Text("Scopes: " + ", ".join(sorted(
                    account.scopes)))),
                ft.PopupMenuItem(content=ft.Text("Sign out"),
                                 on_click=lambda e: self.spawn(self.sign_out())),
            ]
        menu = ft.Semantics(label="Account menu", button=True, container=True,
                            exclude_semantics=True, content=ft.PopupMenuButton(
            icon=ft.Icons.ACCOUNT_CIRCLE, tooltip="Account menu", items=items))
        return ft.Row([ft.Text("WAOOAW Governor", weight=ft.FontWeight.BOLD, size=16,
                               expand=True), chip, menu])

    async def sign_out(self) -> None:
        await self.client.sign_out()
        self.go("/sign-in")

    # --- change notifications ----------------------------------------------------------
    def _on_client_change(self, topic: Topic) -> None:
        # The engine may call from any thread; hop onto the page's loop and coalesce.
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self.page.run_task(self._changed, topic)

    async def _changed(self, topic: Topic) -> None:
        self._pending_topics.add(topic)
        if self._render_scheduled:
            return
        self._render_scheduled = True
        await asyncio.sleep(0)  # let a burst of topics arrive first
        topics, self._pending_topics = self._pending_topics, set()
        self._render_scheduled = False
        if self._closed:
            return
        if "notifications" in topics:
            self._alert_new_notifications()
        if "auth" in topics and self.account is None and self.route != "/sign-in":
            self.route = "/sign-in"
            self._render()
        elif topics & set(self._screen_topics) and not self._unchanged():
            if self.refreshers:
                for refresh in list(self.refreshers):
                    refresh()
                self._render_banner()
                self._render_nav()
            else:
                self._render()
        else:
            self._render_banner()
            self._render_nav()
        with contextlib.suppress(Exception):
            self.page.update()

    def _unchanged(self) -> bool:
        if self.signature is None:
            return False
        current = self.signature()
        if current == self._last_signature:
            return True
        self._last_signature = current
        return False

    def _alert_new_notifications(self) -> None:
        """A new event interrupts with a snack bar unless quiet hours hold it back (budget
        95 % and violations break through when the override is on)."""
        fresh = [n for n in self.client.notifications()
                 if n.id not in self._seen_notifications]
        self._seen_notifications.update(n.id for n in fresh)
        if self.push is not None and self.push.running:
            return  # the push banners tell of new events (with quiet hours) instead
        local_now = self.now().astimezone()
        for n in fresh:
            if should_alert(self.preferences.value, n, state.is_urgent(n), local_now):
                approval = n.data.get("approval_id")
                on_action = partial(self.go, f"/approvals/{approval}") if approval else None
                self.snack(state.notification_title(n), action="Open" if approval else None,
                           on_action=on_action)
                break  # one interruption per burst; the centre lists the rest

    async def _tick(self) -> None:
        while not self._closed:
            await asyncio.sleep(1)
            tickers = list(self.tickers)
            if self._banner_ticker is not None:
                tickers.append(self._banner_ticker)
            for text, compute in tickers:
                value = compute()
                if text.value != value:
                    text.value = value
                    # Only this text: a page.update() would diff the whole page every
                    # second. A text no longer on the page raises; it is left alone.
                    with contextlib.suppress(Exception):
                        text.update()

    def _on_resize(self, e: Any) -> None:
        was_phone = self.memory.get("_phone")
        if was_phone != self.is_phone:
            self.memory["_phone"] = self.is_phone
            self._render_nav()
            if self.banners is not None:
                self.banners.render()
            self.page.update()

    def _on_key(self, e: ft.KeyboardEvent) -> None:
        if e.ctrl or e.alt or e.meta or self.typing or self.is_phone:
            return
        handler = self.shortcuts.get(e.key.lower())
        if handler is not None:
            handler()
            self.page.update()
