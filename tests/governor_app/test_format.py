from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import format as fmt

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
