"""Approvals: the filtered, searchable list and a request's detail with its actions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import flet as ft

from governor_app import addresses, state
from governor_app import format as fmt
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
from governor_app.views.screen import Screen as Shell
from sync.facade import ApprovalFilter

TOPICS = ("approvals", "outbox")
# Rows built per page: a screen and a half on a desktop, two on a phone. Each change of
# filter or search sends only these; scrolling near the end (or "Show more") adds the next.
PAGE_ROWS = 20
# How close to the end of the list (logical pixels) a scroll loads the next page.
LOAD_AHEAD_PX = 400


def open_filtered(shell: Shell, filter: ApprovalFilter) -> None:
    """Open the list showing ``filter`` (a dashboard figure leads here), search cleared."""
    shell.state.approvals.open(filter)
    shell.go("/approvals")


def build_list(shell: Shell) -> ft.Control:
    # The list's filter, search and length, kept while the governor goes elsewhere.
    listed = shell.state.approvals

    def current() -> state.ApprovalListView:
        return state.approval_list_view(shell.client, listed.filter, listed.query,
                                        limit=listed.rows(PAGE_ROWS))

    shown: list[state.ApprovalListView] = [current()]

    def new_list() -> ft.ListView:
        return ft.ListView(expand=True, spacing=4, scroll_interval=100)

    # The list control; replaced by a new one (scrolled to the top) when the list starts
    # again while scrolled down.
    rows: list[ft.ListView] = []
    # Rows still listed keep their controls: a tap that lands while the list refreshes (a
    # keystroke in the search, a sync) still reaches a live control, and less is sent.
    tiles: dict[state.ApprovalRow, ft.Control] = {}
    # The countdowns of the rows listed now (the shell ticks them every second).
    ticking: list[tuple[ft.Text, Callable[[], str]]] = []
    more = action_button("Show more", lambda e: show_more())
    count = ft.Text(shown[0].shown, size=12)

    def fill(v: state.ApprovalListView) -> None:
        shown[0] = v
        count.value = v.shown
        kept = {r: tiles[r] for r in v.rows if r in tiles}
        for entry in ticking:
            with contextlib.suppress(ValueError):
                shell.tickers.remove(entry)
        ticking.clear()
        tiles.clear()
        for r in v.rows:
            tiles[r] = kept.get(r) or approval_tile(shell, r)
            countdown = _countdown_of(shell, r, tiles[r])
            if countdown is not None:
                ticking.append(countdown)
        shell.tickers.extend(ticking)
        controls = list(tiles.values())
        if v.empty:
            controls.append(empty(v.empty))
        if v.more:
            controls.append(more)
        rows[0].controls = controls

    def refresh_rows() -> None:
        fill(current())

    def show_more() -> None:
        listed.more(PAGE_ROWS)
        refresh_rows()

    # Where the list is scrolled to, as last reported by the client.
    offset = [0.0]

    def start_again() -> None:
        """A new filter or search: one page, from the top."""
        listed.start_again()
        if offset[0] > 0:
            # A new list control, which starts at the top. The same one cut to a page while
            # scrolled far down would be clamped to its new end, and that scroll would load
            # the next page; scroll_to(0) races with the rows sent and with the governor's
            # next scroll.
            offset[0] = 0.0
            tiles.clear()  # the old list's controls stay with it
            rows[0] = new_list()
            page_column.controls[-1] = pull_to_refresh(shell, rows[0], on_scroll)
        refresh_rows()

    def on_scroll(e: ft.OnScrollEvent) -> None:
        offset[0] = e.pixels
        if shown[0].more and e.pixels >= e.max_scroll_extent - LOAD_AHEAD_PX:
            show_more()
        else:
            ft.context.disable_auto_update()  # nothing changed: no diff of the page

    def on_search(e: Any) -> None:
        listed.query = e.control.value or ""
        start_again()

    def on_filter(value: ApprovalFilter) -> None:
        listed.filter = value
        filters.controls = filter_buttons()
        start_again()

    def filter_buttons() -> list[ft.Control]:
        # Buttons that wrap onto a second line on a narrow phone: a segmented button
        # in a scrolling row showed "Decided" as a sliver at 390 px.
        return [ft.Semantics(selected=key == listed.filter, content=(
            ft.FilledButton(label, icon=ft.Icons.CHECK, on_click=lambda e, k=key: on_filter(k))
            if key == listed.filter else
            ft.OutlinedButton(label, on_click=lambda e, k=key: on_filter(k))))
            for key, label in state.FILTERS]

    rows.append(new_list())
    search = text_field(shell, "Search requests", value=listed.query, on_change=on_search,
                        prefix_icon=ft.Icons.SEARCH)
    shell.shortcuts["/"] = lambda: shell.spawn(search.focus())
    shell.shortcuts["slash"] = shell.shortcuts["/"]
    filters = ft.Row(filter_buttons(), wrap=True, spacing=6, run_spacing=6)
    fill(shown[0])
    # A change in the client re-reads the rows shown, in place (the search keeps focus).
    shell.refreshers.append(refresh_rows)
    page_column = ft.Column([heading("Approvals"), filters,
                             search, labelled("approvals-shown", "Requests shown", count),
                             pull_to_refresh(shell, rows[0], on_scroll)], expand=True, spacing=8)
    return page_column


def approval_tile(shell: Shell, row: state.ApprovalRow) -> ft.Control:
    """One request in the list: few controls (a page of them is sent per change)."""
    trailing: ft.Control | None = None
    countdown = (ft.Text(fmt.countdown_short(row.deadline, shell.now()), size=11)
                 if row.deadline is not None else None)
    if row.pending:
        badge = ft.Container(ft.Text(row.pending, size=11, color=ft.Colors.BLACK),
                             bgcolor=ft.Colors.AMBER_200, border_radius=8,
                             padding=ft.Padding.symmetric(vertical=2, horizontal=6))
        trailing = badge if countdown is None else ft.Column(
            [badge, countdown], tight=True, spacing=2,
            horizontal_alignment=ft.CrossAxisAlignment.END)
    else:
        trailing = countdown
    tile = ft.Semantics(identifier=f"approval-{row.id}", content=ft.ListTile(
        title=ft.Text(row.title), subtitle=ft.Text(f"{row.status} · {row.subtitle}", size=12),
        trailing=trailing, on_click=lambda e: shell.go(addresses.approval(row.id)), dense=True))
    tile.data = countdown
    return tile


def _countdown_of(shell: Shell, row: state.ApprovalRow, tile: ft.Control
                  ) -> tuple[ft.Text, Callable[[], str]] | None:
    deadline = row.deadline
    if deadline is None or not isinstance(tile.data, ft.Text):
        return None
    return tile.data, lambda: fmt.countdown_short(deadline, shell.now())


def _refused(shell: Shell, approval_id: str) -> list[ft.Control]:
    """The governor's own decisions on this request that the server refused: what
    happened, why, and only the steps the app can take from here."""
    out: list[ft.Control] = []
    for row in state.refused_decisions(shell.client, approval_id, shell.now()):
        def again(e: object, entry_id: str = row.id, title: str = row.title) -> None:
            shell.decide(lambda: shell.client.decide_again(entry_id),
                         f"{title}: queued again on the request as it is now.")

        def discard(e: object, entry_id: str = row.id, title: str = row.title) -> None:
            shell.decide(lambda: shell.client.discard(entry_id), f"{title}: discarded.")

        buttons: list[ft.Control] = []
        if row.can_decide_again:
            buttons.append(action_button("Decide again", again, primary=True))
        if row.can_discard:
            buttons.append(action_button("Discard", discard))
        words = f"Your decision was refused: {row.title}. {row.error}"
        out.append(labelled("approval-refused", words, ft.Container(ft.Column([
            ft.Text(f"Refused by the server: {row.title}", weight=ft.FontWeight.BOLD,
                    color=ft.Colors.RED_800),
            ft.Text(row.error or "", color=ft.Colors.BLACK),
            ft.Row(buttons, wrap=True, spacing=6)], spacing=4, tight=True),
            bgcolor=ft.Colors.RED_50, padding=8, border_radius=8)))
    return out


def build_detail(shell: Shell, approval_id: str) -> ft.Control:
    detail = shell.client.approval(approval_id)
    shell.signature = lambda: (shell.client.approval(approval_id),
                               shell.held is not None,
                               shell.client.receipt(approval_id),
                               state.refused_decisions(shell.client, approval_id,
                                                       shell.now()))
    back = icon_button(ft.Icons.ARROW_BACK, "Back to approvals",
                         on_click=lambda e: shell.go("/approvals"))
    if detail is None:
        return not_found(shell, f"Request {approval_id!r}", "/approvals", "Go to approvals")
    v = state.approval_detail_view(detail, shell.account, shell.now())

    status_line: list[ft.Control] = [labelled("approval-status", f"Status: {v.status}",
                                              ft.Text(v.status, weight=ft.FontWeight.BOLD))]
    if v.pending:
        status_line.append(labelled("approval-pending", v.pending, ft.Container(
            ft.Text(v.pending, size=12, color=ft.Colors.BLACK), bgcolor=ft.Colors.AMBER_200,
            border_radius=8, padding=ft.Padding.symmetric(vertical=2, horizontal=8))))
    if v.deadline is not None:
        countdown = ft.Text(fmt.countdown(v.deadline, shell.now()))
        deadline = v.deadline
        shell.tickers.append((countdown, lambda: fmt.countdown(deadline, shell.now())))
        status_line.append(labelled("veto-countdown", "Veto window", countdown))

    hold = shell.held
    undo_bar: list[ft.Control] = []
    if hold is not None and hold.approval_id == approval_id:
        left = ft.Text()
        window = hold.window
        what = hold.what  # "Veto", "Approval": from this screen or a banner
        left.value = f"{what} leaves this device in {window.left(shell.now()):.0f} s"
        shell.tickers.append((left, lambda: f"{what} leaves this device in "
                                            f"{window.left(shell.now()):.0f} s"))
        undo_bar.append(labelled("veto-undo-bar", f"{what} held on this device", ft.Container(
            ft.Row([ft.Icon(ft.Icons.TIMER), ft.Container(left, expand=True),
                    action_button(f"Undo {what.lower()}", lambda e: shell.undo_decision(),
                                  primary=True)]),
            bgcolor=ft.Colors.AMBER_100, padding=8, border_radius=8)))

    actions: list[ft.Control] = []
    if v.actions.approve:
        actions.append(action_button("Approve", lambda e: approve_dialog(shell, v.id),
                                     primary=True, icon=ft.Icons.CHECK))
        shell.shortcuts["a"] = lambda: approve_dialog(shell, v.id)
    if v.actions.request_changes:
        actions.append(action_button("Request changes",
                                     lambda e: request_changes_dialog(shell, v.id),
                                     icon=ft.Icons.EDIT_NOTE))
    if v.actions.veto:
        actions.append(action_button("Veto", lambda e: shell.go(addresses.veto(v.id)),
                                     danger=True, icon=ft.Icons.BLOCK))
        shell.shortcuts["v"] = lambda: shell.go(addresses.veto(v.id))
    if v.actions.reason:
        actions.append(labelled("actions-unavailable", v.actions.reason,
                                ft.Text(v.actions.reason, italic=True)))

    timeline = [_stage(s) for s in v.timeline]
    budget: list[ft.Control] = [ft.Row([ft.Text(k, expand=True), ft.Text(val)])
                                for k, val in v.budget] or [ft.Text("No budget stated.")]
    caps: list[ft.Control] = [_capability(c) for c in v.capabilities] or [
        ft.Text("No capabilities requested.")]
    wasm = [ft.Text(v.wasm_summary, weight=ft.FontWeight.BOLD),
            *[ft.Text(line, size=12) for line in v.wasm_lines],
            *[ft.Text(f"Issue: {i}", color=ft.Colors.RED_700, size=12) for i in v.wasm_issues]]
    seeds: list[ft.Control] = [ft.Column([
        ft.Text(f"{m.seed_id} {m.title} — score {m.score}", weight=ft.FontWeight.BOLD),
        *[_condition(c, met=True) for c in m.met],
        *[_condition(c, met=False) for c in m.failed]],
        spacing=2) for m in v.seed_matches] or [ft.Text("No precedent seed matches.")]

    scrolling = ft.ListView([
        ft.Row([back, ft.Text(v.title, size=20, weight=ft.FontWeight.BOLD, expand=True)]),
        labelled("approval-detail", f"Request {v.id}", ft.Text(
            f"{v.id} · requested by {v.requester} · {v.industry} · agent {v.agent_id}",
            size=12)),
        ft.Row(status_line, wrap=True, spacing=12),
        *_refused(shell, approval_id),
        *([ft.Text(v.decided, italic=True)] if v.decided else []),
        *_receipt(shell, approval_id),
        section("Pipeline", *timeline, key="pipeline"),
        section(f"Capabilities ({v.dangerous_count} dangerous)", *caps, key="capabilities"),
        section("WASM report", *wasm, key="wasm-report"),
        section("Budget", *budget),
        section("Precedent seed matches", *seeds, key="seed-matches"),
    ], spacing=8, expand=True)
    # The decision (and its undo) sits below the scrolling detail, not in it: on a phone a
    # request with many grants runs screens long, and the governor who read to its end
    # must not scroll back up to act on it.
    decision = [*undo_bar, ft.Row(actions, wrap=True, spacing=8, run_spacing=4)] \
        if actions or undo_bar else []
    if not decision:
        return scrolling
    return ft.Column([scrolling, ft.Semantics(
        identifier="decision-bar", container=True, content=ft.Container(
            ft.Column(decision, spacing=6, tight=True),
            padding=ft.Padding.only(top=8),
            border=ft.Border.only(top=ft.BorderSide(1, ft.Colors.OUTLINE_VARIANT))))],
        spacing=0, expand=True)


def _capability(c: state.CapabilityRow) -> ft.Control:
    """A grant; a dangerous one says why, one line per reason."""
    row = ft.Row([
        ft.Icon(ft.Icons.WARNING_AMBER if c.dangerous else ft.Icons.LOCK_OPEN,
                color=ft.Colors.RED_700 if c.dangerous else None, size=18),
        ft.Text(c.label, color=ft.Colors.RED_700 if c.dangerous else None,
                weight=ft.FontWeight.BOLD if c.dangerous else None, expand=True,
                selectable=True)])
    if not c.reasons:
        return row
    why = [ft.Text(f"Why: {r}", size=12, color=ft.Colors.RED_700) for r in c.reasons]
    return labelled(f"capability-{c.capability}", f"{c.label}. Why: {' '.join(c.reasons)}",
                    ft.Column([row, *why], spacing=2))


def _receipt(shell: Shell, approval_id: str) -> list[ft.Control]:
    line = state.receipt_line(shell.client.receipt(approval_id))
    if line is None:
        return []
    text, tone = line
    icon, color = {"ok": (ft.Icons.VERIFIED, ft.Colors.GREEN_700),
                   "bad": (ft.Icons.GPP_BAD, ft.Colors.RED_700)}.get(
        tone, (ft.Icons.HOURGLASS_EMPTY, None))
    return [labelled("receipt-status", text, ft.Row(
        [ft.Icon(icon, color=color, size=18),
         ft.Text(text, size=12, color=color, expand=True, selectable=True)]))]


def _stage(s: state.StageRow) -> ft.Control:
    icon = (ft.Icons.CHECK_CIRCLE if s.done else ft.Icons.CANCEL if s.failed
            else ft.Icons.RADIO_BUTTON_UNCHECKED)
    color = ft.Colors.GREEN_700 if s.done else ft.Colors.RED_700 if s.failed else None
    lines: list[ft.Control] = [ft.Row([ft.Text(s.label, weight=ft.FontWeight.BOLD, expand=True),
                                       ft.Text(f"{s.status} {s.when}".strip(), size=12)])]
    if s.notes:
        lines.append(ft.Text(s.notes, size=12, italic=True))
    lines += [ft.Text(line, size=12, selectable=True) for line in s.evidence]
    return labelled(f"stage-{s.stage}", f"{s.label}: {s.status}", ft.Row(
        [ft.Icon(icon, color=color), ft.Column(lines, spacing=0, expand=True)],
        vertical_alignment=ft.CrossAxisAlignment.START))


def approve_dialog(shell: Shell, approval_id: str) -> None:
    # The focus lands in the dialog's first field: the governor types at once.
    comment = text_field(shell, "Comment (optional)", multiline=True, max_length=state.MAX_REASON,
                         autofocus=True)

    def confirm(e: object) -> None:
        shell.close_dialog()
        shell.decide(lambda: shell.client.approve(approval_id, comment.value or None),
                     f"Approval of {approval_id} queued; it is sent as soon as the server "
                     "is reachable.")

    shell.dialog(ft.AlertDialog(
        modal=True, title=ft.Text(f"Approve {approval_id}?"), content=comment,
        actions=[ft.TextButton("Cancel", on_click=lambda e: shell.close_dialog()),
                 ft.FilledButton("Confirm approval", on_click=confirm)]))


def request_changes_dialog(shell: Shell, approval_id: str) -> None:
    error = ft.Text("", color=ft.Colors.RED_700)
    reason = text_field(shell, "Reason (required)", multiline=True, max_length=state.MAX_REASON,
                        autofocus=True)

    def confirm(e: object) -> None:
        if not (reason.value or "").strip():
            error.value = "Say what must change: the requester reads this reason."
            shell.page.update()
            return
        shell.close_dialog()
        shell.decide(lambda: shell.client.request_changes(approval_id, reason.value or ""),
                     f"Change request for {approval_id} queued.")

    shell.dialog(ft.AlertDialog(
        modal=True, title=ft.Text(f"Request changes on {approval_id}"),
        content=ft.Column([reason, error], tight=True),
        actions=[ft.TextButton("Cancel", on_click=lambda e: shell.close_dialog()),
                 ft.FilledButton("Send change request", on_click=confirm)]))


def _condition(text: str, *, met: bool) -> ft.Control:
    """A seed condition the request meets or fails. An icon, not a ✓/✗ character: the
    app's font (Roboto) has neither, and the web client cannot fetch a fallback offline."""
    color = None if met else ft.Colors.RED_700
    return ft.Semantics(label=f"{'Met' if met else 'Not met'}: {text}", container=True,
                        exclude_semantics=True, content=ft.Row([
        ft.Icon(ft.Icons.CHECK if met else ft.Icons.CLOSE, size=14, color=color),
        ft.Text(text, size=12, color=color, expand=True)], spacing=4))
