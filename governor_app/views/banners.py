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

from governor_app import state
from governor_app.push import (
    VISIBLE_BANNERS,
    BannerView,
    PushService,
    VetoAnswer,
    VetoPrompt,
)
from governor_app.views.common import icon_button, text_field
from governor_app.views.shell import Shell

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
        self._unsubscribe = self.push.subscribe(self._on_change)
        self._unregister = self.push.register(self)
        self.render()
        return self.host

    def close(self) -> None:
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
        cards: list[ft.Control] = [self._card(i, v) for i, v in
                                   enumerate(views[:VISIBLE_BANNERS])]
        hidden = len(views) - VISIBLE_BANNERS
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
            ft.Text(view.body, size=13, color=ft.Colors.BLACK),
            *([ft.Text(view.reference, size=11, color=ft.Colors.GREY_800)]
              if view.reference and view.reference not in view.body else []),
            ft.Row(buttons, wrap=True, spacing=6),
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

    async def hold_veto(self, approval_id: str, seconds: float) -> bool:
        """The undo window of a veto confirmed from a banner: a snack bar with "Undo veto"
        for ``seconds``; True when it ran out (queue the veto), False when taken back."""
        taken_back: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def undo() -> None:
            if not taken_back.done():
                taken_back.set_result(True)

        self.shell.snack(f"Veto of {approval_id} is held on this device for "
                         f"{seconds:.0f} s before it is queued.", action="Undo veto",
                         on_action=undo, seconds=seconds)
        with contextlib.suppress(Exception):
            self.shell.page.update()
        try:
            await asyncio.wait_for(asyncio.shield(taken_back), seconds)
        except TimeoutError:
            return True
        return False

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
