"""Fridge features: ordering rules, credited minutes, runs at any level, windows, slope, spread."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.stream.fridge_features import FridgeFeatureState, FridgeSample

T0 = 1_704_103_200_000  # 2024-01-01 10:00 UTC
MIN = 60_000


def reading(
    minute: float,
    cabinet_c: float = 4.0,
    *,
    door: bool = False,
    compressor: bool = False,
    defrost: bool = False,
) -> FridgeSample:
    return FridgeSample(
        device="s0001-fridge-01",
        ts_ms=T0 + round(minute * MIN),
        cabinet_c=cabinet_c,
        evaporator_c=-5.0,
        door_open=door,
        compressor_on=compressor,
        defrost_on=defrost,
    )


def test_late_and_duplicate_readings_are_refused_and_counted() -> None:
    state = FridgeFeatureState()
    assert state.observe(reading(0, 4.0))
    assert state.observe(reading(2, 9.0))
    assert not state.observe(reading(2, 1.0))  # same ts: a duplicate
    assert not state.observe(reading(1, 1.0))  # older: late
    assert state.observe(reading(3, 9.5))
    assert (state.accepted, state.duplicates, state.late) == (3, 1, 1)
    last = state.last
    assert last is not None and last.cabinet_c == 9.5
    # The refused readings changed nothing: the run above 8 °C is the reading at
    # minute 2 (standing for minutes 0-2) and the one at minute 3.
    assert state.minutes_above(8.0) == pytest.approx(3.0)


def test_a_reading_stands_for_the_time_since_the_last_one_capped_at_the_gap() -> None:
    state = FridgeFeatureState(max_gap_min=15.0)
    state.observe(reading(0, 9.0))
    assert state.last_credit_min == 0.0  # nothing is known before the first reading
    assert state.minutes_above(8.0) == 0.0
    state.observe(reading(1, 9.0))
    state.observe(reading(1.5, 9.0))
    assert state.minutes_above(8.0) == pytest.approx(1.5)
    state.observe(reading(61.5, 9.0))  # an hour of silence counts 15 minutes
    assert state.last_credit_min == 15.0
    assert state.minutes_above(8.0) == pytest.approx(16.5)


def test_runs_above_and_below_any_level_end_at_the_last_reading_on_the_other_side() -> None:
    state = FridgeFeatureState()
    temps = [4.0, 9.0, 12.0, 7.0, 9.0, 10.0, 11.0, 3.0, 2.0, 1.5]
    for minute, temp in enumerate(temps):
        state.observe(reading(minute, temp))
    # Last reading 1.5 °C: not above anything at or over it.
    assert state.minutes_above(1.5) == 0.0
    assert state.minutes_above(1.0) == pytest.approx(9.0)  # every credited minute
    assert state.minutes_below(2.5) == pytest.approx(2.0)  # 2.0 and 1.5
    assert state.minutes_below(3.5) == pytest.approx(3.0)
    assert state.minutes_below(12.5) == pytest.approx(9.0)
    assert state.minutes_below(1.5) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    temps=st.lists(
        st.floats(-5, 15, allow_nan=False).map(lambda x: round(x, 1)), min_size=1, max_size=80
    ),
    gaps=st.lists(st.integers(1, 30), min_size=80, max_size=80),
    level=st.floats(-6, 16, allow_nan=False),
    capacity=st.sampled_from([4, 10_080]),
)
def test_runs_match_a_brute_force_count_at_any_level(
    temps: list[float], gaps: list[int], level: float, capacity: int
) -> None:
    state = FridgeFeatureState(max_gap_min=15.0, run_capacity=capacity)
    minute = 0
    credits: list[float] = []
    for i, temp in enumerate(temps):
        minute += gaps[i]
        state.observe(reading(minute, temp))
        credits.append(0.0 if i == 0 else float(min(gaps[i], 15)))

    def brute(inside: list[bool]) -> float:
        total = 0.0
        for credit, is_inside in zip(reversed(credits), reversed(inside), strict=True):
            if not is_inside:
                break
            total += credit
        return total

    above = brute([t > level for t in temps])
    below = brute([t < level for t in temps])
    if capacity == 10_080:
        assert state.minutes_above(level) == pytest.approx(above)
        assert state.minutes_below(level) == pytest.approx(below)
    else:
        # A small stack forgets old readings: the answer may then only be a lower bound.
        assert state.minutes_above(level) <= above + 1e-9
        assert state.minutes_below(level) <= below + 1e-9


def test_window_features_count_door_compressor_cycles_and_time_above() -> None:
    state = FridgeFeatureState(window_min=10.0)
    # Minutes 0..20; the window of the last 10 minutes holds minutes 11..20.
    for m in range(21):
        state.observe(
            reading(
                m,
                9.0 if m >= 17 else 4.0,
                door=m in (12, 13, 19, 20),
                compressor=m in (10, 11, 14, 15, 18),
            )
        )
    f = state.snapshot(8.0)
    assert f.window_covered_min == pytest.approx(10.0)
    assert f.minutes_above_window == pytest.approx(4.0)
    assert f.minutes_above_run == pytest.approx(4.0)
    assert f.door_open_share == pytest.approx(0.4)
    assert f.door_open_run_min == pytest.approx(2.0)
    assert f.compressor_duty == pytest.approx(0.4)
    # on→off seen at minutes 12, 16 and 19 (the one at 12 follows minute 11, in the window).
    assert f.compressor_cycles == 3.0
    assert f.compressor_on_run_min == 0.0
    assert f.limit_c == 8.0 and f.cabinet_c == 9.0


def test_defrost_duration_and_minutes_since_it_ended() -> None:
    state = FridgeFeatureState()
    state.observe(reading(0))
    assert state.minutes_since_defrost_end == math.inf
    for m in range(1, 21):
        state.observe(reading(m, defrost=True))
    assert state.defrost_run_min == pytest.approx(20.0)
    assert state.minutes_since_defrost_end == 0.0
    state.observe(reading(21))
    state.observe(reading(30))
    assert state.defrost_run_min == 0.0
    assert state.minutes_since_defrost_end == pytest.approx(9.0)


def test_rate_of_rise_is_a_robust_slope_that_ignores_a_spike() -> None:
    state = FridgeFeatureState(slope_min=20.0)
    for m in range(40):
        temp = 4.0 + 0.1 * m + (6.0 if m == 35 else 0.0)  # one door-opening spike
        state.observe(reading(m, temp))
    assert state.rate_of_rise() == pytest.approx(0.1)
    fresh = FridgeFeatureState()
    fresh.observe(reading(0))
    fresh.observe(reading(1))
    assert math.isnan(fresh.rate_of_rise())  # two readings are not a trend


def test_spread_covers_the_window_including_the_reading_that_opens_it() -> None:
    state = FridgeFeatureState(spread_min=30.0)
    state.observe(reading(0, 7.0))
    for m in range(1, 31):
        state.observe(reading(m, 4.0))
    spread, span, count = state.cabinet_spread()
    # Minute 0 opens the 30-minute window ending at minute 30.
    assert spread == pytest.approx(3.0) and (span, count) == (30.0, 31)
    state.observe(reading(31, 4.0))
    spread, span, count = state.cabinet_spread()
    assert (spread, span, count) == (0.0, 30.0, 31)
    assert state.snapshot(8.0).cabinet_spread_c == 0.0


def test_buffers_stay_bounded_over_a_long_run() -> None:
    state = FridgeFeatureState(window_min=60.0, slope_min=20.0, spread_min=30.0)
    for m in range(5 * 24 * 60):
        state.observe(reading(m, 4.0 + (m % 7) * 0.1))
    # One hour of readings plus the one that opens the window.
    assert state.buffered_readings == 61
    assert state.snapshot(8.0).window_covered_min == pytest.approx(60.0)


def test_snapshot_needs_a_reading() -> None:
    with pytest.raises(ValueError, match="no reading"):
        FridgeFeatureState().snapshot(8.0)
