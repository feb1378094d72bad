from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import sign_in
from sync.models import DeviceCode

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def code(uri: str = "https://gov.example.com/oauth/device", complete: str | None = None
         ) -> DeviceCode:
    return DeviceCode(device_code="dc", user_code="WXYZ-1234", verification_uri=uri,
                      verification_uri_complete=complete, expires_in=600)


def test_the_form_names_its_server() -> None:
    assert sign_in.server_line("https://gov.example.com/") == \
        "Signs in to https://gov.example.com"
    assert "profile" in sign_in.server_line(" ")


def test_empty_fields_each_get_an_error_and_nothing_is_sent() -> None:
    assert sign_in.field_errors("", "") == {"username": "Enter your user name.",
                                            "password": "Enter your password."}
    assert sign_in.field_errors("  ", "x") == {"username": "Enter your user name."}
    assert sign_in.field_errors("governor", "") == {"password": "Enter your password."}
    assert sign_in.field_errors("governor", "governor") == {}


def test_device_panel_counts_down_to_an_expired_code() -> None:
    panel = sign_in.device_panel(code(), NOW)
    assert panel.user_code == "WXYZ-1234" and panel.reach_warning is None
    assert panel.time_left(NOW) == "Code valid for 0:10:00"
    assert panel.time_left(NOW + timedelta(seconds=599)) == "Code valid for 0:00:01"
    assert "expired" in panel.time_left(NOW + timedelta(seconds=600))


def test_the_qr_code_opens_the_address_with_the_code_when_the_server_gives_one() -> None:
    assert sign_in.device_panel(code(), NOW).qr_target == \
        "https://gov.example.com/oauth/device"
    full = "https://gov.example.com/oauth/device?user_code=WXYZ-1234"
    assert sign_in.device_panel(code(complete=full), NOW).qr_target == full


def test_a_loopback_address_is_said_to_be_unreachable_from_a_phone() -> None:
    panel = sign_in.device_panel(code("http://127.0.0.1:8000/oauth/device"), NOW)
    assert panel.reach_warning and "127.0.0.1" in panel.reach_warning
    assert "GOVSTUB_PUBLIC_URL" in panel.reach_warning


def test_qr_png_is_a_png() -> None:
    png = sign_in.qr_png("https://gov.example.com/oauth/device")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 100
