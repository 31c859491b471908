"""Day-of-week factors of a demand history, shrunk towards a flat week.

A factor is a weekday's mean demand over the mean of the seven weekday
means, so the seven factors average 1. Evidence grows with units sold: the
factors get the weight ``units / (units + prior_units)`` and a flat week (all
1) the rest, so a pair that sold a dozen units in four weeks is not given a
"Tuesday effect" by chance, while a fast mover keeps its real pattern.
"""

from __future__ import annotations

import numpy as np

from shelflink.cloud.planning.demand_class import HistorySummary
from shelflink.cloud.planning.inputs import FloatArray, IntArray


def weekday_factors(summary: HistorySummary, weekdays: IntArray, prior_units: float) -> FloatArray:
    """Shrunk factors, ``(7, pairs)``; all 1 if the history misses a weekday."""
    pairs = summary.total.shape[0]
    days_per_weekday = np.bincount(weekdays, minlength=7)
    if np.any(days_per_weekday == 0):
        # Less than a week: no weekday pattern can be told from the level.
        return np.ones((7, pairs))
    means = summary.weekday_totals / days_per_weekday[:, np.newaxis]
    mean_of_means = means[0].copy()
    for weekday in range(1, 7):
        mean_of_means += means[weekday]
    mean_of_means = mean_of_means / 7.0
    raw = np.divide(means, mean_of_means, out=np.ones_like(means), where=mean_of_means > 0.0)
    weight = summary.total / (summary.total + prior_units)
    factors: FloatArray = weight * raw + (1.0 - weight)
    return factors
