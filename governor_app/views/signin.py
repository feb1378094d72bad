"""Sign-in: the password form (code + PKCE done by the client), the system browser, and
the device-code flow for a device without a keyboard-friendly browser.

A flow that waits (the browser, the device code) is kept in the screen's state
(``screen_state.SignInState``) with its task, so a re-render shows it still waiting and
its Cancel still stops it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import flet as ft

from governor_app import sign_in
from governor_app.screen_state import SignInFlow, SignInState
from governor_app.views.common import action_button, heading, labelled
from governor_app.views.screen import Screen as Shell

# No topic re-renders the form: an "auth" change comes while the governor types (the
# cold start's hand-over to the engine says "auth" just after the app opens) and a rebuild
# would drop the password being typed; a finished sign-in moves on by itself
# (``signed_in``), and a flow in progress redraws its own panel (``show_waiting``).
TOPICS: tuple[str, ...] = ()


def build(shell: Shell) -> ft.Control:
    kept = shell.state.sign_in
    username = ft.TextField(label="User name", value=kept.username, autofocus=True,
                            on_change=lambda e: typed("username", e.control.value))
    password = ft.TextField(label="Password", password=True, can_reveal_password=True,
                            on_change=lambda e: typed("password", e.control.value),
                            on_submit=lambda e: submit(e))
    fields = {"username": username, "password": password}
    for key, message in kept.field_errors.items():
        fields[key].error = message
    error = ft.Text(kept.error, color=ft.Colors.RED_700)
    waiting = ft.Column([], spacing=8)

    def typed(key: str, value: str) -> None:
        if key == "username":
            kept.username = value
        # An error stays until its field is filled in.
        if value and kept.field_errors.pop(key, None) is not None:
            fields[key].error = None

    def show_waiting() -> None:
        waiting.controls = _waiting_panel(shell, kept, cancel)
        with contextlib.suppress(Exception):  # the screen may have gone
            shell.page.update()

    def start(flow: SignInFlow, work: Coroutine[Any, Any, None]) -> None:
        cancel(None)
        kept.flow = flow
        kept.error = ""
        error.value = ""

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                return
            except Exception as exc:  # the reason is shown on the form
                kept.error = str(exc) or "Sign-in failed: start again."
                error.value = kept.error
            finally:
                if kept.task is asyncio.current_task():
                    kept.end_flow()
            show_waiting()

        kept.task = asyncio.get_running_loop().create_task(run())
        show_waiting()

    def cancel(e: object) -> None:
        task = kept.end_flow()
        if task is not None:
            task.cancel()
        show_waiting()

    async def signed_in() -> None:
        kept.clear()
        shell.signed_in()
        await shell.client.sync_now()

    async def with_password(name: str, secret: str) -> None:
        await shell.client.sign_in_with_password(name, secret)
        await signed_in()

    def submit(e: object) -> None:
        name, secret = username.value or "", password.value or ""
        errors = sign_in.field_errors(name, secret)
        kept.field_errors = errors
        for key, field in fields.items():
            field.error = errors.get(key)
        if errors:
            error.value = kept.error = ""
            shell.page.update()
            return
        start("password", with_password(name, secret))

    async def with_browser() -> None:
        async def open_url(url: str) -> None:
            await ft.UrlLauncher().launch_url(url)
        await shell.client.sign_in_with_browser(open_url)
        await signed_in()

    async def with_device_code() -> None:
        code = await shell.client.start_device_sign_in()
        kept.device = sign_in.device_panel(code, shell.now())
        show_waiting()
        await shell.client.finish_device_sign_in(code)
        await signed_in()

    waiting.controls = _waiting_panel(shell, kept, cancel)
    form = ft.Column([
        heading("Sign in to WAOOAW Governor"),
        labelled("sign-in-server", sign_in.server_line(shell.server_url),
                 ft.Text(sign_in.server_line(shell.server_url), size=13)),
        ft.Text("Decisions you make offline are kept on this device and sent when you are "
                "back online."),
        username, password, error,
        action_button("Sign in", submit, primary=True, icon=ft.Icons.LOGIN),
        ft.Divider(),
        action_button("Sign in with the system browser",
                      lambda e: start("browser", with_browser()),
                      icon=ft.Icons.OPEN_IN_BROWSER),
        action_button("Sign in with a device code",
                      lambda e: start("device", with_device_code()), icon=ft.Icons.QR_CODE),
        waiting,
    ], spacing=12, scroll=ft.ScrollMode.AUTO)
    # At most 420 wide, narrower on a phone: a fixed width ran off a 360 px screen.
    return ft.Container(ft.Container(form, width=420), alignment=ft.Alignment.TOP_CENTER,
                        expand=True)


def _waiting_panel(shell: Shell, kept: SignInState, cancel: Any) -> list[ft.Control]:
    """What a flow in progress shows: that it waits, what to do, and Cancel."""
    flow = kept.flow
    if flow is None:
        return []
    cancel_button = action_button("Cancel sign-in", cancel, icon=ft.Icons.CLOSE)
    if flow == "password":
        return [ft.Row([ft.ProgressRing(width=16, height=16),
                        ft.Text("Signing in…", expand=True)])]
    if flow == "browser":
        return [labelled("sign-in-waiting", "Waiting for the browser", ft.Row([
                    ft.ProgressRing(width=16, height=16),
                    ft.Text("Waiting for you to finish signing in in the browser window "
                            "that opened.", expand=True)])),
                cancel_button]
    panel = kept.device
    if panel is None:
        return [ft.Row([ft.ProgressRing(width=16, height=16),
                        ft.Text("Asking the server for a code…", expand=True)]),
                cancel_button]
    left = ft.Text(panel.time_left(shell.now()), size=13)
    shell.tickers.append((left, lambda: panel.time_left(shell.now())))

    async def copy() -> None:
        await ft.Clipboard().set(panel.user_code)
        shell.snack(f"Code {panel.user_code} copied.")
        shell.page.update()

    controls: list[ft.Control] = [
        ft.Text("On your phone or another device, open"),
        labelled("device-verification-uri", panel.address,
                 ft.SelectionArea(ft.Text(panel.address, weight=ft.FontWeight.BOLD))),
        ft.Text("and enter the code"),
        ft.Row([labelled("device-user-code", panel.user_code,
                         ft.SelectionArea(ft.Text(panel.user_code, size=28,
                                                  weight=ft.FontWeight.BOLD))),
                action_button("Copy code", lambda e: shell.spawn(copy()),
                              icon=ft.Icons.COPY)], wrap=True),
        ft.Text("or scan this code with the phone's camera:"),
        labelled("device-qr", f"QR code opening {panel.qr_target}",
                 ft.Image(src=sign_in.qr_png(panel.qr_target), width=180, height=180)),
        labelled("device-time-left", "Time left", left),
    ]
    if panel.reach_warning:
        controls.append(labelled("device-reach-warning", panel.reach_warning,
                                 ft.Text(panel.reach_warning, color=ft.Colors.AMBER_900,
                                         size=12)))
    controls += [
        ft.Row([ft.ProgressRing(width=16, height=16),
                ft.Text("This screen continues by itself once you approve.", expand=True)]),
        cancel_button]
    return controls
