"""Local time of day and week of a store, as angles a model can use."""

from __future__ import annotations

import math

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
# 1970-01-01 was a Thursday; this shift makes weekday 0 a Monday.
_EPOCH_WEEKDAY = 3


def local_ms(ts_ms: int, utc_offset_min: int) -> int:
    """Epoch milliseconds shifted to the store's wall clock."""
    return ts_ms + utc_offset_min * 60_000


def local_hour_index(ts_ms: int, utc_offset_min: int) -> int:
    """Hours since the epoch on the store's wall clock (its hour of day is this mod 24)."""
    return local_ms(ts_ms, utc_offset_min) // MS_PER_HOUR


def hour_of_week_angles(ts_ms: int, utc_offset_min: int) -> tuple[float, float, float, float]:
    """``(sin, cos)`` of the hour of day and ``(sin, cos)`` of the day of week.

    Angles keep 23:59 next to 00:00 and Sunday next to Monday, which raw hour
    and weekday numbers do not.
    """
    local = local_ms(ts_ms, utc_offset_min)
    hour = (local % MS_PER_DAY) / MS_PER_HOUR
    day = ((local // MS_PER_DAY + _EPOCH_WEEKDAY) % 7) + hour / 24.0
    h = 2.0 * math.pi * hour / 24.0
    d = 2.0 * math.pi * day / 7.0
    return math.sin(h), math.cos(h), math.sin(d), math.cos(d)
