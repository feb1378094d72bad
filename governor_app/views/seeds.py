"""Precedent seeds: browse and search offline, a seed's detail with its effectiveness, and
the creation wizard (conditions from choices, validated as the server does, queued)."""

from __future__ import annotations

from functools import partial
from typing import Any

import flet as ft

from governor_app import state
from governor_app.views.common import (
    action_button,
    empty,
    heading,
    icon_button,
    labelled,
    section,
    text_field,
)
from governor_app.views.shell import Shell

TOPICS = ("seeds", "outbox")


def _open(shell: Shell, seed_id: str, e: object) -> None:
    shell.go(f"/seeds/{seed_id}")


def build_list(shell: Shell) -> ft.Control:
    mem: dict[str, Any] = shell.memory.setdefault("seeds", {"query": ""})
    rows = ft.ListView(expand=True, spacing=4)

    tiles: dict[state.SeedRow, ft.Control] = {}  # kept across refreshes, as for approvals

    def tile(r: state.SeedRow) -> ft.Control:
        if r not in tiles:
            tiles[r] = ft.Semantics(identifier=f"seed-{r.id}", content=ft.ListTile(
                title=ft.Text(f"{r.id} {r.title}"), subtitle=ft.Text(
                    f"{r.status} · {r.subtitle}"
                    + (" · auto-approves" if r.auto_approve else ""), size=12),
                on_click=partial(_open, shell, r.id), dense=True))
        return tiles[r]

    def fill() -> None:
        found = state.seed_rows(shell.client.seeds(mem["query"].strip()))
        rows.controls = [tile(r) for r in found]
        if not found:
            rows.controls.append(empty(f"No seed matches {mem['query'].strip()!r}."
                                       if mem["query"].strip() else "No seeds on this device "
                                       "yet; they arrive with the next sync."))

    def on_search(e: Any) -> None:
        mem["query"] = e.control.value or ""
        fill()

    search = text_field(shell, "Search seeds", value=mem["query"], on_change=on_search,
                        prefix_icon=ft.Icons.SEARCH)
    shell.shortcuts["/"] = lambda: shell.spawn(search.focus())
    shell.shortcuts["slash"] = shell.shortcuts["/"]
    fill()
    shell.refreshers.append(fill)
    shell.signature = lambda: shell.client.seeds(mem["query"].strip())
    new = action_button("New seed", lambda e: shell.go("/seeds/new"), icon=ft.Icons.ADD,
                        disabled=not shell.can_decide)
    return ft.Column([heading("Precedent seeds", new), search, rows], expand=True, spacing=8)


def build_detail(shell: Shell, seed_id: str) -> ft.Control:
    back = icon_button(ft.Icons.ARROW_BACK, "Back to seeds",
                         on_click=lambda e: shell.go("/seeds"))
    seed = shell.client.seed(seed_id)
    shell.signature = lambda: shell.client.seed(seed_id)
    if seed is None:
        return ft.Column([ft.Row([back]), empty(f"Seed {seed_id!r} is not on this device.")])
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
    over_time = labelled("seed-matches-over-time", "Matches over the last 7 days: " + ", ".join(
        f"{day} {n}" for day, n in history), ft.Row(columns, spacing=6,
                                                   vertical_alignment=ft.CrossAxisAlignment.END))
    return ft.ListView([
        ft.Row([back, ft.Text(f"{v.id} {v.title}", size=20, weight=ft.FontWeight.BOLD,
                              expand=True)]),
        labelled("seed-detail", f"Seed {v.id}", ft.Text(v.description)),
        ft.Text(f"{v.status} · {v.auto_approve}", italic=True),
        section("Conditions", *[ft.Text(f"• {c}") for c in v.conditions], key="conditions"),
        section("Effectiveness", *[ft.Row([ft.Text(k, expand=True), ft.Text(val)])
                                   for k, val in v.metrics],
                labelled("seed-chart", "Match and veto rates", ft.Column(bars)),
                ft.Text("Matches over the last 7 days (requests cached on this device)",
                        size=12),
                over_time, key="effectiveness"),
        ft.Text(v.created, size=12),
    ], spacing=8, expand=True)


def _recent_details(shell: Shell, newest: int = 100) -> list[state.ApprovalDetail]:
    details = (shell.client.approval(a.id) for a in shell.client.approvals(limit=newest))
    return [d for d in details if d is not None]


def build_wizard(shell: Shell) -> ft.Control:
    wiz: state.SeedWizard = shell.memory.setdefault("seed-wizard", state.SeedWizard())
    back = icon_button(ft.Icons.ARROW_BACK, "Back to seeds",
                         on_click=lambda e: shell.go("/seeds"))
    errors = ft.Column([], spacing=2)

    def rerender() -> None:
        shell.go("/seeds/new")

    def next_step(e: object) -> None:
        if wiz.next():
            rerender()
        else:
            errors.controls = [ft.Text(m, color=ft.Colors.RED_700)
                               for m in wiz.errors(wiz.step).values()]
            shell.page.update()

    def prev_step(e: object) -> None:
        wiz.back()
        rerender()

    def create(e: object) -> None:
        problems = wiz.errors()
        if problems:
            errors.controls = [ft.Text(m, color=ft.Colors.RED_700) for m in problems.values()]
            shell.page.update()
            return
        draft = wiz.draft()
        if shell.decide(lambda: shell.client.create_seed(draft),
                        f"Seed {draft.title!r} queued; it is created when the server is "
                        "reachable.", then="/seeds"):
            shell.memory.pop("seed-wizard", None)

    def setter(name: str) -> Any:
        return lambda e: setattr(wiz, name, e.control.value or "")

    def toggle(group: set[str], value: str) -> Any:
        def handler(e: Any) -> None:
            (group.add if e.control.value else group.discard)(value)
        return handler

    step = wiz.step
    body: list[ft.Control]
    if step == 0:
        body = [text_field(shell, "Seed title", value=wiz.title, on_change=setter("title"),
                           max_length=200),
                text_field(shell, "Seed description", value=wiz.description, multiline=True,
                           on_change=setter("description"), max_length=4000)]
    elif step == 1:
        body = [ft.Text("Industries", weight=ft.FontWeight.BOLD),
                ft.Row([ft.Checkbox(label=state.fmt.humanise(i), value=i in wiz.industries,
                                    on_change=toggle(wiz.industries, i))
                        for i in state.INDUSTRIES], wrap=True),
                ft.Text("Capabilities the agent may stay within", weight=ft.FontWeight.BOLD),
                ft.Column([ft.Checkbox(label=c, value=c in wiz.capabilities,
                                       on_change=toggle(wiz.capabilities, c))
                           for c in state.CAPABILITY_CHOICES], spacing=0),
                text_field(shell, "Daily token budget at most", value=wiz.max_daily_tokens,
                           on_change=setter("max_daily_tokens")),
                text_field(shell, "Monthly cost at most (USD)", value=wiz.max_monthly_cost,
                           on_change=setter("max_monthly_cost")),
                ft.Checkbox(label="No dangerous capabilities", value=wiz.no_dangerous,
                            on_change=lambda e: setattr(wiz, "no_dangerous",
                                                        bool(e.control.value))),
                ft.Checkbox(label="The WASM module is valid", value=wiz.wasm_valid,
                            on_change=lambda e: setattr(wiz, "wasm_valid",
                                                        bool(e.control.value)))]
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
        ft.ListView([*body, errors], spacing=8, expand=True),
        ft.Row(nav, spacing=8)], spacing=8, expand=True)
