"""Simulated time: ticks, times of day, and a live clock that never runs ahead of the wall."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.sim import SimClock, live_start_ms
from shelflink.sim.clock import crosses_hour, hour_of_day, weekday


@settings(max_examples=300, deadline=None)
@given(
    now_ms=st.integers(1_600_000_000_000, 2_000_000_000_000),
    duration_s=st.floats(1.0, 7 * 86_400.0),
    speed=st.floats(0.1, 5_000.0),
    tick_s=st.sampled_from([1, 10, 60, 300]),
    progress=st.floats(0.0, 1.0),
)
def test_a_live_clock_never_stamps_the_future(
    now_ms: int, duration_s: float, speed: float, tick_s: int, progress: float
) -> None:
    start = live_start_ms(now_ms, duration_s, speed, tick_s)
    assert start % (tick_s * 1000) == 0 and start <= now_ms
    elapsed_s = progress * duration_s
    simulated = start + elapsed_s * speed * 1000.0
    assert simulated <= now_ms + elapsed_s * 1000.0 + 1e-3
    if speed > 1:
        # ... and at the end of the run it has caught up with the wall (within a tick).
        end = start + duration_s * speed * 1000.0
        assert end >= now_ms + duration_s * 1000.0 - tick_s * 1000 - 1


def test_times_of_day_and_weekdays() -> None:
    clock = SimClock.starting(datetime(2024, 1, 1, tzinfo=UTC))  # a Monday
    ts = clock.ts_range(0, 3 * clock.ticks_per_day)
    assert hour_of_day(ts[:2]).tolist() == [0.0, 1 / 60]
    assert weekday(ts[[0, 1440, 2880]]).tolist() == [0, 1, 2]
    # 06:30 falls in exactly one tick per day, the one stamped 06:30.
    marks = np.flatnonzero(crosses_hour(ts, clock.tick_ms, 6.5))
    assert marks.tolist() == [390, 390 + 1440, 390 + 2880]
    assert clock.first_tick_at_or_after(clock.start_ms + 61_000) == 2
