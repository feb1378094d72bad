"""Precedent seeds: browse and search offline, a seed's detail with its effectiveness, and
the creation wizard (conditions from choices, validated as the server does, queued)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flet as ft

from governor_app import addresses, state
from governor_app.seed_wizard import RuleField, SeedWizard, choice_label
from governor_app.views.common import (
    action_button,
    empty,
    heading,
    icon_button,
    labelled,
    not_found,
    pull_to_refresh,
    section,
    text_field,
)
from governor_app.views.field_errors import FieldErrors
from governor_app.views.screen import Screen as Shell

TOPICS = ("seeds", "outbox")


def _open(shell: Shell, seed_id: str, e: object) -> None:
    shell.go(addresses.seed(seed_id))


def build_list(shell: Shell) -> ft.Control:
    kept = shell.state.seeds
    rows = ft.ListView(expand=True, spacing=4)

    tiles: dict[state.SeedRow, ft.Control] = {}  # kept across refreshes, as for approvals

    def tile(r: state.SeedRow) -> ft.Control:
        if r not in tiles:
            tiles[r] = ft.Semantics(identifier=f"seed-{r.id}", content=ft.ListTile(
                title=ft.Text(f"{r.id} {r.title}"), subtitle=ft.Text(
                    f"{r.status} · {r.subtitle}"
                    + (" · auto-approves" if r.auto_approves else ""), size=12),
                on_click=partial(_open, shell, r.id), dense=True))
        return tiles[r]

    def fill() -> None:
        found = state.seed_rows(shell.client.seeds(kept.query.strip()))
        rows.controls = [tile(r) for r in found]
        if not found:
            rows.controls.append(empty(f"No seed matches {kept.query.strip()!r}."
                                       if kept.query.strip() else "No seeds on this device "
                                       "yet; they arrive with the next sync."))

    def on_search(e: Any) -> None:
        kept.query = e.control.value or ""
        fill()

    search = text_field(shell, "Search seeds", value=kept.query, on_change=on_search,
                        prefix_icon=ft.Icons.SEARCH)
    shell.shortcuts["/"] = lambda: shell.spawn(search.focus())
    shell.shortcuts["slash"] = shell.shortcuts["/"]
    fill()
    shell.refreshers.append(fill)
    shell.signature = lambda: shell.client.seeds(kept.query.strip())
    new = action_button("New seed", lambda e: shell.go("/seeds/new"), icon=ft.Icons.ADD,
                        disabled=not shell.can_decide)
    return ft.Column([heading("Precedent seeds", new), search, pull_to_refresh(shell, rows)],
                     expand=True, spacing=8)


def build_detail(shell: Shell, seed_id: str) -> ft.Control:
    back = icon_button(ft.Icons.ARROW_BACK, "Back to seeds",
                         on_click=lambda e: shell.go("/seeds"))
    seed = shell.client.seed(seed_id)
    shell.signature = lambda: shell.client.seed(seed_id)
    if seed is None:
        return not_found(shell, f"Seed {seed_id!r}", "/seeds", "Go to seeds")
    v = state.seed_detail_view(seed)
    bars: list[ft.Control] = [
        ft.Column([ft.Row([ft.Text(label, expand=True), ft.Text(f"{value * 100:.0f} %")]),
                   ft.ProgressBar(value=value, bar_height=14)], spacing=2)
        for label, value in v.chart]
    history = state.matches_over_time(seed.id, _recent_details(shell), shell.now())
    peak = max((n for _d, n in history), default=0) or 1
    columns: list[ft.Control] = [
        ft.Column([ft.Text(str(n), size=10),
                   ft.Container(height=4 + 60 * n / peak, width=22, bgcolor=ft.Colors.PRIMARY,
                                border_radius=3),
                   ft.Text(day, size=10)],
                  horizontal_alignment=ft.CrossAxisAlignment.CENTER, spacing=2,
                  alignment=ft.MainAxisAlignment.END)
        for day, n in history]
    over_time = labelled("seed-matches-over-time", "Full matches over the last 7 days: "
                         + ", ".join(f"{day} {n}" for day, n in history), ft.Row(columns, spacing=6,
                                                   vertical_alignment=ft.CrossAxisAlignment.END))
    return ft.ListView([
        ft.Row([back, ft.Text(f"{v.id} {v.title}", size=20, weight=ft.FontWeight.BOLD,
                              expand=True)]),
        labelled("seed-detail", f"Seed {v.id}", ft.Text(v.description)),
        labelled("seed-status", f"{v.status} · {v.auto_approve}",
                 ft.Text(f"{v.status} · {v.auto_approve}", italic=True)),
        *([action_button("Retire seed", lambda e: retire_dialog(shell, seed_id),
                         icon=ft.Icons.ARCHIVE_OUTLINED)]
          if state.may_retire(seed, shell.account) else []),
        section("Conditions", *[ft.Text(f"• {c}") for c in v.conditions], key="conditions"),
        section("Effectiveness", *[ft.Row([ft.Text(k, expand=True), ft.Text(val)])
                                   for k, val in v.metrics],
                labelled("seed-chart", "Match and veto rates", ft.Column(bars)),
                ft.Text("Full matches over the last 7 days (requests cached on this "
                        "device)", size=12),
                over_time, key="effectiveness"),
        ft.Text(v.created, size=12),
    ], spacing=8, expand=True)


def retire_dialog(shell: Shell, seed_id: str) -> None:
    reason = text_field(shell, "Why retire it (required)", multiline=True, max_length=2000)
    error = ft.Text("", color=ft.Colors.RED_700)

    async def retire(why: str) -> None:
        await shell.client.retire_seed(seed_id, why)
        shell.snack(f"Seed {seed_id} retired: it matches and auto-approves nothing from now "
                    "on.")

    def confirm(e: object) -> None:
        why = (reason.value or "").strip()
        if not why:
            error.value = "Say why the seed is retired: it is kept with the change."
            shell.page.update()
            return
        shell.close_dialog()
        shell.spawn(retire(why))  # a refusal or no server is said in a snack bar

    shell.dialog(ft.AlertDialog(
        modal=True, title=ft.Text(f"Retire {seed_id}?"),
        content=ft.Column([ft.Text("From now on it matches and auto-approves no request; "
                                   "its record and figures stay. This needs the server."),
                           reason, error], tight=True),
        actions=[ft.TextButton("Cancel", on_click=lambda e: shell.close_dialog()),
                 ft.FilledButton("Confirm retirement", on_click=confirm)]))


def _recent_details(shell: Shell, newest: int = 100) -> list[state.ApprovalDetail]:
    details = (shell.client.approval(a.id) for a in shell.client.approvals(limit=newest))
    return [d for d in details if d is not None]


def _rule_control(shell: Shell, wiz: SeedWizard, errors: FieldErrors,
                  rule: RuleField) -> list[ft.Control]:
    name = rule.name

    def changed(update: Callable[[Any], None]) -> Callable[[Any], None]:
        return errors.changed(wiz.edited, [name], update)

    if rule.kind == "flag":
        def flip(e: Any) -> None:
            (wiz.flags.add if e.control.value else wiz.flags.discard)(name)
        return [ft.Checkbox(label=rule.label, value=name in wiz.flags,
                            on_change=changed(flip)), errors.slot(name)]
    if rule.kind == "choices":
        picked = wiz.chosen.setdefault(name, set())

        def toggle(value: str) -> Any:
            return changed(lambda e: (picked.add if e.control.value
                                      else picked.discard)(value))
        boxes: list[ft.Control] = [ft.Checkbox(label=choice_label(name, c), value=c in picked,
                             on_change=toggle(c)) for c in rule.choices]
        return [ft.Text(rule.label, weight=ft.FontWeight.BOLD),
                ft.Row(boxes, wrap=True, spacing=4, run_spacing=0), errors.slot(name)]

    def typed(e: Any) -> None:
        wiz.typed[name] = e.control.value or ""
    return [text_field(shell, rule.label, value=wiz.typed.get(name, ""),
                       on_change=changed(typed)), errors.slot(name)]


def build_wizard(shell: Shell) -> ft.Control:
    back = icon_button(ft.Icons.ARROW_BACK, "Back to seeds",
                         on_click=lambda e: shell.go("/seeds"))
    if not shell.can_decide:  # its address opened directly: nothing to offer this account
        return ft.Column([ft.Row([back]), empty(
            "This account is read-only: creating a seed needs the governance:write scope.")])
    wiz = shell.state.seed_wizard
    wiz.schema = shell.client.seed_schema()  # the server's rules as last synced
    errors = FieldErrors(shell, "wizard", wiz.visible_errors)

    def rerender() -> None:
        shell.go("/seeds/new")

    def next_step(e: object) -> None:
        if wiz.next():
            rerender()
        else:
            errors.refresh()

    def prev_step(e: object) -> None:
        wiz.back()
        rerender()

    def create(e: object) -> None:
        if not wiz.ready():
            rerender()  # the first step with an error, each error at its field
            return
        draft = wiz.draft()
        if shell.decide(lambda: shell.client.create_seed(draft),
                        f"Seed {draft.title!r} queued; it is created when the server is "
                        "reachable.", then="/seeds"):
            shell.state.seed_wizard = SeedWizard()  # the next seed starts afresh

    def set_text(name: str) -> Any:
        return errors.changed(wiz.edited, [name],
                              lambda e: setattr(wiz, name, e.control.value or ""))

    step = wiz.step
    body: list[ft.Control]
    if step == 0:
        body = [text_field(shell, "Seed title", value=wiz.title, on_change=set_text("title")),
                errors.slot("title"),
                text_field(shell, "Seed description", value=wiz.description, multiline=True,
                           on_change=set_text("description")),
                errors.slot("description")]
    elif step == 1:
        body = [errors.slot("conditions")]
        # Each rule in a container the tests scroll to (a phone shows a few at a time).
        body.extend(ft.Semantics(identifier=f"wizard-rule-{rule.name}", container=True,
                                 content=ft.Column(_rule_control(shell, wiz, errors, rule),
                                                   spacing=4))
                    for rule in wiz.fields())
    elif step == 2:
        body = [ft.Switch(label="Auto-approve requests that fully match",
                          value=wiz.auto_approve,
                          on_change=lambda e: setattr(wiz, "auto_approve",
                                                      bool(e.control.value))),
                ft.Text("Auto-approved requests still enter the 24-hour veto window.",
                        size=12)]
    else:
        body = [labelled("seed-review", "Seed review", ft.Column(
            [ft.Text(line) for line in wiz.review()], spacing=4))]

    nav: list[ft.Control] = []
    if step > 0:
        nav.append(action_button("Previous step", prev_step))
    if step < len(wiz.STEPS) - 1:
        nav.append(action_button("Next step", next_step, primary=True))
    else:
        nav.append(action_button("Create seed", create, primary=True, icon=ft.Icons.CHECK))
    # The step buttons stay in view below the scrolling form, on a phone too.
    return ft.Column([
        ft.Row([back, ft.Text("New precedent seed", size=20, weight=ft.FontWeight.BOLD)]),
        labelled("wizard-step", f"Step {step + 1} of {len(wiz.STEPS)}: {wiz.STEPS[step]}",
                 ft.Text(f"Step {step + 1} of {len(wiz.STEPS)}: {wiz.STEPS[step]}")),
        ft.ListView(body, spacing=8, expand=True),
        ft.Row(nav, spacing=8)], spacing=8, expand=True)
