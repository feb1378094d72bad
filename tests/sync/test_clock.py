"""``ServerClock``: the server's time from the device clock and the measured offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.clock import FakeClock, ServerClock, SkewedClock

SERVER_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_an_hour_wrong_device_clock_tells_the_server_time_after_one_answer() -> None:
    device = SkewedClock(FakeClock(SERVER_NOW), 3600)
    clock = ServerClock(device)
    assert clock.now() == SERVER_NOW + timedelta(hours=1)  # nothing measured yet
    clock.observe(SERVER_NOW, rtt=0.0)
    assert clock.now() == SERVER_NOW and clock.measured
    assert clock.offset == timedelta(hours=-1)


def test_the_stamp_is_taken_as_made_half_way_through_the_round_trip() -> None:
    device = FakeClock(SERVER_NOW)
    clock = ServerClock(device)
    clock.observe(SERVER_NOW - timedelta(seconds=0.2), rtt=0.4)
    assert clock.now() == SERVER_NOW


def test_a_jump_of_the_server_clock_shows_at_the_next_answer() -> None:
    device = FakeClock(SERVER_NOW)
    clock = ServerClock(device)
    clock.observe(SERVER_NOW)
    device.advance(10)
    clock.observe(SERVER_NOW + timedelta(hours=2, seconds=10))  # the demo clock jumped 2 h
    assert clock.now() == SERVER_NOW + timedelta(hours=2, seconds=10)


def test_a_slow_answer_does_not_replace_a_known_offset() -> None:
    device = FakeClock(SERVER_NOW)
    clock = ServerClock(device, max_rtt=2.0)
    clock.observe(SERVER_NOW + timedelta(minutes=5))
    clock.observe(SERVER_NOW + timedelta(minutes=9), rtt=3.0)
    assert clock.offset == timedelta(minutes=5)


def test_a_server_time_without_a_timezone_is_refused_and_changes_nothing() -> None:
    clock = ServerClock(FakeClock(SERVER_NOW))
    with pytest.raises(ValueError, match="no timezone"):
        clock.observe(datetime(2026, 1, 1, 12, 0))
    assert not clock.measured and clock.offset == timedelta(0)


@given(skew=st.floats(-86_400 * 30, 86_400 * 30), rtt=st.floats(0, 2),
       later=st.floats(0, 3600))
def test_whatever_the_device_skew_the_clock_keeps_server_time(skew: float, rtt: float,
                                                              later: float) -> None:
    real = FakeClock(SERVER_NOW)
    clock = ServerClock(SkewedClock(real, skew))
    clock.observe(real.now() - timedelta(seconds=rtt / 2), rtt)
    real.advance(later)
    assert abs((clock.now() - real.now()).total_seconds()) < 1e-3
