"""Push banners: one session's stack of notifications at the top of the window, each with
its actions, and the veto dialog (category, reason and, with step-up on, the password)
that a Veto pressed on a banner or an OS notification opens.

The logic (what a banner says, where Open goes, the step-up loop) is in
``governor_app.push``; this module only draws it and reports presses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import flet as ft

from governor_app import addresses, state
from governor_app.push import (
    ApprovePrompt,
    BannerView,
    PushService,
    VetoAnswer,
    VetoPrompt,
    visible_banners,
)
from governor_app.views.common import icon_button, text_field
from governor_app.views.screen import Screen as Shell

log = logging.getLogger(__name__)

DESKTOP_WIDTH = 420
PASSWORD_LABEL = "Your password (step-up check)"  # as on the veto screen
REASON_LABEL = "Reason for the veto"


class BannerStack:
    """The banners of one session; implements ``governor_app.push.BannerPresenter``."""

    def __init__(self, shell: Shell, push: PushService) -> None:
        self.shell = shell
        self.push = push
        # Positioned in the shell's top-level Stack, over the screens.
        self.host = ft.Container(top=8, right=8, visible=False)
        self._unsubscribe: Any = None
        self._unregister: Any = None
        self._shown: object = None

    # --- lifecycle -------------------------------------------------------------------------
    def mount(self) -> ft.Control:
        self.attach()
        return self.host

    def attach(self) -> None:
        """Follow the push center and answer its OS notifications; again when the tab
        comes back (a reload re-attaches the page to its session)."""
        if self._unsubscribe is None:
            self._unsubscribe = self.push.subscribe(self._on_change)
            self._unregister = self.push.register(self)
        self.render()

    def close(self) -> None:
        """The tab went (closed, or reloading): a notification's action must not be
        answered by a page nobody sees."""
        for undo in (self._unsubscribe, self._unregister):
            if undo is not None:
                undo()
        self._unsubscribe = self._unregister = None

    def _on_change(self) -> None:
        # Called on the app's loop by the center (or from a thread): re-render in the
        # session's own task.
        with contextlib.suppress(Exception):
            self.shell.page.run_task(self._refresh)

    async def _refresh(self) -> None:
        if self.render():
            with contextlib.suppress(Exception):
                self.shell.page.update()

    # --- drawing -----------------------------------------------------------------------------
    def render(self) -> bool:
        """Draw the newest banners; returns whether anything changed."""
        views = [] if self.shell.route == "/sign-in" else self.push.banners()
        phone = self.shell.is_phone
        key = (tuple(views), phone)
        if key == self._shown:
            return False
        self._shown = key
        host = self.host
        host.left = 8 if phone else None
        host.width = None if phone else DESKTOP_WIDTH
        host.visible = bool(views)
        if not views:
            host.content = None
            return True
        shown = visible_banners(phone)
        cards: list[ft.Control] = [self._card(i, v) for i, v in enumerate(views[:shown])]
        hidden = len(views) - shown
        if hidden > 0:
            cards.append(ft.Semantics(identifier="push-banner-more", container=True,
                                      content=ft.Container(ft.Row([
                ft.Text(f"{hidden} more", size=12, expand=True, color=ft.Colors.BLACK),
                ft.TextButton("Show all", on_click=lambda e: self.open("/notifications")),
                ft.TextButton("Dismiss all", on_click=lambda e: self.push.dismiss_all())]),
                bgcolor=ft.Colors.GREY_100, border_radius=8,
                padding=ft.Padding.symmetric(horizontal=12, vertical=2))))
        host.content = ft.Column(cards, spacing=6, tight=True)
        return True

    def _card(self, index: int, view: BannerView) -> ft.Control:
        buttons: list[ft.Control] = []
        for b in view.buttons:
            handler = self._press(view.alert_id, b.action_id)
            if b.destructive:
                buttons.append(ft.FilledButton(b.label, on_click=handler, style=ft.ButtonStyle(
                    bgcolor=ft.Colors.RED_700, color=ft.Colors.WHITE)))
            else:
                buttons.append(ft.OutlinedButton(b.label, on_click=handler))
        icon = ft.Icon(ft.Icons.PRIORITY_HIGH if view.urgent else ft.Icons.NOTIFICATIONS,
                       color=ft.Colors.RED_700 if view.urgent else ft.Colors.BLUE_800, size=20)
        def dismiss(e: Any, alert_id: str = view.alert_id) -> None:
            self.push.dismiss(alert_id)

        close = icon_button(ft.Icons.CLOSE, "Dismiss", dismiss)
        body = ft.Column([
            ft.Row([icon, ft.Text(view.title, weight=ft.FontWeight.BOLD, expand=True,
                                  color=ft.Colors.BLACK), close],
                   vertical_alignment=ft.CrossAxisAlignment.CENTER),
            *([ft.Text(view.body, size=13, color=ft.Colors.BLACK)] if view.body else []),
            *([ft.Text(view.reference, size=11, color=ft.Colors.GREY_800)]
              if view.reference and view.reference not in view.body else []),
            *([ft.Row(buttons, wrap=True, spacing=6)] if buttons else []),
        ], spacing=4, tight=True)
        return ft.Semantics(
            identifier=f"push-banner-{index}", container=True, label=view.label,
            content=ft.Container(body, padding=ft.Padding.only(left=12, right=4, top=4,
                                                                  bottom=10),
                                 border_radius=10,
                                 bgcolor=ft.Colors.RED_50 if view.urgent
                                 else ft.Colors.AMBER_50,
                                 border=ft.Border.all(1, ft.Colors.RED_200 if view.urgent
                                                      else ft.Colors.AMBER_200),
                                 shadow=ft.BoxShadow(blur_radius=8,
                                                     color=ft.Colors.with_opacity(
                                                         0.25, ft.Colors.BLACK))))

    def _press(self, alert_id: str, action_id: str) -> Any:
        def on_click(e: Any) -> None:
            # Detached: a veto waits for the dialog, answered by later clicks.
            self.shell.page.run_task(self._act, alert_id, action_id)
        return on_click

    async def _act(self, alert_id: str, action_id: str) -> None:
        outcome = await self.push.act(alert_id, action_id, self)
        if outcome.message:
            self.shell.snack(outcome.message)
        with contextlib.suppress(Exception):
            self.shell.page.update()

    # --- BannerPresenter -----------------------------------------------------------------------
    def open(self, route: str) -> None:
        self.shell.go(route)

    async def hold(self, approval_id: str, what: str, seconds: float) -> bool:
        """The undo window of a decision confirmed from a banner: the request screen's
        own (the request is shown with "Undo" and the time left)."""
        return await self.shell.hold_decision(approval_id, what, seconds)

    async def confirm_approval(self, prompt: ApprovePrompt) -> bool:
        """The request's danger flags, and "Approve anyway" or "Cancel"."""
        shell = self.shell
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def resolve(value: bool) -> None:
            if not answer.done():
                answer.set_result(value)

        def open_request(e: Any) -> None:  # a closer look instead: nothing is queued
            resolve(False)
            self.open(addresses.approval(prompt.approval_id))

        flags = "\n".join(f"• {flag}" for flag in prompt.flags)
        dialog = ft.AlertDialog(
            modal=True, title=ft.Text(f"Approve {prompt.approval_id}?"),
            content=ft.Column([
                ft.Text(prompt.alert.body),
                ft.Semantics(identifier="approve-dialog-flags", container=True,
                             label=f"Look first: {flags}", content=ft.Column([
                                 ft.Text("Look first:", weight=ft.FontWeight.BOLD),
                                 *[ft.Text(f, color=ft.Colors.RED_700)
                                   for f in prompt.flags]], spacing=2, tight=True))],
                tight=True, spacing=8, width=380),
            scrollable=True,
            actions=[ft.TextButton("Cancel", on_click=lambda e: resolve(False)),
                     ft.TextButton("Open request", on_click=open_request),
                     ft.FilledButton("Approve anyway", on_click=lambda e: resolve(True))],
            on_dismiss=lambda e: resolve(False))
        shell.dialog(dialog)
        with contextlib.suppress(Exception):
            shell.page.update()
        try:
            return await answer
        finally:
            with contextlib.suppress(Exception):
                shell.page.pop_dialog()
                shell.page.update()

    async def ask_veto(self, prompt: VetoPrompt) -> VetoAnswer | None:
        """The veto dialog; ``None`` when cancelled or dismissed."""
        shell = self.shell
        answer: asyncio.Future[VetoAnswer | None] = \
            asyncio.get_running_loop().create_future()
        chosen = {"category": prompt.category}

        def on_category(e: Any) -> None:
            chosen["category"] = state.VetoCategory(e.control.value)

        category = ft.RadioGroup(
            value=prompt.category.value, on_change=on_category,
            content=ft.Column([ft.Radio(value=c.value, label=label)
                               for c, label in state.CATEGORIES], spacing=0))
        reason = text_field(shell, REASON_LABEL, value=prompt.reason, multiline=True,
                            max_length=state.MAX_REASON)
        password = text_field(shell, PASSWORD_LABEL, password=True) if prompt.password \
            else None

        def resolve(value: VetoAnswer | None) -> None:
            if not answer.done():
                answer.set_result(value)

        def confirm(e: Any) -> None:
            resolve(VetoAnswer(chosen["category"], reason.value or "",
                               (password.value or "") if password is not None else ""))

        controls: list[ft.Control] = [
            ft.Text(prompt.alert.body),
            ft.Text("Category", weight=ft.FontWeight.BOLD), category, reason]
        if password is not None:
            password.on_submit = confirm
            password.autofocus = True
            controls.append(password)
        if prompt.error:
            controls.append(ft.Semantics(identifier="veto-dialog-error", container=True,
                                         label=prompt.error, content=ft.Text(
                                             prompt.error, color=ft.Colors.RED_700)))
        dialog = ft.AlertDialog(
            modal=True, title=ft.Text(f"Veto {prompt.approval_id}?"),
            content=ft.Column(controls, tight=True, spacing=8, width=380),
            scrollable=True,  # a phone with its keyboard up
            actions=[ft.TextButton("Cancel", on_click=lambda e: resolve(None)),
                     ft.FilledButton("Confirm veto", on_click=confirm,
                                     style=ft.ButtonStyle(bgcolor=ft.Colors.RED_700,
                                                          color=ft.Colors.WHITE))],
            on_dismiss=lambda e: resolve(None))
        shell.dialog(dialog)
        with contextlib.suppress(Exception):
            shell.page.update()
        try:
            return await answer
        finally:
            # A field removed with the dialog never reports losing the focus.
            shell.typing = False
            with contextlib.suppress(Exception):
                shell.page.pop_dialog()
                shell.page.update()
