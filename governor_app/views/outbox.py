"""Outbox and sync: what waits, what is being sent, what the server refused (with its
reason, and a way to decide again or discard), what is held for another account."""

from __future__ import annotations

from typing import Any

import flet as ft

from governor_app import addresses, state
from governor_app import format as fmt
from governor_app.views.common import (
    action_button,
    empty,
    heading,
    labelled,
    pull_to_refresh,
    section,
)
from governor_app.views.screen import Screen as Shell

TOPICS = ("outbox", "status")


def _status_key(shell: Shell) -> object:
    st = shell.client.status()
    return (st.online, st.pending_count, st.last_error, st.uploading,
            st.other_accounts_count)


def build(shell: Shell) -> ft.Control:
    status = shell.client.status()
    shell.signature = lambda: (shell.client.outbox(), _status_key(shell))

    def act(fn: Any, message: str) -> None:
        try:
            fn()
        except Exception as exc:  # InvalidDecision and friends: say it
            shell.snack(str(exc))
        else:
            shell.snack(message)
        shell.go("/outbox")

    def row_control(row: state.OutboxRow) -> ft.Control:
        def take_back(e: object) -> None:
            act(lambda: shell.client.cancel(row.id), f"{row.title}: taken back.")

        def again(e: object) -> None:
            act(lambda: shell.client.decide_again(row.id), f"{row.title}: queued again.")

        def discard(e: object) -> None:
            act(lambda: shell.client.discard(row.id), f"{row.title}: discarded.")

        buttons: list[ft.Control] = []
        if row.can_cancel:
            buttons.append(action_button("Take back", take_back))
        if row.can_decide_again:
            buttons.append(action_button("Decide again", again, primary=True))
        if row.error and row.approval_id:  # refused: the request may be decided anew
            approval_id = row.approval_id
            buttons.append(action_button("Open request",
                                         lambda e: shell.go(addresses.approval(approval_id))))
        if row.can_discard:
            buttons.append(action_button("Discard", discard))
        lines: list[ft.Control] = [ft.Text(row.title, weight=ft.FontWeight.BOLD),
                                   ft.Text(f"{row.state} · {row.subtitle}", size=12)]
        if row.error:
            lines.append(ft.Text(row.error, color=ft.Colors.RED_700))
        if row.changed:
            said_changed = "Changed since you decided: " + "; ".join(row.changed)
            lines.append(labelled(f"outbox-changed-{row.id}", said_changed, ft.Column(
                [ft.Text("Changed since you decided:",
                         size=12, weight=ft.FontWeight.BOLD),
                 *[ft.Text(line, size=12) for line in row.changed]], spacing=0)))
        if row.held_reason:
            lines.append(ft.Text(row.held_reason, italic=True))
        lines.append(ft.Row(buttons, wrap=True, spacing=6))
        said = row.error or row.held_reason
        return labelled(f"outbox-{row.id}", f"{row.title}: {row.state}"
                        + (f". {said}" if said else ""),
                        ft.Container(ft.Column(lines, spacing=2), padding=6))

    sections: list[ft.Control] = []
    for key, title, rows in state.outbox_sections(shell.client, shell.now()):
        if rows:
            sections.append(section(f"{title} ({len(rows)})", *[row_control(r) for r in rows],
                                    key=f"outbox-{key}"))
    others = state.others_line(status)
    if others:
        sections.append(labelled("outbox-others", others, ft.Text(others, italic=True)))
    if not sections:
        sections = [empty("Nothing waits: every decision made on this device has been "
                          "delivered.")]

    summary = (f"{'Online' if status.online else 'Offline'} · last synced "
               f"{fmt.age(status.last_synced_at, shell.now())} · {status.pending_count} "
               f"waiting")
    error = status.last_error or "No error."
    summary_text = ft.Text(summary)

    def live_summary() -> str:
        st = shell.client.status()
        return (f"{'Online' if st.online else 'Offline'} · last synced "
                f"{fmt.age(st.last_synced_at, shell.now())} · {st.pending_count} waiting")

    shell.tickers.append((summary_text, live_summary))
    return ft.Column([
        heading("Outbox and sync", action_button("Sync now",
                                                 lambda e: shell.spawn(shell.client.sync_now()),
                                                 icon=ft.Icons.SYNC, primary=True)),
        labelled("sync-summary", summary, summary_text),
        labelled("sync-last-error", f"Last error: {error}",
                 ft.Text(f"Last error: {error}", size=12,
                         color=ft.Colors.RED_700 if status.last_error else None)),
        pull_to_refresh(shell, ft.ListView(sections, expand=True, spacing=8))], expand=True)
