"""Errors shown under their field (``wizard-error-title``, ``veto-error-reason``...), kept
in step with the form as the governor types: each stays until its field is fixed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import flet as ft

from governor_app.views.screen import Screen as Shell


class FieldErrors:
    def __init__(self, shell: Shell, prefix: str,
                 visible: Callable[[], dict[str, str]]) -> None:
        self.shell, self.prefix, self.visible = shell, prefix, visible
        self.slots: dict[str, ft.Semantics] = {}

    def slot(self, name: str) -> ft.Control:
        """Where ``name``'s error shows: put it right under the field."""
        message = self.visible().get(name, "")
        slot = ft.Semantics(identifier=f"{self.prefix}-error-{name}", label=message or None,
                            container=True, visible=bool(message),
                            content=ft.Text(message, color=ft.Colors.RED_700, size=12))
        self.slots[name] = slot
        return slot

    def refresh(self) -> None:
        """Update the slots whose message changed (only those: a keystroke must not diff
        the whole page)."""
        shown = self.visible()
        for name, slot in self.slots.items():
            message = shown.get(name, "")
            if (slot.label or "") == message:
                continue
            slot.label, slot.visible = message or None, bool(message)
            if isinstance(slot.content, ft.Text):
                slot.content.value = message
            slot.update()

    def changed(self, edited: Callable[[str], None], names: Iterable[str],
                update: Callable[[Any], None]) -> Callable[[Any], None]:
        """An ``on_change`` handler: apply ``update(event)``, tell the form each of
        ``names`` was edited, then show what is wrong now (and clear what is fixed)."""
        touched = tuple(names)

        def handler(e: Any) -> None:
            update(e)
            for name in touched:
                edited(name)
            self.refresh()
        return handler
