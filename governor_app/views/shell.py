"""The frame around every screen: navigation (bar on a phone, rail on a desktop), the
connection banner, the account menu, keyboard shortcuts, and re-rendering on change.

Screens are functions ``build(screen) -> ft.Control`` written against the ``Screen``
protocol (``views/screen.py``), which ``Shell`` implements; the route table is handed in
(``routes``), so this module imports no screen. Screens read view models from
``governor_app.state`` and call back into the frame to act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import flet as ft

from governor_app import addresses, state
from governor_app.preferences import PreferenceStore, should_alert
from governor_app.screen_state import HeldDecision, ScreenState
from governor_app.views.screen import DESTINATIONS, MORE, Destination, Routes
from sync import rules
from sync.facade import GovernorClient, Topic
from sync.models import Account, DecisionAction

if TYPE_CHECKING:
    from governor_app.push import PushService
    from governor_app.views.banners import BannerStack

log = logging.getLogger(__name__)

PHONE_MAX_WIDTH = 720


class Shell:
    """One session's UI, the ``Screen`` every screen is built for. ``route`` is the
    screen shown; ``go`` changes it; ``routes`` (the route table, handed in) says which
    builder draws it."""

    def __init__(self, page: ft.Page, client: GovernorClient, *, routes: Routes,
                 clock: Callable[[], datetime],
                 step_up_for_veto: bool | Callable[[], bool] = False,
                 undo_seconds: float = rules.UNDO_SECONDS,
                 preferences: PreferenceStore | None = None,
                 server_url: str = "", push: PushService | None = None) -> None:
        self.page = page
        self.routes = routes
        # The process's push notifications (None: the client has none, as in view tests).
        self.push = push
        self.banners: BannerStack | None = None
        self.preferences = preferences or PreferenceStore()
        self.server_url = server_url
        self.client = client
        self.clock = clock
        self._step_up_for_veto = step_up_for_veto
        self.undo_seconds = undo_seconds
        self.route = addresses.HOME
        # The address opened while signed out: shown once signed in.
        self.wanted: str | None = None
        # The addresses shown before this one, oldest first: the in-app "Go back".
        self.history: list[str] = []
        # What the browser's address bar holds (pushed by ``go`` or reported by it).
        self._address = "/"
        # Each screen's state that survives re-renders (filters, form drafts), and whose
        # it is (the account's ``sub``; None before anyone signed in): another account
        # signing in on this tab starts with none of it.
        self.state = ScreenState()
        signed_in = client.account()
        self._state_of: str | None = signed_in.sub if signed_in is not None else None
        # The decision held on the device for its undo window (one at a time).
        self.held: HeldDecision | None = None
        # Whether the frame was last laid out for a phone (None: not yet resized).
        self._was_phone: bool | None = None
        # Live texts (countdowns, ages) refreshed every second without a re-render.
        self.tickers: list[tuple[ft.Text, Callable[[], str]]] = []
        self.shortcuts: dict[str, Callable[[], Any]] = {}
        self._dialogs: list[ft.AlertDialog] = []  # opened by ``dialog``: Esc closes the top
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
        # The topics the screen shown listens to (set by each render; none before the
        # first, so a change that arrives before it only redraws the frame).
        self._screen_topics: tuple[str, ...] = ()
        self._render_scheduled = False
        self._closed = False
        # The tab is away (reloading, or closed until the session expires): nothing is
        # drawn for it; ``_on_connect`` draws it whole.
        self._away = False
        self.typing = False  # a text field has focus: shortcuts are off
        self.file_picker: ft.FilePicker | None = None

    @property
    def step_up_for_veto(self) -> bool:
        """A veto asks for the password first. Read when a veto is made, not when the
        session starts: the launcher's answer reads the engine's settings (~45 ms the first
        time), which the first screen need not wait for."""
        value = self._step_up_for_veto
        return value() if callable(value) else value

    @step_up_for_veto.setter
    def step_up_for_veto(self, value: bool) -> None:
        self._step_up_for_veto = value

    # --- lifecycle ---------------------------------------------------------------------
    async def mount(self) -> None:
        page = self.page
        page.title = "WAOOAW Governor"
        # Bar labels a size smaller than Material's 12: at 12, "Notifications" broke over
        # two lines in a fifth of a 360 px phone.
        bar = ft.NavigationBarTheme(label_text_style=ft.TextStyle(size=11))
        page.theme = ft.Theme(color_scheme_seed="#1F4E99", navigation_bar_theme=bar)
        page.dark_theme = ft.Theme(color_scheme_seed="#1F4E99", navigation_bar_theme=bar)
        self.apply_theme()
        page.padding = 0
        page.on_resize = self._on_resize
        page.on_keyboard_event = self._on_key
        # A reload disconnects the page and re-attaches it to this same session (Flet
        # keeps the session for an hour; ``main`` does not run again): the shell pauses
        # while the tab is away and catches up when it is back. Only the session's end
        # tears it down.
        page.on_close = self._on_close
        page.on_disconnect = self._on_disconnect
        page.on_connect = self._on_connect
        # The address bar: typed or linked addresses, and the browser's Back and Forward.
        page.on_route_change = self._on_route_change
        page.on_view_pop = self._on_view_pop
        self._unsubscribe = self.client.subscribe(self._on_client_change)
        self._seen_notifications = {n.id for n in self.client.notifications()}
        account = self.client.account()
        opened = page.route or "/"
        self._address = opened
        if account is None and not self.client.status().signed_in:
            self.wanted = addresses.after_sign_in(opened)
            self.route = addresses.SIGN_IN
        else:
            self.route = addresses.after_sign_in(_normal(opened))
        frame = ft.Column([self._banner, self._nav_host], spacing=0, expand=True)
        # Flutter reports the banner's size (it is always in the frame, empty when not
        # needed) once it has laid the frame out: the first screen is on view, and the
        # client may start what it held back for the first paint. On the banner, not the
        # whole frame: watching the frame's size slowed every redraw of the screen a
        # little (bench/ui.py's list_5k_action_ms 104 against 100 without, 4 runs each).
        self._banner.on_size_change = self._on_laid_out
        layers: list[ft.Control] = [ft.Container(frame, left=0, top=0, right=0, bottom=0)]
        if self.push is not None:
            from governor_app.views.banners import BannerStack

            # Push banners float over every screen, at the top.
            self.banners = BannerStack(self, self.push)
            layers.append(self.banners.mount())
        self._render()  # before add: the first screen goes out in the page's first message
        page.add(ft.SafeArea(content=ft.Stack(layers, expand=True), expand=True))
        self._tick_task = asyncio.create_task(self._tick())

    def _on_laid_out(self, e: Any = None) -> None:
        self.client.screen_drawn()
        ft.context.disable_auto_update()  # nothing on the page changed

    def _on_disconnect(self, e: Any = None) -> None:
        self._away = True
        if self.banners is not None:
            self.banners.close()

    def _on_connect(self, e: Any = None) -> None:
        """The tab is back (a reload): draw what changed while it was away, and follow
        the client again."""
        if self._closed:
            return
        self._away = False
        self._seen_notifications = {n.id for n in self.client.notifications()}
        self._render()
        if self.banners is not None:
            self.banners.attach()
        with contextlib.suppress(Exception):
            self.page.update()

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
        """The server's time (countdowns, windows, ages): the device clock may be wrong."""
        return self.client.server_now()

    @property
    def account(self) -> Account | None:
        return self.client.account()

    def can(self, scope: str) -> bool:
        account = self.account
        return account is not None and account.can(scope)

    @property
    def can_decide(self) -> bool:
        return rules.may(self.account, DecisionAction.APPROVE)

    @property
    def can_veto(self) -> bool:
        return rules.may(self.account, DecisionAction.VETO)

    @property
    def is_phone(self) -> bool:
        width = self.page.width
        return width is not None and width < PHONE_MAX_WIDTH

    # --- navigation --------------------------------------------------------------------
    def go(self, route: str) -> None:
        """Show ``route`` and put it in the address bar (one browser history entry per
        new address; re-rendering the screen shown adds none)."""
        route = _normal(route)
        if route != self.route and self.route != addresses.SIGN_IN:
            self.history.append(self.route)
            del self.history[:-50]
        self._show(route)
        self._push_address(route)

    def back(self, fallback: str) -> None:
        """The app's own Back: the address shown before this one, else ``fallback``."""
        target = self.history.pop() if self.history else fallback
        self._show(target)
        self._push_address(target)

    def signed_in(self) -> None:
        """Sign-in done: open the address the governor was going to (else the dashboard)."""
        wanted, self.wanted = addresses.after_sign_in(self.wanted), None
        self.go(wanted)

    def _show(self, route: str) -> None:
        # A field that disappears with its screen never reports losing the focus.
        self.typing = False
        self.route = route
        self.tickers = []
        self.shortcuts = {}
        self._render()
        self.page.update()

    def _push_address(self, route: str) -> None:
        if route == self._address:
            return
        self._address = route
        with contextlib.suppress(RuntimeError):  # no running loop: a session being torn down
            self.page.navigate(route)

    def _on_route_change(self, e: ft.RouteChangeEvent) -> None:
        """The address bar changed under the app: a typed address, or Back / Forward."""
        route = e.route or "/"
        if route == self._address:
            return  # the echo of our own ``go``
        self._address = route
        target = _normal(route)
        if self.account is None and not self.client.status().signed_in:
            if addresses.parse(target).screen != "sign-in":
                self.wanted = target
            target = addresses.SIGN_IN
        elif addresses.parse(target).screen == "sign-in":
            target = addresses.HOME
        if target == self.route:
            return
        # Back walks the browser's history; the in-app trail follows it.
        if self.history and self.history[-1] == target:
            self.history.pop()
        else:
            self.history.append(self.route)
        self._show(target)

    def _on_view_pop(self, e: ft.ViewPopEvent) -> None:
        """The phone's back gesture: one step back in the app's own history."""
        self.back(addresses.HOME)

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
        self._dialogs = [d for d in self._dialogs if d.open]
        self._dialogs.append(dlg)
        self.page.show_dialog(dlg)

    def dismiss_top_dialog(self) -> bool:
        """Esc: close the dialog on top, as its Cancel would (its ``on_dismiss`` runs);
        whether there was one."""
        top = next((d for d in reversed(self._dialogs) if d.open), None)
        if top is None:
            return False
        self._dialogs.remove(top)
        top.open = False
        self.typing = False  # a field closed with the dialog never reports the blur
        top.update()
        return True

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
        def then(held: asyncio.Future[bool]) -> None:
            if not held.cancelled() and held.result():
                self.decide(queue, f"Veto of {approval_id} queued; it is sent as soon "
                                   "as the server is reachable.")
        self.hold_decision(approval_id, "Veto", self.undo_seconds,
                           undo_to=addresses.veto(approval_id)).add_done_callback(then)

    def hold_decision(self, approval_id: str, what: str, seconds: float, *,
                      undo_to: str | None = None) -> asyncio.Future[bool]:
        """The undo window of every decision, from the request screen or a banner: the
        request is shown with "Undo" and the time left; the answer is True once the window
        ran out (queue it) and False when taken back (then ``undo_to`` is opened, if
        given: the veto form, as it was)."""
        loop = asyncio.get_running_loop()
        window = state.UndoWindow(self.now(), seconds)
        answer: asyncio.Future[bool] = loop.create_future()
        hold = HeldDecision(approval_id, window, what, undo_to, answer)
        previous = self.held
        if previous is not None and previous.window.cancel():
            previous.answer.set_result(False)  # one hold at a time: the older goes
        self.held = hold

        async def wait() -> None:
            while not window.cancelled:
                if window.due(self.now()):
                    window.committed = True
                    if self.held is hold:
                        self.held = None
                    if not answer.done():
                        answer.set_result(True)
                    return
                # Woken when it should be due (no polling); the loop checks again.
                await asyncio.sleep(max(window.left(self.now()), 0.05))

        hold.task = loop.create_task(wait())
        self.go(addresses.approval(approval_id))
        return answer

    def undo_decision(self) -> None:
        """"Undo" in the request screen's bar: take the held decision back."""
        hold = self.held
        if hold is None or not hold.window.cancel():
            self.snack("Too late to undo: the decision has already been queued.")
            self.page.update()
            return
        self.held = None
        if not hold.answer.done():
            hold.answer.set_result(False)
        self.snack(f"{hold.what} of {hold.approval_id} taken back; nothing was sent.")
        if hold.undo_to:
            self.go(hold.undo_to)
        else:
            self._render()
            self.page.update()

    # --- rendering ---------------------------------------------------------------------
    def _render(self) -> None:
        builder, topics = self.routes(self.route)
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
        return state.badges(self.client)

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
        current = addresses.parse(self.route).section.lstrip("/")
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
        account = self.client.account()
        kept = self.client.status()  # this account's outbox, counted while it is served
        await self.client.sign_out()
        self.go("/sign-in")
        if account is not None:  # what stays on the device, and who can see it
            self.snack(state.sign_out_words(account.username, kept), seconds=10)
        # The next account starts at its own dashboard, with no Back into this one's and
        # none of its screens' state: an unfinished veto reason, a settings draft, a seed
        # being written or a search are this account's. (A decision already held for its
        # undo window stays: it was made, and is sent.)
        self.history = []
        self.wanted = None
        self.state = ScreenState()
        self._state_of = None

    def _own_state(self, account: Account) -> None:
        """The screens' state is ``account``'s: kept across its own sign-ins (a session
        that expired under a half-written veto gets it back), dropped for another's."""
        if self._state_of is not None and self._state_of != account.sub:
            self.state = ScreenState()
        self._state_of = account.sub

    # --- change notifications ----------------------------------------------------------
    def _on_client_change(self, topic: Topic) -> None:
        # The engine may call from any thread; hop onto the page's loop and coalesce.
        if self._closed or self._away:
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
        if self._closed or self._away:
            return
        if "notifications" in topics:
            self._alert_new_notifications()
        if "auth" in topics and self.account is not None:
            self._own_state(self.account)
        if "auth" in topics and self.account is None and self.route != "/sign-in":
            # Signed out under the app (expiry, another server): the next sign-in, maybe
            # by another account, starts at the dashboard, with no Back into this one.
            self.wanted = None
            self.history = []
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
                on_action = partial(self.go, addresses.approval(approval)) if approval \
                    else None
                self.snack(state.notification_title(n), action="Open" if approval else None,
                           on_action=on_action)
                break  # one interruption per burst; the centre lists the rest

    async def _tick(self) -> None:
        while not self._closed:
            await asyncio.sleep(1)
            if self._away:
                continue
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
        if self._was_phone != self.is_phone:
            self._was_phone = self.is_phone
            self._render_nav()
            if self.banners is not None:
                self.banners.render()
            self.page.update()

    def _on_key(self, e: ft.KeyboardEvent) -> None:
        if e.key == "Escape" and self.dismiss_top_dialog():  # typing in it too, any size
            return
        if e.ctrl or e.alt or e.meta or self.typing or self.is_phone:
            return
        handler = self.shortcuts.get(e.key.lower())
        if handler is not None:
            handler()
            self.page.update()


def _normal(route: str) -> str:
    """One address per screen: ``/`` is the dashboard's ``/dashboard``."""
    return addresses.HOME if addresses.parse(route).screen == "dashboard" else route
