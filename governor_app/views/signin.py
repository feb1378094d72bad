"""Sign-in: the password form (code + PKCE done by the client), the system browser, and
the device-code flow for a device without a keyboard-friendly browser."""

from __future__ import annotations

from typing import Any

import flet as ft

from governor_app.views.common import action_button, heading, labelled
from governor_app.views.shell import Shell

TOPICS = ("auth",)


def build(shell: Shell) -> ft.Control:
    mem: dict[str, Any] = shell.memory.setdefault("sign-in", {})
    username = ft.TextField(label="User name", value=mem.get("username", ""), autofocus=True,
                            on_change=lambda e: mem.__setitem__("username", e.control.value))
    password = ft.TextField(label="Password", password=True, can_reveal_password=True,
                            on_submit=lambda e: submit(e))
    error = ft.Text(mem.get("error", ""), color=ft.Colors.RED_700)
    device = ft.Column([])

    async def signed_in() -> None:
        mem.clear()
        shell.go("/dashboard")
        await shell.client.sync_now()

    async def with_password() -> None:
        mem["error"] = ""
        try:
            await shell.client.sign_in_with_password(username.value or "", password.value or "")
        except Exception as exc:  # the reason is shown on the form
            error.value = str(exc) or "Sign-in failed: check the user name and password."
            shell.page.update()
            return
        await signed_in()

    def submit(e: object) -> None:
        shell.spawn(with_password())

    async def with_browser() -> None:
        async def open_url(url: str) -> None:
            await ft.UrlLauncher().launch_url(url)
        await shell.client.sign_in_with_browser(open_url)
        await signed_in()

    async def with_device_code() -> None:
        code = await shell.client.start_device_sign_in()
        device.controls = [
            ft.Text("On another device, open"),
            labelled("device-verification-uri", code.verification_uri,
                     ft.SelectionArea(ft.Text(code.verification_uri,
                                              weight=ft.FontWeight.BOLD))),
            ft.Text("and enter the code"),
            labelled("device-user-code", code.user_code,
                     ft.Text(code.user_code, size=28, weight=ft.FontWeight.BOLD)),
            ft.Text("This screen continues by itself once you approve."),
        ]
        shell.page.update()
        await shell.client.finish_device_sign_in(code)
        await signed_in()

    form = ft.Column([
        heading("Sign in to WAOOAW Governor"),
        ft.Text("Decisions you make offline are kept on this device and sent when you are "
                "back online."),
        username, password, error,
        action_button("Sign in", submit, primary=True, icon=ft.Icons.LOGIN),
        ft.Divider(),
        action_button("Sign in with the system browser",
                      lambda e: shell.spawn(with_browser()), icon=ft.Icons.OPEN_IN_BROWSER),
        action_button("Sign in with a device code",
                      lambda e: shell.spawn(with_device_code()), icon=ft.Icons.QR_CODE),
        device,
    ], spacing=12, width=420, scroll=ft.ScrollMode.AUTO)
    return ft.Container(form, alignment=ft.Alignment.TOP_CENTER, expand=True)
