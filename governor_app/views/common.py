"""Small building blocks shared by the screens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flet as ft


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


def labelled(identifier: str, label: str, content: ft.Control) -> ft.Control:
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


def text_field(shell: Any, label: str, *, value: str = "", multiline: bool = False,
               password: bool = False, on_change: Callable[[Any], Any] | None = None,
               max_length: int | None = None, prefix_icon: ft.IconData | None = None,
               on_submit: Callable[[Any], Any] | None = None) -> ft.TextField:
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
                        on_focus=focus, on_blur=blur)


def icon_button(icon: ft.IconData, name: str, on_click: Callable[[Any], Any]) -> ft.Control:
    """An icon-only button named ``name`` for assistive technology (and the tests); the
    tooltip shows the same words to a mouse user."""
    return ft.Semantics(label=name, button=True, exclude_semantics=True, container=True,
                        content=ft.IconButton(icon, tooltip=name, on_click=on_click))
