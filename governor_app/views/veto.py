"""Veto: countdown to the server's deadline, category, reason with a counter, attachments
(limits shown before sending), confirmation, the step-up check, then the undo window."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from functools import partial
from typing import Any

import flet as ft

from governor_app import addresses, state
from governor_app import format as fmt
from governor_app.views.common import (
    action_button,
    empty,
    icon_button,
    labelled,
    not_found,
    text_field,
)
from governor_app.views.field_errors import FieldErrors
from governor_app.views.screen import Screen as Shell

TOPICS = ()  # a form being written is never re-rendered under the governor's fingers


def _ignore_event(fn: Callable[[int], None], index: int, e: object) -> None:
    fn(index)


def build(shell: Shell, approval_id: str) -> ft.Control:
    detail = shell.client.approval(approval_id)
    back = icon_button(ft.Icons.ARROW_BACK, "Back to the request",
                         on_click=lambda e: shell.go(addresses.approval(approval_id)))
    if detail is None:
        return not_found(shell, f"Request {approval_id!r}", "/approvals", "Go to approvals")
    actions = state.allowed_actions(detail, shell.account, shell.now())
    if not actions.veto:
        return ft.Column([ft.Row([back]), empty(actions.reason or "No veto is possible.")])
    form = shell.state.veto_form(approval_id)

    countdown = ft.Text(fmt.countdown(detail.veto_deadline, shell.now()), size=24,
                        weight=ft.FontWeight.BOLD)
    deadline = detail.veto_deadline
    if deadline is not None:
        shell.tickers.append((countdown, lambda: fmt.countdown(deadline, shell.now())))
    else:
        countdown.value = "Pending approval: a veto now stops it before any window opens"
        countdown.size = 14

    errors = FieldErrors(shell, "veto", form.visible_errors)
    counter = ft.Text(form.counter, size=12)
    files = ft.Column([], spacing=2)
    step_up = text_field(shell, "Your password (step-up check)", password=True,
                         on_change=errors.changed(form.shown.edited, ["step_up"],
                                                  lambda e: None)) \
        if shell.step_up_for_veto else None

    def show_files() -> None:
        files.controls = [
            ft.Row([ft.Icon(ft.Icons.ATTACH_FILE, size=16), ft.Text(line, expand=True),
                    icon_button(ft.Icons.CLOSE, f"Remove {form.attachments[i].name}",
                                partial(_ignore_event, remove, i))])
            for i, line in enumerate(form.attachment_lines())]
        files.controls.append(ft.Text(f"{state.ATTACHMENT_LIMITS} Used: "
                                      f"{fmt.size(form.total_bytes)}.", size=12))

    def remove(index: int) -> None:
        form.remove_attachment(index)
        show_files()
        shell.page.update()

    def on_category(e: Any) -> None:
        form.category = state.VetoCategory(e.control.value)

    def on_reason(e: Any) -> None:
        form.reason = e.control.value or ""
        counter.value = form.counter
        counter.color = ft.Colors.RED_700 if len(form.reason) > state.MAX_REASON else None
        counter.update()

    async def pick(e: object) -> None:
        if shell.file_picker is None:
            shell.file_picker = ft.FilePicker()
        picked = await shell.file_picker.pick_files(
            dialog_title="Attach supporting documents", allow_multiple=True, with_data=True)
        problems = []
        for f in picked:
            data = f.bytes or b""
            kind = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            problem = form.add_attachment(f.name, kind, data)
            if problem:
                problems.append(problem)
        show_files()
        if problems:
            shell.snack(" ".join(problems))
        shell.page.update()

    def submit(e: object) -> None:
        problems = form.errors()
        form.shown.meet(problems)
        errors.refresh()
        if problems:
            return
        shell.dialog(ft.AlertDialog(
            modal=True, title=ft.Text(f"Veto {approval_id}?"),
            content=ft.Text(f"Category {form.category}. The agent will not be deployed. "
                            f"You have {shell.undo_seconds:.0f} seconds to undo before the "
                            "veto leaves this device."),
            actions=[ft.TextButton("Cancel", on_click=lambda e: shell.close_dialog()),
                     ft.FilledButton("Confirm veto", on_click=confirm,
                                     style=ft.ButtonStyle(bgcolor=ft.Colors.RED_700,
                                                          color=ft.Colors.WHITE))]))

    async def confirm(e: object) -> None:
        shell.close_dialog()
        if step_up is not None:
            try:
                ok = await shell.client.confirm_identity(step_up.value or "")
            except Exception as exc:  # offline with no verifier kept: say so
                form.shown.refuse("step_up", str(exc))
                errors.refresh()
                return
            if not ok:
                form.shown.refuse("step_up", "The step-up check failed: type your password "
                                             "again to veto.")
                errors.refresh()
                return
        category = form.category or state.VetoCategory.OTHER
        reason, attachments = form.reason, list(form.attachments)

        def queue() -> object:
            entry = shell.client.veto(approval_id, category, reason, attachments or None)
            # Queued: the form is done. Until then an undo opens it again as it was
            # (category, reason, attachments).
            shell.state.veto_forms.pop(approval_id, None)
            return entry

        shell.hold_veto(approval_id, queue)

    show_files()
    category = ft.RadioGroup(
        value=form.category.value if form.category else None,
        on_change=errors.changed(form.shown.edited, ["category"], on_category),
        content=ft.Column([ft.Radio(value=c.value, label=label)
                           for c, label in state.CATEGORIES], spacing=0))
    reason = text_field(shell, "Reason for the veto", value=form.reason, multiline=True,
                        on_change=errors.changed(form.shown.edited, ["reason"], on_reason))
    body: list[ft.Control] = [
        ft.Row([back, ft.Text(f"Veto {approval_id}", size=20, weight=ft.FontWeight.BOLD)]),
        ft.Text(state.agent_name(detail.agent)),
        labelled("veto-deadline", "Time left to veto", countdown),
        ft.Text("Category", weight=ft.FontWeight.BOLD),
        category,
        errors.slot("category"),
        reason,
        errors.slot("reason"),
        labelled("reason-counter", "Characters used", counter),
        ft.Text("Attachments", weight=ft.FontWeight.BOLD),
        ft.Semantics(identifier="veto-attachments", container=True, content=files),
        action_button("Add attachment", pick, icon=ft.Icons.ATTACH_FILE),
    ]
    if step_up is not None:
        body += [step_up, errors.slot("step_up")]
    # The veto button stays in view below the scrolling form.
    return ft.Column([ft.ListView(body, spacing=8, expand=True),
                      action_button("Veto this request", submit, danger=True,
                                    icon=ft.Icons.BLOCK)], expand=True)
