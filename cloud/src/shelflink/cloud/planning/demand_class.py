"""Summaries of a demand history and its Syntetos–Boylan–Croston category.

Sums run day by day and weekday by weekday in a fixed order, element-wise
over pairs, so that a plain per-pair loop doing the same additions gets the
same floating-point result to the last bit (``naive.py`` relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelflink.cloud.planning.codes import DemandClass
from shelflink.cloud.planning.inputs import (
    BoolArray,
    FloatArray,
    IntArray,
    PlanningSettings,
    UInt8Array,
)


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """Per pair sums over a history laid out day-major, ``(days, pairs)``."""

    weekday_totals: FloatArray  # (7, pairs): units sold on each weekday
    total: FloatArray  # (pairs,)
    sum_squares: FloatArray  # (pairs,): of daily demand; zero days add nothing
    demand_days: IntArray  # (pairs,): days with demand above zero
    days: int

    def take(self, index: IntArray) -> HistorySummary:
        """The summary of the pairs at ``index`` only."""
        return HistorySummary(
            self.weekday_totals.take(index, axis=1),
            self.total[index],
            self.sum_squares[index],
            self.demand_days[index],
            self.days,
        )


def summarise(by_day: FloatArray, weekdays: IntArray) -> HistorySummary:
    """Weekday totals, total, sum of squares and demand days of each pair's history."""
    days, pairs = by_day.shape
    weekday_totals = np.zeros((7, pairs))
    sum_squares = np.zeros(pairs)
    for t in range(days):
        demand = by_day[t]
        weekday_totals[weekdays[t]] += demand
        sum_squares += demand * demand
    total = weekday_totals[0].copy()
    for weekday in range(1, 7):
        total += weekday_totals[weekday]
    demand_days = np.count_nonzero(by_day > 0.0, axis=0).astype(np.int64)
    return HistorySummary(weekday_totals, total, sum_squares, demand_days, days)


def classify(summary: HistorySummary, settings: PlanningSettings) -> UInt8Array:
    """Smooth, erratic, intermittent or lumpy by ADI and CV², or no demand at all.

    ADI (average demand interval) is days per day with demand; CV² is the
    squared coefficient of variation of the non-zero demand sizes.
    """
    demand_days = summary.demand_days
    some = demand_days > 0
    counted = np.maximum(demand_days, 1)
    adi = summary.days / counted
    mean_size = summary.total / counted
    mean_size_squared = mean_size * mean_size
    variance = np.maximum(summary.sum_squares / counted - mean_size_squared, 0.0)
    cv2 = np.divide(
        variance, mean_size_squared, out=np.zeros_like(variance), where=mean_size_squared > 0.0
    )
    sparse = adi >= settings.adi_cutoff
    variable = cv2 >= settings.cv2_cutoff
    classes = np.select(
        [~some, sparse & variable, sparse, variable],
        [DemandClass.NO_DEMAND, DemandClass.LUMPY, DemandClass.INTERMITTENT, DemandClass.ERRATIC],
        default=DemandClass.SMOOTH,
    ).astype(np.uint8)
    return classes


def is_intermittent(classes: UInt8Array) -> BoolArray:
    """Pairs whose demand comes in sparse bursts: Croston's territory."""
    sparse: BoolArray = (classes == DemandClass.INTERMITTENT) | (classes == DemandClass.LUMPY)
    return sparse
