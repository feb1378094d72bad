"""What the sign-in screen says: which server, field errors before anything is sent, and
the device-code panel (code, address, QR code, time left). No Flet, no I/O."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import segno

from governor_app import format as fmt
from sync.models import DeviceCode

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def server_line(server_url: str) -> str:
    """The sentence naming the server the form signs in to."""
    if not server_url.strip():
        return "Signs in to the server set in this device's profile."
    return f"Signs in to {server_url.strip().rstrip('/')}"


def field_errors(username: str, password: str) -> dict[str, str]:
    """Each empty field's error, keyed ``username`` / ``password``: nothing is sent to the
    server until both are filled (it would answer "wrong password for ''")."""
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "Enter your user name."
    if not password:
        errors["password"] = "Enter your password."
    return errors


@dataclass(frozen=True)
class DevicePanel:
    """The device-code flow as shown: the code to type, where to type it, and until when."""

    user_code: str
    address: str  # where to enter the code, as the server names it
    qr_target: str  # what the QR code opens: the address with the code filled in if given
    expires_at: datetime
    # Said when the address only works on the server's own machine.
    reach_warning: str | None

    def time_left(self, now: datetime) -> str:
        left = fmt.countdown(self.expires_at, now)
        if left == "closed":
            return "The code has expired: start device sign-in again."
        return f"Code valid for {left.removesuffix(' left')}"


def device_panel(code: DeviceCode, now: datetime) -> DevicePanel:
    host = (urlsplit(code.verification_uri).hostname or "").lower()
    warning = None
    if host in LOOPBACK_HOSTS:
        warning = (f"The server gives {host} as its address, which a phone cannot open: "
                   "ask the operator to set the server's public URL (GOVSTUB_PUBLIC_URL).")
    return DevicePanel(
        user_code=code.user_code, address=code.verification_uri,
        qr_target=code.verification_uri_complete or code.verification_uri,
        expires_at=now + timedelta(seconds=code.expires_in), reach_warning=warning)


def qr_png(text: str) -> bytes:
    """``text`` as a QR code PNG, large enough to scan from a screen."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=6, border=2)
    return out.getvalue()
