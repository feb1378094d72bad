"""Small building blocks shared by the screens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flet as ft

from governor_app.pull import PullGesture


def heading(text: str, *actions: ft.Control) -> ft.Control:
    return ft.Row([ft.Semantics(header=True, content=ft.Text(text, size=22,
                                                             weight=ft.FontWeight.BOLD),
                                expand=True), *actions],
                  vertical_alignment=ft.CrossAxisAlignment.CENTER)


def section(title: str, *controls: ft.Control, key: str | None = None) -> ft.Control:
    body = ft.Card(ft.Container(ft.Column([ft.Text(title, weight=ft.FontWeight.BOLD),
                                           *controls], spacing=6),
                                padding=12))
    return ft.Semantics(identifier=key, container=True, content=body) if key else body


def labelled(identifier: str, label: str, content: ft.Control) -> ft.Semantics:
    """A read-only value the browser tests find by ``identifier`` and read by ``label``."""
    return ft.Semantics(identifier=identifier, label=label, container=True, content=content)


def action_button(label: str, on_click: Callable[[Any], Any], *, icon: ft.IconData | None = None,
                  primary: bool = False, danger: bool = False, disabled: bool = False,
                  identifier: str | None = None) -> ft.Control:
    """A button whose visible text is its accessible name (what tests select by)."""
    style = ft.ButtonStyle(bgcolor=ft.Colors.RED_700, color=ft.Colors.WHITE) if danger else None
    cls = ft.FilledButton if primary or danger else ft.OutlinedButton
    button = cls(label, icon=icon, on_click=on_click, disabled=disabled, style=style)
    if identifier:
        return ft.Semantics(identifier=identifier, content=button)
    return button


def empty(text: str) -> ft.Control:
    return ft.Container(ft.Text(text, italic=True), padding=24)


def not_found(shell: Any, what: str, back: str, back_label: str) -> ft.Control:
    """An address this device cannot show: say so and offer a way back (never another
    screen in its place, which would hide that the link was wrong or not yet synced)."""
    return ft.Semantics(identifier="not-found", container=True, content=ft.Column([
        heading("Not found on this device"),
        empty(f"{what} is not on this device. It may not have synced yet, or the address "
              "may be wrong: sync, then open it again."),
        ft.Row([action_button("Go back", lambda e: shell.back(back)),
                action_button(back_label, lambda e: shell.go(back), primary=True)],
               wrap=True)]))


def text_field(shell: Any, label: str, *, value: str = "", multiline: bool = False,
               password: bool = False, on_change: Callable[[Any], Any] | None = None,
               max_length: int | None = None, prefix_icon: ft.IconData | None = None,
               on_submit: Callable[[Any], Any] | None = None,
               autofocus: bool = False) -> ft.TextField:
    """A text field whose label is its accessible name; while it has focus the keyboard
    shortcuts (A, V, /) stay off so typing never approves anything."""
    def focus(e: Any) -> None:
        shell.typing = True

    def blur(e: Any) -> None:
        shell.typing = False

    return ft.TextField(label=label, value=value, multiline=multiline,
                        min_lines=3 if multiline else None, password=password,
                        can_reveal_password=password, on_change=on_change,
                        max_length=max_length, prefix_icon=prefix_icon, on_submit=on_submit,
                        on_focus=focus, on_blur=blur, autofocus=autofocus)


def icon_button(icon: ft.IconData, name: str, on_click: Callable[[Any], Any]) -> ft.Control:
    """An icon-only button named ``name`` for assistive technology (and the tests); the
    tooltip shows the same words to a mouse user."""
    return ft.Semantics(label=name, button=True, exclude_semantics=True, container=True,
                        content=ft.IconButton(icon, tooltip=name, on_click=on_click))


def pull_to_refresh(shell: Any, listed: ft.ListView,
                    on_scroll: Callable[[ft.OnScrollEvent], None] | None = None) -> ft.Control:
    """``listed`` in a control where a drag down from its top syncs with the server: past
    the top of a list longer than the screen (its overscroll), or anywhere on a list too
    short to scroll (Flutter gives such a list no drag, so the detector around it has it).
    ``on_scroll``: the list's own handler, still called for every event."""
    gesture = PullGesture()

    def pulled() -> None:
        async def refresh() -> None:
            await shell.client.sync_now()
            shell.snack("Refreshed: this list is up to date with the server.")
            shell.page.update()
        shell.spawn(refresh())

    def scrolled(e: ft.OnScrollEvent) -> None:
        if gesture.feed(e.event_type.value, e.overscroll):
            pulled()
        elif on_scroll is not None:
            on_scroll(e)
        else:
            ft.context.disable_auto_update()  # nothing changed: no diff of the page

    def dragged(kind: str, down: float | None = None) -> None:
        # A drag down is the overscroll a scrolling list would report (negative: past the
        # top), so one gesture rule serves both.
        if gesture.feed(kind, None if down is None else -down):
            pulled()
        else:
            ft.context.disable_auto_update()

    listed.on_scroll = scrolled
    return ft.GestureDetector(
        content=listed, expand=True, drag_interval=50,
        on_vertical_drag_start=lambda e: dragged("start"),
        on_vertical_drag_update=lambda e: dragged("overscroll", e.primary_delta or 0.0),
        on_vertical_drag_end=lambda e: dragged("end"))
