"""Mean kinetic temperature: a hand-computed case, the weighted form and its bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.edge.mkt import mean_kinetic_temperature


def test_two_readings_computed_by_hand() -> None:
    # ΔH/R = 83 144 / 8.3144 = 10 000 K.
    #   0 °C = 273.15 K: exp(-10000 / 273.15) = exp(-36.609921) = 1.260414e-16
    #  10 °C = 283.15 K: exp(-10000 / 283.15) = exp(-35.316970) = 4.592349e-16
    # mean = 2.926382e-16; -ln(mean) = 35.767589
    # T = 10000 / 35.767589 = 279.58268 K = 6.43268 °C (the arithmetic mean is 5 °C).
    assert mean_kinetic_temperature(np.array([0.0, 10.0])) == pytest.approx(6.43268, abs=1e-5)


def test_a_warm_hour_weighs_more_than_its_share_of_time() -> None:
    # Three hours at 5 °C and one at 15 °C: mean 7.5 °C, MKT 8.786 °C.
    assert mean_kinetic_temperature([5.0, 5.0, 5.0, 15.0]) == pytest.approx(8.78593, abs=1e-5)
    # The same thing written as durations.
    weighted = mean_kinetic_temperature([5.0, 15.0], weights=[3.0, 1.0])
    assert weighted == pytest.approx(8.78593, abs=1e-5)


def test_a_constant_temperature_is_its_own_mkt_and_delta_h_matters() -> None:
    assert mean_kinetic_temperature(np.full(1440, 4.0)) == pytest.approx(4.0, abs=1e-9)
    low = mean_kinetic_temperature([2.0, 25.0], delta_h_j_per_mol=40_000.0)
    high = mean_kinetic_temperature([2.0, 25.0], delta_h_j_per_mol=120_000.0)
    assert 13.5 < low < high < 25.0  # a higher activation energy leans harder on the warm end


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-40.0, 60.0, allow_nan=False), min_size=1, max_size=50))
def test_mkt_lies_between_the_mean_and_the_maximum(temps: list[float]) -> None:
    mkt = mean_kinetic_temperature(temps)
    assert float(np.mean(temps)) - 1e-6 <= mkt <= max(temps) + 1e-6


@pytest.mark.parametrize(
    ("temps", "kwargs", "message"),
    [
        ([], {}, "at least one"),
        ([4.0, math.nan], {}, "finite"),
        ([-300.0], {}, "absolute zero"),
        ([4.0], {"delta_h_j_per_mol": 0.0}, "positive"),
        ([4.0, 5.0], {"weights": [1.0]}, "one weight"),
        ([4.0, 5.0], {"weights": [0.0, 0.0]}, "not all zero"),
    ],
)
def test_refuses_what_has_no_mkt(
    temps: list[float], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mean_kinetic_temperature(temps, **kwargs)  # type: ignore[arg-type]
