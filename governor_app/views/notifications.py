"""Notification centre: every event grouped by type, unread first to the eye, each with
its actions (open, approve, veto) working offline through the outbox."""

from __future__ import annotations

import flet as ft

from governor_app import addresses, state
from governor_app.views.approvals import approve_dialog
from governor_app.views.common import action_button, empty, heading, labelled, pull_to_refresh
from governor_app.views.screen import Screen as Shell
from sync.models import ApprovalStatus

TOPICS = ("notifications", "approvals", "outbox")


def build(shell: Shell) -> ft.Control:
    items = shell.client.notifications()
    shell.signature = lambda: (shell.client.notifications(), shell.client.outbox())
    groups = state.notification_groups(items, shell.now())
    unread = state.unread_count(items)

    def open_row(row: state.NotificationRow) -> None:
        shell.client.mark_read(row.id)
        if row.approval_id:
            shell.go(addresses.approval(row.approval_id))
        else:
            shell.go(shell.route)

    def mark_all(e: object) -> None:
        for n in items:
            if not n.read:
                shell.client.mark_read(n.id)
        shell.go("/notifications")

    def row_control(row: state.NotificationRow) -> ft.Control:
        def on_open(e: object) -> None:
            open_row(row)

        buttons: list[ft.Control] = [action_button("Open", on_open)]
        approval = shell.client.approval(row.approval_id) if row.approval_id else None
        if approval is not None:
            approval_id = approval.id
            actions = state.allowed_actions(approval, shell.account, shell.now())

            def on_approve(e: object) -> None:
                shell.client.mark_read(row.id)
                approve_dialog(shell, approval_id)

            def on_veto(e: object) -> None:
                shell.client.mark_read(row.id)
                shell.go(addresses.veto(approval_id))

            if actions.approve:
                buttons.append(action_button("Approve", on_approve))
            if actions.veto:
                buttons.append(action_button("Veto", on_veto, danger=True))
            elif approval.pending_decision is None and \
                    approval.status == ApprovalStatus.VETOED:
                buttons.append(ft.Text("Vetoed", italic=True, size=12))
        title = ft.Text(row.title, weight=None if row.read else ft.FontWeight.BOLD)
        lead = ft.Icon(ft.Icons.PRIORITY_HIGH if row.urgent else ft.Icons.CIRCLE,
                       size=14 if not row.urgent else 18,
                       color=ft.Colors.RED_700 if row.urgent
                       else (ft.Colors.BLUE_700 if not row.read else ft.Colors.TRANSPARENT))
        return ft.Semantics(identifier=f"notification-{row.id}", container=True,
                            label=("Unread: " if not row.read else "") + row.title,
                            content=ft.Container(ft.Column([
                                ft.Row([lead, ft.Container(title, expand=True),
                                        ft.Text(row.subtitle, size=11)]),
                                ft.Row(buttons, wrap=True, spacing=6)], spacing=4),
                                padding=ft.Padding.symmetric(vertical=6, horizontal=4)))

    body: list[ft.Control] = []
    for group, rows in groups:
        body.append(ft.Text(f"{group} ({len(rows)})", weight=ft.FontWeight.BOLD, size=15))
        body += [row_control(r) for r in rows]
        body.append(ft.Divider())
    if not body:
        body = [empty("No notifications yet. Events arrive while online and are fetched "
                      "after a time offline.")]
    return ft.Column([
        heading("Notifications", action_button("Mark all read", mark_all,
                                               icon=ft.Icons.DONE_ALL, disabled=unread == 0)),
        labelled("notifications-unread", f"{unread} unread",
                 ft.Text(f"{unread} unread", size=12)),
        pull_to_refresh(shell, ft.ListView(body, expand=True, spacing=2))], expand=True)
