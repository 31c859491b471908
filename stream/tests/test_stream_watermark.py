"""Event-time rules: in-order admission per key, the store watermark, tick boundaries."""

from __future__ import annotations

import pytest

from shelflink.stream.watermark import Admission, InOrderGate, StoreWatermark, TickClock


def test_gate_accepts_forward_and_drops_duplicates_and_late_readings() -> None:
    gate: InOrderGate[str] = InOrderGate()
    assert gate.admit("shelf-a", 1_000) is Admission.ACCEPTED
    assert gate.admit("shelf-a", 1_000) is Admission.DUPLICATE
    assert gate.admit("shelf-a", 500) is Admission.LATE
    # Another key has its own order.
    assert gate.admit("shelf-b", 500) is Admission.ACCEPTED
    assert gate.admit("shelf-a", 2_000) is Admission.ACCEPTED
    assert gate.last_accepted("shelf-a") == 2_000
    assert gate.last_accepted("nobody") is None
    assert (gate.counts.accepted, gate.counts.duplicate, gate.counts.late) == (3, 1, 1)
    assert Admission.ACCEPTED.value == "accepted"


def test_store_watermark_is_latest_event_time_minus_lateness() -> None:
    wm = StoreWatermark(allowed_lateness_ms=5_000)
    assert wm.value is None
    assert wm.observe(60_000) == 55_000
    assert wm.observe(30_000) == 55_000  # an older event never moves it back
    assert wm.observe(120_000) == 115_000
    assert wm.value == 115_000
    with pytest.raises(ValueError):
        StoreWatermark(-1)


def test_tick_clock_returns_each_boundary_crossed_once() -> None:
    clock = TickClock(60_000)
    assert clock.advance(90_000) == [60_000]  # the first call scores the latest boundary
    assert clock.advance(110_000) == []
    assert clock.advance(120_000) == [120_000]
    assert clock.advance(300_500) == [180_000, 240_000, 300_000]
    assert clock.advance(200_000) == []  # a watermark never goes back
    assert clock.last_boundary_ms == 300_000


def test_tick_clock_bounds_catch_up_after_a_gap() -> None:
    clock = TickClock(60_000, max_catch_up=3)
    clock.advance(0)
    assert clock.advance(600_000) == [420_000, 480_000, 540_000, 600_000][-3:]
    assert clock.skipped == 7
