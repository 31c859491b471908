"""Simulated time: ticks of a fixed length, decoupled from the wall clock.

Tick ``t`` covers the interval ``(ts(t) - tick, ts(t)]``: everything that
happens in it (restocks, customers taking goods) is visible in the readings
stamped ``ts(t)``. Times of day are taken from UTC epoch milliseconds, i.e. a
store's local time is treated as UTC; a simulated store has no time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

MS_PER_DAY = 86_400_000
# 1970-01-01 was a Thursday; this shift makes weekday 0 a Monday.
_EPOCH_WEEKDAY = 3

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SimClock:
    start_ms: int
    tick_s: int = 60

    def __post_init__(self) -> None:
        if self.tick_s < 1 or 86_400 % self.tick_s != 0:
            raise ValueError("tick_s must divide a day (86400 s) evenly")
        if self.start_ms < 0:
            raise ValueError("start_ms must not be before 1970")

    @property
    def tick_ms(self) -> int:
        return self.tick_s * 1000

    @property
    def ticks_per_day(self) -> int:
        """The length of a random block: draws are made per simulated day."""
        return 86_400 // self.tick_s

    def ts(self, tick: int) -> int:
        return self.start_ms + tick * self.tick_ms

    def ts_range(self, first: int, count: int) -> I64:
        return self.start_ms + (np.arange(first, first + count, dtype=np.int64) * self.tick_ms)

    def first_tick_at_or_after(self, ts_ms: int) -> int:
        return max(0, -(-(ts_ms - self.start_ms) // self.tick_ms))

    @classmethod
    def starting(cls, when: datetime, tick_s: int = 60) -> SimClock:
        if when.tzinfo is None:
            raise ValueError("a simulated clock starts at an aware datetime (UTC)")
        return cls(start_ms=int(when.timestamp() * 1000), tick_s=tick_s)


DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def hour_of_day(ts_ms: I64) -> F64:
    return (ts_ms % MS_PER_DAY).astype(np.float64) / 3_600_000.0


def weekday(ts_ms: I64) -> I64:
    return ((ts_ms // MS_PER_DAY) + _EPOCH_WEEKDAY) % 7


def crosses_hour(ts_ms: I64, tick_ms: int, hour: float) -> npt.NDArray[np.bool_]:
    """True for the ticks whose interval ``(ts - tick, ts]`` contains ``hour`` o'clock."""
    mark = round(hour * 3_600_000) % MS_PER_DAY
    since = (ts_ms - mark) % MS_PER_DAY
    return since < tick_ms


def live_start_ms(now_ms: int, duration_s: float, speed: float, tick_s: int = 60) -> int:
    """Where a live run's simulated clock starts so that it never runs ahead of the wall.

    Simulated time advances ``speed`` times faster than the wall, so a run that
    starts at wall-clock ``now`` would soon stamp readings in the future, and a
    gateway's clock-skew check would reject them. Starting ``duration_s *
    (speed - 1)`` seconds in the past makes the simulated clock reach the wall
    clock exactly when the run ends; until then it is behind. Rounded down to a
    whole tick so that readings fall on round times.
    """
    lead_ms = int(max(speed - 1.0, 0.0) * duration_s * 1000.0)
    tick_ms = tick_s * 1000
    return ((now_ms - lead_ms) // tick_ms) * tick_ms
