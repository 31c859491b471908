"""Daily demand forecast and its uncertainty for every store×SKU pair.

Smooth and erratic pairs: a level with day-of-week factors (``seasonality``),
the level being units sold over the sum of the factors of the days they were
sold in. Intermittent and lumpy pairs: Croston/SBA (``croston``) on a flat
week, since a slow mover's weekday pattern is noise. No demand at all: 0.

Uncertainty: the standard deviation of daily demand around the fitted
forecast over the history, never below the Poisson value ``sqrt(rate)`` (a
history that happened to be steady does not make demand certain); over ``n``
days it grows with ``sqrt(n)``, days being taken as independent.

The same function takes shelf depletion in place of scanner sales for stores
without a scanner: both are units leaving the shelf per day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelflink.cloud.planning.codes import DemandClass
from shelflink.cloud.planning.croston import sba_rate
from shelflink.cloud.planning.demand_class import classify, is_intermittent, summarise
from shelflink.cloud.planning.inputs import (
    AnyFloats,
    AnyInts,
    FloatArray,
    IntArray,
    PlanningSettings,
    UInt8Array,
)
from shelflink.cloud.planning.seasonality import weekday_factors

_TRANSPOSE_BLOCK = 4096


@dataclass(frozen=True, slots=True)
class DemandForecast:
    """Per pair: units per day before weekday factors, the factors, sigma of a day, the class."""

    rate: FloatArray  # (pairs,)
    weekday_factors: FloatArray  # (7, pairs): weekday-major, Monday first; average 1
    sigma_daily: FloatArray  # (pairs,)
    demand_class: UInt8Array  # (pairs,) DemandClass codes

    def expected_demand(self, start_weekday: int, days: AnyInts) -> FloatArray:
        """Units expected over ``days`` days (per pair) starting on ``start_weekday``."""
        factors = self.weekday_factors
        week = factors[0].copy()
        for weekday in range(1, 7):
            week += factors[weekday]
        # partial[r]: the factors of the first r days from start_weekday, r = 0..6.
        partial = np.zeros_like(factors)
        for r in range(1, 7):
            partial[r] = partial[r - 1] + factors[(start_weekday + r - 1) % 7]
        days = np.asarray(days, dtype=np.int64)
        weeks, rest = np.divmod(days, 7)
        rest_factors = partial[rest, np.arange(days.shape[0])]
        expected: FloatArray = self.rate * (weeks * week + rest_factors)
        return expected

    def sigma_over(self, days: AnyInts) -> FloatArray:
        """Standard deviation of demand summed over ``days`` days, per pair."""
        sigma: FloatArray = self.sigma_daily * np.sqrt(np.asarray(days, dtype=np.float64))
        return sigma


def forecast_demand(
    history: AnyFloats, weekdays: AnyInts, settings: PlanningSettings | None = None
) -> DemandForecast:
    """Forecast every row of ``history`` (``(pairs, days)``, oldest day first).

    ``weekdays[t]`` is the weekday (0 = Monday) of history day ``t``; a
    partition shares one calendar.
    """
    settings = settings or PlanningSettings()
    calendar: IntArray = np.asarray(weekdays, dtype=np.int64)
    history = np.asarray(history)
    if history.ndim != 2 or calendar.shape != (history.shape[1],):
        raise ValueError("history must be (pairs, days) and weekdays give each day's weekday")
    by_day = day_major(history)
    days, pairs = by_day.shape
    summary = summarise(by_day, calendar)
    classes = classify(summary, settings)
    rate = np.zeros(pairs)
    factors = np.ones((7, pairs))
    sigma_daily = np.zeros(pairs)  # stays 0 for a history without demand

    steady = np.flatnonzero((classes == DemandClass.SMOOTH) | (classes == DemandClass.ERRATIC))
    if steady.size:
        part = summary.take(steady)
        steady_days = by_day.take(steady, axis=1)  # C order: by_day[:, steady] is not
        steady_factors = weekday_factors(part, calendar, settings.seasonality_prior_units)
        factor_days = np.zeros(steady.size)
        for t in range(days):
            factor_days += steady_factors[calendar[t]]
        steady_rate = part.total / factor_days
        squared_errors = np.zeros(steady.size)
        for t in range(days):
            error = steady_days[t] - steady_rate * steady_factors[calendar[t]]
            squared_errors += error * error
        rate[steady] = steady_rate
        factors[:, steady] = steady_factors
        sigma_daily[steady] = _sigma(squared_errors, steady_rate, days)

    sparse = np.flatnonzero(is_intermittent(classes))
    if sparse.size:
        sparse_days = by_day.take(sparse, axis=1)
        sparse_rate = sba_rate(
            sparse_days, summary.total[sparse], summary.demand_days[sparse], settings.croston_alpha
        )
        # A flat week: the fitted value of every day is the rate itself.
        squared_errors = np.zeros(sparse.size)
        for t in range(days):
            error = sparse_days[t] - sparse_rate
            squared_errors += error * error
        rate[sparse] = sparse_rate
        sigma_daily[sparse] = _sigma(squared_errors, sparse_rate, days)
    return DemandForecast(rate, factors, sigma_daily, classes)


def day_major(history: AnyFloats) -> FloatArray:
    """``(pairs, days)`` as float64 ``(days, pairs)``: one contiguous vector per day."""
    pairs, days = history.shape
    by_day = np.empty((days, pairs))
    # Transposing in blocks that fit the cache is several times faster than at once.
    for start in range(0, pairs, _TRANSPOSE_BLOCK):
        stop = min(start + _TRANSPOSE_BLOCK, pairs)
        by_day[:, start:stop] = history[start:stop].T
    return by_day


def _sigma(squared_errors: FloatArray, rate: FloatArray, days: int) -> FloatArray:
    """sigma of a day: the residuals' sample deviation, at least Poisson's ``sqrt(rate)``."""
    sigma: FloatArray = np.sqrt(np.maximum(squared_errors / max(days - 1, 1), rate))
    return sigma
