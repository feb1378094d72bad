"""Settings: server and sync interval (used from the next start), notifications with
quiet hours and the high-urgency override, theme, sign-out; and the More menu (phone)."""

from __future__ import annotations

from typing import Any

import flet as ft

from governor_app.views.common import action_button, heading, labelled, text_field
from governor_app.views.shell import DESTINATIONS, Shell

TOPICS = ("auth",)


def build(shell: Shell) -> ft.Control:
    prefs = shell.preferences.value
    draft: dict[str, Any] = dict(shell.memory.get("settings-draft") or {})
    errors = ft.Column([], spacing=2)

    def set_(name: str, cast: Any = str) -> Any:
        def handler(e: Any) -> None:
            draft[name] = cast(e.control.value)
            shell.memory["settings-draft"] = draft
        return handler

    def current(name: str) -> Any:
        return draft.get(name, getattr(prefs, name))

    def save(e: object) -> None:
        try:
            interval = int(draft.get("sync_interval", prefs.sync_interval))
        except (TypeError, ValueError):
            interval = -1
        new = prefs.with_(**{**draft, "sync_interval": interval})
        problems = new.errors()
        errors.controls = [ft.Text(m, color=ft.Colors.RED_700) for m in problems.values()]
        if problems:
            shell.page.update()
            return
        shell.preferences.save(new)
        shell.memory.pop("settings-draft", None)
        shell.apply_theme()
        shell.snack("Settings saved. The server URL and sync interval apply from the next "
                    "start.")
        shell.go("/settings")

    def theme(e: Any) -> None:
        new = prefs.with_(theme="dark" if e.control.value else "light")
        shell.preferences.save(new)
        shell.apply_theme()
        shell.page.update()

    account = shell.account
    who = (f"Signed in as {account.username} ({', '.join(sorted(account.scopes))})"
           if account else "Not signed in")
    return ft.ListView([
        heading("Settings"),
        labelled("settings-account", who, ft.Text(who)),
        action_button("Sign out", lambda e: shell.spawn(shell.sign_out()),
                      icon=ft.Icons.LOGOUT),
        ft.Divider(),
        ft.Text("Appearance", weight=ft.FontWeight.BOLD),
        ft.Switch(label="Dark theme", value=prefs.theme == "dark", on_change=theme),
        ft.Divider(),
        ft.Text("Notifications", weight=ft.FontWeight.BOLD),
        ft.Switch(label="Show notifications", value=current("notifications"),
                  on_change=set_("notifications", bool)),
        ft.Switch(label="Quiet hours", value=current("quiet_hours"),
                  on_change=set_("quiet_hours", bool)),
        ft.Row([text_field(shell, "Quiet from (HH:MM)", value=current("quiet_start"),
                           on_change=set_("quiet_start")),
                text_field(shell, "Quiet until (HH:MM)", value=current("quiet_end"),
                           on_change=set_("quiet_end"))], wrap=True),
        ft.Switch(label="Budget 95 % and violations break through quiet hours",
                  value=current("urgent_override"), on_change=set_("urgent_override", bool)),
        ft.Divider(),
        ft.Text("Server", weight=ft.FontWeight.BOLD),
        text_field(shell, "Server URL", value=current("server_url") or shell.server_url,
                   on_change=set_("server_url")),
        text_field(shell, "Sync interval (seconds)", value=str(current("sync_interval")),
                   on_change=set_("sync_interval")),
        errors,
        action_button("Save settings", save, primary=True, icon=ft.Icons.SAVE),
    ], spacing=8, expand=True)


def build_more(shell: Shell) -> ft.Control:
    return ft.Column([heading("More"), *[
        ft.ListTile(leading=ft.Icon(d.icon), title=ft.Text(d.label),
                    on_click=lambda e, r=d.route: shell.go(r))
        for d in DESTINATIONS if not d.on_phone_bar]])
