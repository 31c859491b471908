"""Demand forecast: Croston/SBA, demand classes, weekday factors, uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shelflink.cloud.planning import DemandClass, PlanningSettings, forecast_demand

MONDAY_FIRST_4_WEEKS = np.arange(28) % 7


def test_sba_on_a_hand_computed_intermittent_series() -> None:
    history = np.array([[0, 0, 3, 0, 0, 0, 2, 0, 0, 4]], dtype=np.float64)
    forecast = forecast_demand(history, np.arange(10) % 7, PlanningSettings(croston_alpha=0.1))
    # 10 days, 3 with demand: start z = 9 / 3 = 3, p = 10 / 3.
    # day 2, size 3 after 3 days: z = 3 + 0.1 (3 - 3) = 3,    p = 10/3 + 0.1 (3 - 10/3) = 3.3
    # day 6, size 2 after 4 days: z = 3 + 0.1 (2 - 3) = 2.9,  p = 3.3 + 0.1 (4 - 3.3) = 3.37
    # day 9, size 4 after 3 days: z = 2.9 + 0.1 (4 - 2.9) = 3.01, p = 3.37 + 0.1 (3 - 3.37) = 3.333
    # SBA: (1 - 0.1 / 2) * 3.01 / 3.333 = 0.857935...
    assert forecast.rate[0] == pytest.approx(0.95 * 3.01 / 3.333, rel=1e-12)
    # ADI 10/3 >= 1.32; sizes 3, 2, 4: CV² = (2/3) / 9 = 0.074 < 0.49.
    assert forecast.demand_class[0] == DemandClass.INTERMITTENT
    # sigma of a day: residuals around the flat rate r, over 10 - 1 days.
    r = 0.95 * 3.01 / 3.333
    squares = 7 * r**2 + (3 - r) ** 2 + (2 - r) ** 2 + (4 - r) ** 2
    assert forecast.sigma_daily[0] == pytest.approx(math.sqrt(squares / 9), rel=1e-12)
    assert np.all(forecast.weekday_factors[:, 0] == 1.0)  # a slow mover gets a flat week


def test_a_weekly_seller_is_forecast_at_about_one_seventh_of_a_unit_a_day() -> None:
    history = np.zeros((1, 28))
    history[0, 2::7] = 1.0  # one unit every Wednesday
    forecast = forecast_demand(history, MONDAY_FIRST_4_WEEKS)
    # z stays 1; p starts at 28 / 4 = 7, first interval 3 (from the start):
    # 7 - 0.4 = 6.6, then intervals of 7: 6.64, 6.676, 6.7084. Rate 0.95 / 6.7084.
    assert forecast.rate[0] == pytest.approx(0.95 / 6.7084, rel=1e-12)
    assert 0.1 < forecast.rate[0] < 0.2  # neither 0 nor a unit a day
    expected_week = forecast.expected_demand(0, np.array([7]))
    assert expected_week[0] == pytest.approx(7 * 0.95 / 6.7084)


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ([2.0] * 14, DemandClass.SMOOTH),
        ([1.0, 10.0] * 7, DemandClass.ERRATIC),  # ADI 1, CV² = 20.25 / 30.25 = 0.67
        ([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0] * 2, DemandClass.INTERMITTENT),  # ADI 3.5, CV² 0
        ([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 20.0] * 2, DemandClass.LUMPY),  # CV² = 0.82
        ([0.0] * 14, DemandClass.NO_DEMAND),
    ],
)
def test_demand_classes(series: list[float], expected: DemandClass) -> None:
    forecast = forecast_demand(np.array([series]), np.arange(len(series)) % 7)
    assert forecast.demand_class[0] == expected


def test_no_demand_is_forecast_as_zero_with_zero_uncertainty() -> None:
    forecast = forecast_demand(np.zeros((1, 28)), MONDAY_FIRST_4_WEEKS)
    assert forecast.rate[0] == 0.0
    assert forecast.sigma_daily[0] == 0.0


def test_a_steady_history_still_has_poisson_uncertainty() -> None:
    forecast = forecast_demand(np.full((1, 14), 2.0), np.arange(14) % 7)
    # Every day 2: residuals 0, but demand of rate 2 is never certain: sqrt(2).
    assert forecast.rate[0] == 2.0
    assert forecast.sigma_daily[0] == pytest.approx(math.sqrt(2.0))
    # Over 3 days: sqrt(2) * sqrt(3).
    assert forecast.sigma_over(np.array([3]))[0] == pytest.approx(math.sqrt(6.0))


PATTERN = np.array([0.8, 0.8, 0.9, 1.0, 1.2, 1.5, 0.8])  # Monday first, averages 1


def test_weekly_seasonality_is_recovered_and_shrunk_by_evidence() -> None:
    weekdays = np.arange(56) % 7
    history = np.vstack([10.0 * PATTERN[weekdays], 1000.0 * PATTERN[weekdays]])
    forecast = forecast_demand(history, weekdays)
    # Pair 0 sold 8 weeks × 70 = 560 units: weight 560 / (560 + 70) = 8/9 on the
    # observed pattern, 1/9 on a flat week.
    weight = 560.0 / 630.0
    np.testing.assert_allclose(forecast.weekday_factors[:, 0], 1 + weight * (PATTERN - 1))
    # Pair 1 sold 56,000 units: the pattern itself, to within 0.2 %.
    np.testing.assert_allclose(forecast.weekday_factors[:, 1], PATTERN, rtol=2e-3)
    # Level: units over the sum of the factors of the days sold in = 10 and 1000.
    np.testing.assert_allclose(forecast.rate, [10.0, 1000.0])
    # Friday and Saturday (start weekday 4, 2 days) of the big seller: 1000 × (1.2 + 1.5).
    weekend = forecast.expected_demand(4, np.array([2, 2]))
    assert weekend[1] == pytest.approx(2700.0, rel=2e-3)
    # A whole week is 7 × level whatever the factors: they average 1.
    np.testing.assert_allclose(forecast.expected_demand(3, np.array([7, 7])), [70.0, 7000.0])


def test_a_weekday_pattern_in_a_slow_seller_is_mostly_ignored() -> None:
    weekdays = np.arange(28) % 7
    history = np.ones((1, 28))
    history[0, weekdays == 5] = 3.0  # Saturdays 3, other days 1: 36 units in 4 weeks
    forecast = forecast_demand(history, weekdays)
    saturday_raw = 3.0 / (9.0 / 7.0)  # Saturday mean over the mean of weekday means
    weight = 36.0 / (36.0 + 70.0)
    assert forecast.weekday_factors[5, 0] == pytest.approx(1 + weight * (saturday_raw - 1))
    assert forecast.weekday_factors[5, 0] < 1 + 0.5 * (saturday_raw - 1)


def test_less_than_a_week_of_history_has_a_flat_week() -> None:
    history = np.array([[1.0, 5.0, 2.0, 4.0, 3.0]])
    forecast = forecast_demand(history, np.arange(5))
    assert np.all(forecast.weekday_factors == 1.0)
    assert forecast.rate[0] == pytest.approx(3.0)


def test_shelf_depletion_in_fractional_units_is_forecast_the_same_way() -> None:
    # A store without a scanner: units leaving the shelf, estimated from grams.
    history = np.array([[2.4, 1.6, 2.0, 2.2, 1.8, 2.1, 1.9] * 2])
    forecast = forecast_demand(history, np.arange(14) % 7)
    assert forecast.demand_class[0] == DemandClass.SMOOTH
    assert forecast.rate[0] == pytest.approx(2.0)
