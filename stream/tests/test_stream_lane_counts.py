"""Grams to units on scripted shelves with known answers: steps, noise, drift, tare, faults."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shelflink.stream.lanes import FEATURE_NAMES, LaneEventKind, LaneFeatureState

MONDAY_MS = 1_704_067_200_000
MINUTE_MS = 60_000


def feature(state: LaneFeatureState, now_ms: int, name: str) -> np.ndarray:
    return state.features(now_ms)[:, FEATURE_NAMES.index(name)]


def test_steady_removals_give_the_scripted_depletion_rate(make_shelf: Any) -> None:
    shelf = make_shelf(1, unit_g=[100.0], capacity=[40])
    state = LaneFeatureState(shelf.specs())
    # One unit every 10 minutes: 6 an hour.
    shelf.play(state, lambda k: [40 - k // 10], range(246))
    now = MONDAY_MS + 245 * MINUTE_MS
    assert state.units().tolist() == [16]
    assert feature(state, now, "depletion_per_h_1h")[0] == 6.0
    assert feature(state, now, "depletion_per_h_3h")[0] == 6.0
    assert feature(state, now, "minutes_to_empty_linear")[0] == 160.0
    removals = [e for e in state.drain_lane_events() if e.kind is LaneEventKind.REMOVAL]
    assert len(removals) == 24
    assert all(e.units == 1 for e in removals)
    assert removals[0].ts_ms == MONDAY_MS + 10 * MINUTE_MS  # stamped when first read
    assert removals[-1].units_after == 16


def test_restock_is_a_sustained_jump_up(make_shelf: Any) -> None:
    shelf = make_shelf(2, unit_g=[250.0, 80.0], capacity=[20, 50])
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [4 if k < 30 else 20, 50], range(91))
    events = state.drain_lane_events()
    assert [(e.kind, e.index, e.units, e.units_after) for e in events] == [
        (LaneEventKind.RESTOCK, 0, 16, 20)
    ]
    assert events[0].ts_ms == MONDAY_MS + 30 * MINUTE_MS
    now = MONDAY_MS + 90 * MINUTE_MS
    assert feature(state, now, "hours_since_restock")[0] == 1.0
    assert feature(state, now, "hours_since_restock")[1] == 72.0  # never: the cap
    assert state.lane_flags().restocked_recently.tolist() == [True, False]
    assert feature(state, now, "fill_fraction").tolist() == [1.0, 1.0]


def test_noise_never_flips_the_count_of_light_units(make_shelf: Any) -> None:
    # 20 g units with 1.5 g noise and a 6 g tare: 2,000 readings, not one step.
    shelf = make_shelf(3, unit_g=[20.0, 21.5, 35.0], capacity=[60, 60, 60], tare_g=[6, -6, 9])
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [30, 45, 12], range(2000))
    assert state.units().tolist() == [30, 45, 12]
    assert state.drain_lane_events() == []


def test_temperature_drift_is_learnt_and_never_changes_the_count(make_shelf: Any) -> None:
    # 1.2 g/°C over a ±6 °C day swing moves a 25 g unit's reading by ±7 g.
    shelf = make_shelf(1, unit_g=[25.0], capacity=[60], drift_g_per_c=[1.2], seed=4)

    def board(k: int) -> float:
        return 25.0 + 6.0 * math.sin(2 * math.pi * k / 1440)

    state = LaneFeatureState(shelf.specs())
    # Two quiet days, then a removal of 2 units at the warmest hour of day 3.
    shelf.play(state, lambda k: [40 if k < 2880 + 360 else 38], range(2880 + 420), board_c=board)
    events = state.drain_lane_events()
    assert [(e.kind, e.units) for e in events] == [(LaneEventKind.REMOVAL, 2)]
    assert state.units().tolist() == [38]
    assert abs(state.counter.offset_b[0] - 1.2) < 0.3


def test_tare_half_a_unit_off_is_fixed_by_a_restock_to_capacity(make_shelf: Any) -> None:
    # A 20 g unit on a cell whose zero is 12 g low: 20 units read as 19.4.
    shelf = make_shelf(1, unit_g=[20.0], capacity=[30], tare_g=[-12.0], noise_g=0.5)
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [20], range(30))
    assert state.units().tolist() == [19]  # nothing yet tells the two apart
    shelf.play(state, lambda k: [30], range(30, 60))  # staff fill the lane
    assert state.units().tolist() == [30]
    shelf.play(state, lambda k: [30 - (k - 60) // 5], range(60, 120))
    assert state.units().tolist() == [30 - 59 // 5]


def test_dropouts_hold_the_count_and_age_the_data(make_shelf: Any) -> None:
    shelf = make_shelf(2)
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [30, 30], range(10))
    for k in range(10, 20):  # lane 0 drops out while a customer takes 3
        grams: list[float | None] = list(shelf.grams([27, 30]))
        grams[0] = None
        state.observe_shelf(shelf.device, MONDAY_MS + k * MINUTE_MS, grams, 25.0)
    now = MONDAY_MS + 19 * MINUTE_MS
    assert state.units().tolist() == [30, 30]
    assert state.lane_flags().stale.tolist() == [True, False]
    assert feature(state, now, "data_age_min").tolist() == [10.0, 0.0]
    shelf.play(state, lambda k: [27, 30], range(20, 23))
    assert state.units().tolist() == [27, 30]
    assert state.lane_flags().stale.tolist() == [False, False]
    assert [(e.kind, e.units) for e in state.drain_lane_events()] == [(LaneEventKind.REMOVAL, 3)]


def test_stuck_cell_is_told_from_a_quiet_lane(make_shelf: Any) -> None:
    shelf = make_shelf(2)
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [30, 30], range(20))
    frozen = shelf.grams([30, 30])[0]
    for k in range(20, 60):  # lane 0 repeats one value while 5 units go; lane 1 is quiet
        grams = shelf.grams([25, 30])
        state.observe_shelf(shelf.device, MONDAY_MS + k * MINUTE_MS, [frozen, grams[1]], 25.0)
    flags = state.lane_flags()
    assert flags.stuck.tolist() == [True, False]
    assert flags.stale.tolist() == [True, False]
    now = MONDAY_MS + 59 * MINUTE_MS
    assert feature(state, now, "stuck").tolist() == [1.0, 0.0]
    assert feature(state, now, "depletion_per_h_1h").tolist() == [0.0, 0.0]
    assert state.units().tolist() == [30, 30]  # held, not guessed
    started = state.drain_lane_events()
    assert [(e.kind, e.index) for e in started] == [(LaneEventKind.STUCK_STARTED, 0)]
    assert started[0].ts_ms == MONDAY_MS + 25 * MINUTE_MS  # the sixth identical value
    shelf.play(state, lambda k: [25, 30], range(60, 63))
    assert state.units().tolist() == [25, 30]
    assert [(e.kind, e.units) for e in state.drain_lane_events()] == [
        (LaneEventKind.STUCK_ENDED, 0),
        (LaneEventKind.REMOVAL, 5),
    ]


def test_duplicate_and_out_of_order_readings_are_counted_and_dropped(make_shelf: Any) -> None:
    shelf = make_shelf(1)
    state = LaneFeatureState(shelf.specs())
    t0 = MONDAY_MS
    assert state.observe_shelf(shelf.device, t0, shelf.grams([30]), 25.0).value == "accepted"
    assert state.observe_shelf(shelf.device, t0, shelf.grams([10]), 25.0).value == "duplicate"
    assert state.observe_shelf(shelf.device, t0 - 1, shelf.grams([10]), 25.0).value == "late"
    assert state.units().tolist() == [30]
    counts = state.device_gate.counts
    assert (counts.accepted, counts.duplicate, counts.late) == (1, 1, 1)
    # The vectorised path keeps the same rule per lane.
    idx = state.index_of(shelf.device)
    state.observe_lanes(t0, idx, np.array([1000.0]), np.array([25.0]))
    assert state.lane_counts.duplicate == 1
    assert state.units().tolist() == [30]


def test_unknown_device_and_short_messages(make_shelf: Any) -> None:
    shelf = make_shelf(3)
    state = LaneFeatureState(shelf.specs())
    state.observe_shelf("s0001-shelf-99", MONDAY_MS, [100.0], 25.0)
    assert state.unknown_devices == 1
    # A message with fewer lanes than configured: the missing lanes are dropouts.
    state.observe_shelf(shelf.device, MONDAY_MS, shelf.grams([3, 4, 5])[:2], 25.0)
    assert state.lane_flags().never_seen.tolist() == [False, False, True]
    assert state.units().tolist() == [3, 4, 0]


def test_a_hand_on_the_shelf_or_a_one_reading_spike_is_no_event(make_shelf: Any) -> None:
    shelf = make_shelf(1, unit_g=[100.0], noise_g=0.5)
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [20], range(10))
    t = MONDAY_MS + 10 * MINUTE_MS
    # A hand resting 60 g on the lane for three readings: between two counts,
    # so the count holds.
    for k in range(3):
        state.observe_shelf(shelf.device, t + k * MINUTE_MS, [shelf.grams([20])[0] + 60.0], 25.0)
        assert state.units().tolist() == [20]
    # Three units' weight for one reading (someone leaning on the lane).
    state.observe_shelf(shelf.device, t + 3 * MINUTE_MS, shelf.grams([23]), 25.0)
    shelf.play(state, lambda k: [20], range(14, 20))
    assert state.units().tolist() == [20]
    assert state.drain_lane_events() == []


def test_a_busy_lane_gets_one_event_per_step_at_its_own_time(make_shelf: Any) -> None:
    shelf = make_shelf(1)
    state = LaneFeatureState(shelf.specs())
    # A unit a minute for five minutes, then two at once.
    shelf.play(state, lambda k: [30 - min(max(k - 9, 0), 5) - (2 if k >= 20 else 0)], range(25))
    events = state.drain_lane_events()
    assert [(e.units, (e.ts_ms - MONDAY_MS) // MINUTE_MS) for e in events] == [
        (1, 10),
        (1, 11),
        (1, 12),
        (1, 13),
        (1, 14),
        (2, 20),
    ]
    assert state.units().tolist() == [23]
