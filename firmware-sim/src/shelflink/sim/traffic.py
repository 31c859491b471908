"""When customers come: the hour-of-day curve and the day-of-week factor.

Traffic has a morning, a lunch and an evening peak over a base level and is
zero while the store is closed; Fridays and Saturdays are busiest, Sundays
quietest. A profile's ``peak_customers_per_h`` is the rate at the daily peak
of an average weekday.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shelflink.sim.clock import hour_of_day, weekday
from shelflink.sim.profiles import StoreProfile

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Monday first.
WEEKDAY_FACTOR = np.array([0.92, 0.95, 0.97, 1.0, 1.12, 1.2, 0.84])
_PEAKS = ((8.5, 1.2, 0.55), (12.75, 1.3, 1.0), (17.5, 1.6, 0.9))  # hour, width, height


def _raw_shape(hours: F64) -> F64:
    shape = np.full_like(hours, 0.35)
    for centre, width, height in _PEAKS:
        shape += height * np.exp(-0.5 * ((hours - centre) / width) ** 2)
    return shape


_SHAPE_MAX = float(_raw_shape(np.linspace(0.0, 24.0, 24 * 60 + 1)).max())


def hourly_shape(hours: F64, open_hour: float, close_hour: float) -> F64:
    """Relative traffic by hour of day, 1.0 at the daily peak and 0 while closed."""
    shape = _raw_shape(hours) / _SHAPE_MAX
    open_now: F64 = np.where((hours >= open_hour) & (hours < close_hour), shape, 0.0)
    return open_now


def customer_rate(profile: StoreProfile, ts_ms: I64) -> F64:
    """Expected customers per hour at each instant, before the random day and tick factors."""
    shape = hourly_shape(hour_of_day(ts_ms), profile.open_hour, profile.close_hour)
    rate: F64 = profile.peak_customers_per_h * shape * WEEKDAY_FACTOR[weekday(ts_ms)]
    return rate


def expected_customers_per_day(profile: StoreProfile) -> float:
    hours = np.linspace(0.0, 24.0, 24 * 60, endpoint=False)
    per_hour = profile.peak_customers_per_h * hourly_shape(
        hours, profile.open_hour, profile.close_hour
    )
    return float(per_hour.mean() * 24.0 * WEEKDAY_FACTOR.mean())
