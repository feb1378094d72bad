"""Settings: notifications (the channels and why each is on or off, quiet hours with the
high-urgency override: applied at once), the sync interval (applied at once), the server
(from the next start; see ``governor_app.settings_change``), theme, sign-out; and the More
menu (phone)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import flet as ft

from governor_app.screen_state import DraftField, SettingsDraft
from governor_app.settings_change import (
    SettingsChange,
    apply_sync_interval,
    running_interval,
)
from governor_app.views.common import action_button, heading, labelled, text_field
from governor_app.views.screen import DESTINATIONS
from governor_app.views.screen import Screen as Shell

TOPICS = ("auth",)


def build(shell: Shell) -> ft.Control:
    # The interval shown (and compared on saving) is the one running now.
    saved = shell.preferences.value
    prefs = saved.with_(sync_interval=running_interval(shell.client, saved.sync_interval))
    draft = shell.state.settings_draft
    errors = ft.Column([], spacing=2)

    def set_(name: DraftField, cast: Callable[[Any], bool | str] = str
             ) -> Callable[[Any], None]:
        def handler(e: Any) -> None:
            draft.set(name, cast(e.control.value))
        return handler

    saved_values = asdict(prefs)

    def current(name: DraftField) -> Any:
        return draft.changes().get(name, saved_values[name])

    def save(e: object) -> None:
        try:
            interval = int(draft.sync_interval if draft.sync_interval is not None
                           else prefs.sync_interval)
        except (TypeError, ValueError):
            interval = -1
        new = prefs.with_(**{**draft.changes(), "sync_interval": interval})
        change = SettingsChange(prefs, new, shell.server_url,
                                shell.client.status().pending_count)
        problems = change.problems()
        errors.controls = [ft.Text(m, color=ft.Colors.RED_700) for m in problems.values()]
        if problems:
            shell.page.update()
            return
        # An interval left as it runs keeps the saved one (a variable may have set it).
        shell.preferences.save(new if change.interval_changed
                               else new.with_(sync_interval=saved.sync_interval))
        shell.state.settings_draft = SettingsDraft()
        shell.apply_theme()
        applied = change.interval_changed and apply_sync_interval(shell.client,
                                                                  new.sync_interval)
        if change.notifications_changed and shell.push is not None:
            shell.spawn(shell.push.apply_preferences(new))
        shell.snack(change.message(applied), seconds=8)
        shell.go("/settings")

    def theme(e: Any) -> None:
        shell.preferences.save(shell.preferences.value.with_(
            theme="dark" if e.control.value else "light"))
        shell.apply_theme()
        shell.page.update()

    channels = ft.Text("", size=13)
    stream = ft.Text("", size=13)
    push = shell.push
    if push is not None:
        def channel_text() -> str:
            return "\n".join(push.channel_lines(web=bool(shell.page.web),
                                                phone_os=_phone_os(shell.page)))
        channels.value, stream.value = channel_text(), push.stream_state()
        # The center starts (and connects) after the screen may have been drawn.
        shell.tickers += [(channels, channel_text), (stream, push.stream_state)]
    else:
        channels.value = "In-app banner: inactive (this app runs without push)"
    current_server = shell.server_url or "(the profile's)"
    who = _who(shell)
    account_text = ft.Text(who)
    account_line = labelled("settings-account", who, account_text)

    def refresh_account() -> None:
        # An account change (a refresh that changed the scopes) shows in place: rebuilding
        # the form would take the focus and the keys in flight from a field being typed in
        # (found in CI: a Server URL typed, the form rebuilt, then saved without it).
        account_line.label = account_text.value = _who(shell)

    shell.refreshers.append(refresh_account)
    form = ft.ListView([
        heading("Settings"),
        account_line,
        action_button("Sign out", lambda e: shell.spawn(shell.sign_out()),
                      icon=ft.Icons.LOGOUT),
        ft.Divider(),
        ft.Text("Appearance", weight=ft.FontWeight.BOLD),
        ft.Switch(label="Dark theme", value=prefs.theme == "dark", on_change=theme),
        ft.Divider(),
        ft.Text("Notifications", weight=ft.FontWeight.BOLD),
        ft.Semantics(identifier="notification-channels", container=True, content=channels),
        ft.Semantics(identifier="push-stream", container=True,
                     content=ft.Row([ft.Text("Event stream:", size=13), stream], wrap=True)),
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
        ft.Text("Notification settings apply as soon as you save.", size=12),
        ft.Divider(),
        ft.Text("Server", weight=ft.FontWeight.BOLD),
        labelled("settings-server", f"Connected to {current_server}",
                 ft.Text(f"Connected to {current_server}", size=13)),
        text_field(shell, "Server URL", value=current("server_url") or shell.server_url,
                   on_change=set_("server_url")),
        ft.Text("A new server is used from the next start, where you sign in to it: this "
                "device's cached requests and queued decisions belong to the current one.",
                size=12),
        text_field(shell, "Sync interval (seconds)", value=str(current("sync_interval")),
                   on_change=set_("sync_interval")),
        ft.Text("The sync interval applies as soon as you save.", size=12),
    ], spacing=8, expand=True)
    # Errors and the save button stay in view below the scrolling form.
    return ft.Column([form, errors,
                      action_button("Save settings", save, primary=True, icon=ft.Icons.SAVE)],
                     expand=True)


def _who(shell: Shell) -> str:
    account = shell.account
    return (f"Signed in as {account.username} ({', '.join(sorted(account.scopes))})"
            if account else "Not signed in")


def _phone_os(page: ft.Page) -> bool:
    return page.platform in (ft.PagePlatform.ANDROID, ft.PagePlatform.IOS)


def build_more(shell: Shell) -> ft.Control:
    return ft.Column([heading("More"), *[
        ft.ListTile(leading=ft.Icon(d.icon), title=ft.Text(d.label),
                    on_click=lambda e, r=d.route: shell.go(r))
        for d in DESTINATIONS if not d.on_phone_bar]])
