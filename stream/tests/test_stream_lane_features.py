"""Features with known answers: shrink, sales joined through the planogram, time, profile."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from shelflink.device.gtin import make_gtin
from shelflink.stream.lanes import FEATURE_CAPS, FEATURE_NAMES, LaneFeatureState, LaneSpec

MONDAY_MS = 1_704_067_200_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def feature(state: LaneFeatureState, now_ms: int, name: str) -> np.ndarray:
    return state.features(now_ms)[:, FEATURE_NAMES.index(name)]


def test_removals_without_sales_show_as_shrink(make_shelf: Any) -> None:
    shelf = make_shelf(2)
    state = LaneFeatureState(shelf.specs())
    for k in range(180):
        ts = MONDAY_MS + k * MINUTE_MS
        # One unit every 10 minutes for two hours from each lane.
        taken = min(k // 10, 12)
        state.observe_shelf(shelf.device, ts, shelf.grams([30 - taken, 30 - taken]), 25.0)
        if k % 10 == 3 and 10 < k <= 123:
            # Lane 1's customers pay, three minutes after the pick; lane 0's do not.
            state.observe_sale(ts, shelf.gtins[1])
    now = MONDAY_MS + 179 * MINUTE_MS
    assert feature(state, now, "shrink_units_24h").tolist() == [12.0, 0.0]
    assert feature(state, now, "sales_per_h_3h").tolist() == [0.0, 4.0]
    assert feature(state, now, "depletion_per_h_3h").tolist() == [4.0, 4.0]


def test_a_product_on_two_lanes_splits_its_sales_evenly(make_shelf: Any) -> None:
    shared = make_gtin("290000000042")
    shelf = make_shelf(3, gtins=[shared, shared, make_gtin("290000000043")])
    state = LaneFeatureState(shelf.specs())
    shelf.play(state, lambda k: [20, 20, 20], range(60))
    for k in range(6):
        state.observe_sale(MONDAY_MS + (10 + k) * MINUTE_MS, shared)
    state.observe_sale(MONDAY_MS + 20 * MINUTE_MS, make_gtin("290000000099"))  # not on a shelf
    now = MONDAY_MS + 59 * MINUTE_MS
    assert feature(state, now, "sales_per_h_3h").tolist() == [1.0, 1.0, 0.0]
    assert feature(state, now, "sales_per_h_24h").tolist() == [0.125, 0.125, 0.0]
    assert state.unmatched_sales == 1


@pytest.mark.parametrize(
    ("ts_ms", "offset_min", "hour", "weekday"),
    [
        (MONDAY_MS, 0, 0.0, 0),
        (MONDAY_MS + 3 * 86_400_000 + 18 * HOUR_MS, 0, 18.0, 3),  # Thursday 18:00
        (MONDAY_MS - HOUR_MS, 120, 1.0, 0),  # Sunday 23:00 UTC is Monday 01:00 at UTC+2
        (MONDAY_MS + 30 * MINUTE_MS, -60, 23.5, 6),  # Sunday 23:30 at UTC-1
    ],
)
def test_hour_of_week_angles(ts_ms: int, offset_min: int, hour: float, weekday: int) -> None:
    lane = LaneSpec("s0001-shelf-01", 0, make_gtin("290000000001"), 100.0, 10)
    state = LaneFeatureState([lane], utc_offset_min=offset_min)
    row = state.features(ts_ms)[0]
    h = 2 * math.pi * hour / 24
    d = 2 * math.pi * (weekday + hour / 24) / 7
    got = [row[FEATURE_NAMES.index(n)] for n in ("hour_sin", "hour_cos", "dow_sin", "dow_cos")]
    assert got == pytest.approx([math.sin(h), math.cos(h), math.sin(d), math.cos(d)], abs=1e-6)


def _morning_rush(day_minute: int) -> int:
    """Units taken so far today: one every 30 minutes from 08:00 to 10:59."""
    hour = day_minute // 60
    if hour < 8:
        return 0
    return min((day_minute - 480) // 30 + 1, 6)


@pytest.mark.slow
def test_profile_sees_the_morning_rush_that_linear_extrapolation_misses(make_shelf: Any) -> None:
    shelf = make_shelf(2, capacity=[60, 60])
    state = LaneFeatureState(shelf.specs())

    def units(k: int) -> list[int]:
        day, minute = divmod(k, 1440)
        taken = _morning_rush(minute)
        # Lane 0 is filled to 60 every morning at 07:00; lane 1 never: 21 → 15 → 9 → 3.
        return [60 - taken, 21 - 6 * day - taken]

    shelf.play(state, units, range(3 * 1440 + 7 * 60 + 1))
    now = MONDAY_MS + (3 * 1440 + 7 * 60) * MINUTE_MS  # Thursday 07:00
    assert state.units().tolist() == [60, 3]
    assert feature(state, now, "expected_removals_3h").tolist() == [4.0, 4.0]
    assert feature(state, now, "profile_days").tolist() == [3.0, 3.0]
    # Nothing was taken in the last 3 hours: the naive view sees no depletion.
    assert feature(state, now, "depletion_per_h_3h").tolist() == [0.0, 0.0]
    assert feature(state, now, "minutes_to_empty_linear").tolist() == [1440.0, 1440.0]
    # The profile: 2 units by 09:00, the third half-way through 09:00-10:00.
    eta = state.expected_minutes_to_empty(now)
    assert eta[1] == pytest.approx(150.0)
    assert eta[0] == math.inf  # 6 a day never empties 60 within the week's horizon
    assert feature(state, now, "minutes_to_empty_profile").tolist() == [1440.0, 150.0]


def test_features_are_finite_float32_and_capped_from_the_first_call(make_shelf: Any) -> None:
    shelf = make_shelf(3)
    state = LaneFeatureState(shelf.specs())
    empty = state.features(MONDAY_MS)
    assert empty.dtype == np.float32
    assert empty.shape == (3, len(FEATURE_NAMES))
    assert np.isfinite(empty).all()
    shelf.play(state, lambda k: [40, 0, 7], range(5))
    full = state.features(MONDAY_MS + 10 * 86_400_000)  # long after: ages hit their caps
    assert np.isfinite(full).all()
    caps = np.array([FEATURE_CAPS[n] for n in FEATURE_NAMES], dtype=np.float32)
    assert (full <= caps).all()
    assert full[0, FEATURE_NAMES.index("data_age_min")] == FEATURE_CAPS["data_age_min"]
    assert state.expected_minutes_to_empty(MONDAY_MS).tolist() == [math.inf, 0.0, math.inf]
