"""Croston's method with the Syntetos–Boylan approximation (SBA) for intermittent demand.

A slow mover sells on few days. Averaging its days (zeros included) is
right on average but smoothing the daily series swings between near 0 after
a quiet spell and far too much after a sale. Croston smooths the two things
that are stable instead: the size of a demand when it happens (``z``) and the
interval between demands (``p``), and forecasts ``z / p`` per day; SBA
multiplies by ``1 - alpha / 2`` to remove Croston's known upward bias.

Both estimates start from the whole history's averages (mean size, days per
demand day) rather than from the first demand, so that four weeks of a
weekly seller do not depend on the weekday the window happened to start on;
smoothing through the history then weights recent demands more. The first
interval counts from the day before the history starts.
"""

from __future__ import annotations

import numpy as np

from shelflink.cloud.planning.inputs import FloatArray, IntArray


def sba_rate(
    by_day: FloatArray, total: FloatArray, demand_days: IntArray, alpha: float
) -> FloatArray:
    """Units per day for each pair of a ``(days, pairs)`` history with demand on some day."""
    days = by_day.shape[0]
    size = total / demand_days
    interval = days / demand_days
    hit = by_day > 0.0
    # A day without demand updates nothing: its gain is 0 and the update adds
    # exactly 0.0, which keeps each step bit-identical to an ``if``.
    gain = hit * alpha
    idle = ~hit
    since_last = np.zeros_like(size)
    step = np.empty_like(size)
    for t in range(days):
        since_last += 1.0
        np.subtract(by_day[t], size, out=step)
        step *= gain[t]
        size += step
        np.subtract(since_last, interval, out=step)
        step *= gain[t]
        interval += step
        since_last *= idle[t]
    rate: FloatArray = (1.0 - alpha / 2.0) * size / interval
    return rate
