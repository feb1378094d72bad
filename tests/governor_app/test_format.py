from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from governor_app import format as fmt
from sync.models import DecisionAction

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_age_reads_naturally() -> None:
    assert fmt.age(None, NOW) == "never"
    assert fmt.age(NOW - timedelta(seconds=3), NOW) == "just now"
    assert fmt.age(NOW - timedelta(seconds=42), NOW) == "42 s ago"
    assert fmt.age(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert fmt.age(NOW - timedelta(hours=2, minutes=3), NOW) == "2 h 3 min ago"
    assert fmt.age(NOW - timedelta(days=3), NOW) == "3 d ago"


def test_countdown_to_a_server_deadline() -> None:
    assert fmt.countdown(NOW + timedelta(hours=23, minutes=4, seconds=5), NOW) \
        == "23:04:05 left"
    assert fmt.countdown(NOW - timedelta(seconds=1), NOW) == "closed"
    assert fmt.countdown(None, NOW) == "no veto window"


def test_a_list_counts_down_to_the_minute_until_the_last_hour() -> None:
    assert fmt.countdown_short(NOW + timedelta(hours=23, minutes=4, seconds=5), NOW) \
        == "23 h 04 min left"
    assert fmt.countdown_short(NOW + timedelta(minutes=59, seconds=5), NOW) == "0:59:05 left"
    assert fmt.countdown_short(NOW - timedelta(seconds=1), NOW) == "closed"
    assert fmt.countdown_short(None, NOW) == "no veto window"


def test_sizes_percentages_and_tokens() -> None:
    assert fmt.size(512) == "512 B"
    assert fmt.size(2048) == "2.0 KB"
    assert fmt.size(5 * 1024 * 1024) == "5.0 MB"
    assert fmt.percent(0.956) == "96 %"
    assert fmt.humanise("genesis_certification") == "Genesis certification"


# --- human words (issue 18): no raw tokens, floats or ISO strings on screen -------------

@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The device's zone is Paris (CET in November) for the test."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_on_the_device_clock_with_its_zone(paris: None) -> None:
    assert fmt.short_time(NOW) == "21 Nov 13:00 CET"
    assert fmt.short_time(None) == "—"


def test_a_moment_is_relative_then_absolute(paris: None) -> None:
    assert fmt.moment(NOW - timedelta(minutes=5), NOW) == "5 min ago, 21 Nov 12:55 CET"
    assert fmt.moment(NOW + timedelta(hours=2, minutes=4), NOW) == \
        "in 2 h 4 min, 21 Nov 15:04 CET"
    assert fmt.moment(NOW + timedelta(seconds=20), NOW).startswith("in 20 s, ")
    assert fmt.moment(NOW + timedelta(days=3), NOW).startswith("in 3 d, ")


def test_a_moment_reads_the_servers_iso_strings(paris: None) -> None:
    said = fmt.moment("2026-11-21T11:00:00Z", NOW)
    assert said == "1 h 0 min ago, 21 Nov 12:00 CET"
    assert "T11:00" not in said


def test_a_moment_that_does_not_parse_says_so_and_keeps_the_value() -> None:
    assert fmt.moment("soon-ish", NOW) == "an unreadable time ('soon-ish')"
    assert fmt.moment(None, NOW) == "—"
    assert fmt.moment("", NOW) == "—"


@pytest.mark.parametrize(("action", "words"), [
    ("approve", "approved"), ("request_changes", "changes requested"), ("veto", "vetoed"),
    (DecisionAction.REQUEST_CHANGES, "changes requested"), (None, "decided"),
    ("escalate_to_board", "escalate to board")])
def test_decisions_in_words(action: object, words: str) -> None:
    assert fmt.decision(action) == words


@pytest.mark.parametrize(("token", "words"), [
    ("coe", "Centre of Excellence"), ("public_sector", "Public sector"),
    ("healthcare", "Healthcare")])
def test_industries_in_words(token: str, words: str) -> None:
    assert fmt.industry(token) == words


@pytest.mark.parametrize(("value", "unit", "words"), [
    (2000.0, "", "2,000"), (2000, "", "2,000"), (150_000, "", "150,000"),
    (12.5, "", "12.5"), (12.5, "USD", "12.50 USD"), (2000.0, "USD", "2,000 USD"),
    ("3000", "", "3,000"), ("unlimited", "", "unlimited"), (True, "", "True"),
    (None, "", "None"), (float("nan"), "", "nan")])
def test_amounts_without_float_noise(value: object, unit: str, words: str) -> None:
    assert fmt.amount(value, unit) == words


def test_budget_items_name_their_unit() -> None:
    assert fmt.budget_item("max_monthly_cost_usd", 2000.0) == ("Max monthly cost", "2,000 USD")
    assert fmt.budget_item("daily_token_budget", 200000) == ("Daily token budget", "200,000")
