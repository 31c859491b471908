"""Replaying recorded lane readings into a feature state, one tick at a time, and timing it.

Readings recorded as columns (a data set's ``readings.parquet``, a gateway's
buffer) are replayed exactly as the gateway would have seen them: every
reading stamped ``ts`` goes in with one vectorised :meth:`observe_lanes` call.
The caller reads the columns; this module needs nothing but numpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.stream.lane_state import LaneFeatureState

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def replay_lane_readings(
    state: LaneFeatureState,
    ts_ms: I64,
    lane_index: I64,
    grams: F64,
    board_c: F64,
    *,
    on_tick: Callable[[int, slice], None] | None = None,
) -> int:
    """Feed rows sorted by ``ts_ms`` into ``state``; returns the number of ticks.

    ``on_tick(ts, rows)`` runs after each tick's readings are in, with the
    slice of rows that tick covered (to compare with a truth column, sample
    features, drain events...).
    """
    if ts_ms.shape[0] == 0:
        return 0
    if np.any(np.diff(ts_ms) < 0):
        raise ValueError("rows must be sorted by ts")
    cuts = np.flatnonzero(np.diff(ts_ms)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    ends = np.concatenate([cuts, [ts_ms.shape[0]]]).tolist()
    times = ts_ms[starts].tolist()
    for t, a, b in zip(times, starts, ends, strict=True):
        state.observe_lanes(t, lane_index[a:b], grams[a:b], board_c[a:b])
        if on_tick is not None:
            on_tick(t, slice(a, b))
    return len(times)


@dataclass(frozen=True, slots=True)
class ReplayFigures:
    """What one timed replay measured."""

    lanes: int
    ticks: int
    lane_readings: int
    feature_calls: int
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time: less sensitive to a busy machine

    @property
    def lane_readings_per_s(self) -> float:
        return self.lane_readings / self.seconds if self.seconds > 0 else float("inf")

    @property
    def us_per_tick(self) -> float:
        return self.seconds / self.ticks * 1e6 if self.ticks else 0.0


def time_replay(
    state: LaneFeatureState,
    ts_ms: I64,
    lane_index: I64,
    grams: F64,
    board_c: F64,
    *,
    features_every: int = 0,
) -> ReplayFigures:
    """Replay and time it; ``features_every`` > 0 also computes features every n ticks."""
    calls = 0
    seen = 0

    def sample(now_ms: int, _: slice) -> None:
        nonlocal calls, seen
        seen += 1
        if features_every and seen % features_every == 0:
            state.features(now_ms)
            calls += 1

    wall, cpu = time.perf_counter(), time.process_time()
    ticks = replay_lane_readings(state, ts_ms, lane_index, grams, board_c, on_tick=sample)
    return ReplayFigures(
        lanes=len(state.lanes),
        ticks=ticks,
        lane_readings=int(ts_ms.shape[0]),
        feature_calls=calls,
        seconds=time.perf_counter() - wall,
        cpu_seconds=time.process_time() - cpu,
    )


def numpy_call_cost_us(lanes: int = 64, calls: int = 200_000) -> float:
    """Microseconds per small numpy call on this machine: the baseline a replay is read against.

    The replay's cost is dominated by a fixed number of numpy calls per tick,
    so its speed on another machine scales with this figure.
    """
    a = np.linspace(0.0, 1.0, lanes)
    b = a[::-1].copy()
    start = time.process_time()
    for _ in range(calls // 2):
        np.where(a > 0.5, a, b)
    return (time.process_time() - start) / calls * 1e6
