"""Features of one fridge's readings: excursions, door, compressor, defrost and sensor health.

A fridge controller reports about once a minute (the tick). Each accepted
reading *stands for* the time since the previous accepted reading, capped at
``max_gap_min``: readings describe the tick that ends at their timestamp, and
a longer silence is unknown time that no feature counts. Every duration below
("minutes above", "door-open minutes", duty cycle) is a sum of those credits,
so readings that arrive every 30 s or every 2 minutes give the same minutes.

Readings must arrive in event-time order per fridge. One whose ``ts`` is not
after the last accepted reading is refused and counted (``duplicates`` when
equal, ``late`` when earlier): a late fridge reading cannot be inserted into
runs that have already been judged, and dropping it is the only rule that
lets an alarm be raised by the reading that proves it.

Windows are bounded buffers over event time; the current run above (or
below) any temperature level is answered exactly from a monotonic stack, so
:meth:`FridgeFeatureState.snapshot` takes the limit as an argument.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

MS_PER_MIN: Final = 60_000


@dataclass(frozen=True, slots=True)
class FridgeSample:
    """One fridge controller reading, as the stream sees it (``ts_ms``: epoch ms, UTC)."""

    device: str
    ts_ms: int
    cabinet_c: float
    evaporator_c: float
    door_open: bool
    compressor_on: bool
    defrost_on: bool


@dataclass(frozen=True, slots=True)
class FridgeFeatures:
    """What one fridge's recent readings say, as of its last accepted reading.

    Minutes are credited minutes (see the module docstring). ``nan`` means
    "not enough readings to say"; ``minutes_since_defrost_end`` is ``inf``
    when no defrost has been seen and 0 while one is running.
    """

    cabinet_c: float
    limit_c: float
    minutes_above_run: float  # the current uninterrupted run above limit_c
    minutes_above_window: float  # within the last window_min
    rate_of_rise_c_per_min: float  # Theil–Sen slope of the cabinet over the last slope_min
    door_open_run_min: float  # the current run of readings with the door open
    door_open_share: float  # share of the window with the door open
    compressor_duty: float  # share of the window with the compressor running
    compressor_cycles: float  # on→off transitions within the window
    compressor_on_run_min: float  # the current run with the compressor running
    defrost_run_min: float  # how long the current defrost has lasted (0 when none)
    minutes_since_defrost_end: float
    cabinet_spread_c: float  # max - min of the cabinet over the last spread_min
    spread_span_min: float  # how many minutes of readings that spread covers
    window_covered_min: float  # credited minutes inside the window (< window_min early on)


@dataclass(frozen=True, slots=True)
class _Reading:
    sample: FridgeSample
    credit_ms: int


class _LastAtOrBelow:
    """When was a value last at or below a level? Exact, for any level, in O(log n).

    Keeps the readings that no later reading undercuts: their values rise
    strictly from the oldest to the newest, so the latest reading at or below
    ``level`` is the newest kept one that is. ``capacity`` bounds the stack (a
    week of one-minute readings that only ever rose); dropped readings leave
    the newest of them as a floor, and beyond it the answer is a lower bound.
    """

    __slots__ = ("_capacity", "_floor", "_marks", "_values")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._values: list[float] = []
        self._marks: list[int] = []
        self._floor: tuple[float, int] | None = None

    def push(self, value: float, mark: int) -> None:
        while self._values and self._values[-1] >= value:
            self._values.pop()
            self._marks.pop()
        self._values.append(value)
        self._marks.append(mark)
        if len(self._values) > self._capacity:
            drop = len(self._values) // 2
            self._floor = (self._values[drop - 1], self._marks[drop - 1])
            del self._values[:drop]
            del self._marks[:drop]

    def mark_at_or_below(self, level: float) -> int:
        """The mark of the latest value <= ``level``; 0 (the start) when there is none."""
        i = bisect.bisect_right(self._values, level) - 1
        if i >= 0:
            return self._marks[i]
        if self._floor is not None:
            # Either the floor is the answer, or the answer is older than anything
            # kept: then the run is at least as long as reported, never shorter.
            return self._floor[1]
        return 0


class FridgeFeatureState:
    """Rolling features of one fridge; feed it with :meth:`observe`, read :meth:`snapshot`.

    ``window_min`` is the window of the shares, cycles and minutes above;
    ``slope_min`` that of the rate of rise; ``spread_min`` that of the cabinet
    spread (flat-line detection); ``max_gap_min`` caps what one reading stands
    for. ``max_samples`` and ``run_capacity`` bound memory whatever the input.
    """

    def __init__(
        self,
        *,
        window_min: float = 60.0,
        slope_min: float = 20.0,
        spread_min: float = 30.0,
        max_gap_min: float = 15.0,
        max_samples: int = 20_000,
        run_capacity: int = 10_080,
    ) -> None:
        if min(window_min, slope_min, spread_min, max_gap_min) <= 0:
            raise ValueError("windows and the gap cap must be positive")
        if max_samples < 2 or run_capacity < 2:
            raise ValueError("keep at least two readings")
        self.window_ms = round(window_min * MS_PER_MIN)
        self.slope_ms = round(slope_min * MS_PER_MIN)
        self.spread_ms = round(spread_min * MS_PER_MIN)
        self.max_gap_ms = round(max_gap_min * MS_PER_MIN)
        self._horizon_ms = max(self.window_ms, self.slope_ms, self.spread_ms)
        self._buffer: deque[_Reading] = deque(maxlen=max_samples)
        self._elapsed_ms = 0  # total credited time: the "mark" of each reading
        self._lows = _LastAtOrBelow(run_capacity)
        self._highs = _LastAtOrBelow(run_capacity)  # fed negated values
        self._door_run_ms = 0
        self._compressor_run_ms = 0
        self._defrost_run_ms = 0
        self._defrost_end_ms: int | None = None
        self._last: FridgeSample | None = None
        self._last_credit_ms = 0
        self.accepted = 0
        self.late = 0
        self.duplicates = 0

    @property
    def last(self) -> FridgeSample | None:
        """The last accepted reading."""
        return self._last

    @property
    def buffered_readings(self) -> int:
        """Readings held for the windows (bounded by time and by ``max_samples``)."""
        return len(self._buffer)

    @property
    def last_credit_ms(self) -> int:
        """The milliseconds the last accepted reading stands for."""
        return self._last_credit_ms

    @property
    def last_credit_min(self) -> float:
        return self._last_credit_ms / MS_PER_MIN

    def observe(self, sample: FridgeSample) -> bool:
        """Take one reading; ``False`` (and counted) when it is late or a duplicate."""
        last = self._last
        if last is not None and sample.ts_ms <= last.ts_ms:
            if sample.ts_ms == last.ts_ms:
                self.duplicates += 1
            else:
                self.late += 1
            return False
        credit = 0 if last is None else min(sample.ts_ms - last.ts_ms, self.max_gap_ms)
        self._elapsed_ms += credit
        self._last_credit_ms = credit
        self._lows.push(sample.cabinet_c, self._elapsed_ms)
        self._highs.push(-sample.cabinet_c, self._elapsed_ms)
        self._door_run_ms = self._door_run_ms + credit if sample.door_open else 0
        self._compressor_run_ms = self._compressor_run_ms + credit if sample.compressor_on else 0
        if sample.defrost_on:
            self._defrost_run_ms += credit
        else:
            if last is not None and last.defrost_on:
                self._defrost_end_ms = sample.ts_ms
            self._defrost_run_ms = 0
        self._buffer.append(_Reading(sample, credit))
        # Keep one reading at or before the horizon: it opens the spread window.
        cutoff = sample.ts_ms - self._horizon_ms
        while len(self._buffer) >= 2 and self._buffer[1].sample.ts_ms <= cutoff:
            self._buffer.popleft()
        self._last = sample
        self.accepted += 1
        return True

    def minutes_above(self, limit_c: float) -> float:
        """Credited minutes of the current run of readings above ``limit_c`` (0 when not above)."""
        if self._last is None or self._last.cabinet_c <= limit_c:
            return 0.0
        return (self._elapsed_ms - self._lows.mark_at_or_below(limit_c)) / MS_PER_MIN

    def minutes_below(self, limit_c: float) -> float:
        """Credited minutes of the current run of readings below ``limit_c`` (0 when not below)."""
        if self._last is None or self._last.cabinet_c >= limit_c:
            return 0.0
        return (self._elapsed_ms - self._highs.mark_at_or_below(-limit_c)) / MS_PER_MIN

    @property
    def door_open_run_min(self) -> float:
        return self._door_run_ms / MS_PER_MIN

    @property
    def compressor_on_run_min(self) -> float:
        return self._compressor_run_ms / MS_PER_MIN

    @property
    def defrost_run_min(self) -> float:
        return self._defrost_run_ms / MS_PER_MIN

    @property
    def minutes_since_defrost_end(self) -> float:
        last = self._last
        if last is not None and last.defrost_on:
            return 0.0
        if last is None or self._defrost_end_ms is None:
            return math.inf
        return (last.ts_ms - self._defrost_end_ms) / MS_PER_MIN

    def rate_of_rise(self) -> float:
        """Theil–Sen slope of the cabinet temperature over the last ``slope_min``, °C/min.

        The median of pairwise slopes ignores a door opening or a noisy reading
        that would tilt a least-squares fit; ``nan`` with fewer than 3 readings.
        """
        last = self._last
        if last is None:
            return math.nan
        start = last.ts_ms - self.slope_ms
        points = [
            (r.sample.ts_ms, r.sample.cabinet_c) for r in self._buffer if r.sample.ts_ms >= start
        ]
        if len(points) < 3:
            return math.nan
        arr = np.asarray(points, dtype=np.float64)
        i, j = np.triu_indices(arr.shape[0], k=1)
        minutes = (arr[j, 0] - arr[i, 0]) / MS_PER_MIN
        return float(np.median((arr[j, 1] - arr[i, 1]) / minutes))

    def cabinet_spread(self) -> tuple[float, float, int]:
        """(max - min, minutes covered, readings) of the cabinet over the last ``spread_min``.

        The reading just before the window is included, so a full window covers
        at least ``spread_min`` minutes once that much history exists.
        """
        last = self._last
        if last is None:
            return math.nan, 0.0, 0
        start = last.ts_ms - self.spread_ms
        values: list[float] = []
        oldest = last.ts_ms
        for reading in reversed(self._buffer):
            values.append(reading.sample.cabinet_c)
            oldest = reading.sample.ts_ms
            if oldest <= start:
                break
        return max(values) - min(values), (last.ts_ms - oldest) / MS_PER_MIN, len(values)

    def snapshot(self, limit_c: float) -> FridgeFeatures:
        """All features as of the last accepted reading, excursions judged against ``limit_c``."""
        last = self._last
        if last is None:
            raise ValueError("no reading yet")
        start = last.ts_ms - self.window_ms
        covered = above = door = running = 0
        cycles = 0
        previous: FridgeSample | None = None
        for reading in self._buffer:
            s = reading.sample
            if s.ts_ms <= start:
                previous = s
                continue
            # Credit only the part of each reading's interval inside the window.
            credit = min(reading.credit_ms, s.ts_ms - start)
            covered += credit
            above += credit if s.cabinet_c > limit_c else 0
            door += credit if s.door_open else 0
            running += credit if s.compressor_on else 0
            if previous is not None and previous.compressor_on and not s.compressor_on:
                cycles += 1
            previous = s
        spread, span, _ = self.cabinet_spread()
        return FridgeFeatures(
            cabinet_c=last.cabinet_c,
            limit_c=limit_c,
            minutes_above_run=self.minutes_above(limit_c),
            minutes_above_window=above / MS_PER_MIN,
            rate_of_rise_c_per_min=self.rate_of_rise(),
            door_open_run_min=self.door_open_run_min,
            door_open_share=door / covered if covered else math.nan,
            compressor_duty=running / covered if covered else math.nan,
            compressor_cycles=float(cycles),
            compressor_on_run_min=self.compressor_on_run_min,
            defrost_run_min=self.defrost_run_min,
            minutes_since_defrost_end=self.minutes_since_defrost_end,
            cabinet_spread_c=spread,
            spread_span_min=span,
            window_covered_min=covered / MS_PER_MIN,
        )
