"""What really happened: units per lane, stock-outs, and the books that must balance.

For every lane ``initial + restocked == on_shelf + sold + shrink`` holds
exactly after every tick (integers, no tolerance); for every SKU's backroom
``initial + received == on_hand + issued``. ``sold`` counts units when a
customer takes them (their scan at the till follows minutes later), and
``lost`` counts units customers wanted from an empty lane; thieves finding an
empty lane are not lost demand.

A lane is out of stock at a tick when its true units are 0. An interval runs
from the first such tick to the first tick with units again (exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]

NO_STOCKOUT = -1


@dataclass(eq=False)
class LaneLedger:
    initial: I64
    restocked: I64
    sold: I64
    shrink: I64
    lost: I64
    on_shelf: I64

    @classmethod
    def opening(cls, units: I64) -> LaneLedger:
        zeros = np.zeros_like(units)
        return cls(
            units.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), units.copy()
        )

    def imbalance(self) -> I64:
        return self.initial + self.restocked - self.on_shelf - self.sold - self.shrink

    def balanced(self) -> bool:
        return bool((self.imbalance() == 0).all())


@dataclass(eq=False)
class BackroomLedger:
    initial: I64
    received: I64
    issued: I64  # moved to lanes by restocking
    on_hand: I64

    @classmethod
    def opening(cls, units: I64) -> BackroomLedger:
        zeros = np.zeros_like(units)
        return cls(units.copy(), zeros.copy(), zeros.copy(), units.copy())

    def balanced(self) -> bool:
        return bool((self.initial + self.received == self.on_hand + self.issued).all())


@dataclass(frozen=True, slots=True, eq=False)
class StockoutIntervals:
    lane: I64
    start_ms: I64
    end_ms: I64  # NO_STOCKOUT while the interval is still open

    @classmethod
    def empty(cls) -> StockoutIntervals:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy())


@dataclass(eq=False)
class StockoutTracker:
    lanes: int
    open_since: I64 = field(init=False)  # start ts of the open interval, or NO_STOCKOUT

    def __post_init__(self) -> None:
        self.open_since = np.full(self.lanes, NO_STOCKOUT, dtype=np.int64)

    def update(self, units: I64, ts_ms: I64) -> StockoutIntervals:
        """Feed a chunk of true units ``(ticks, lanes)``; returns the intervals it closed."""
        zero = units == 0
        before = np.vstack([(self.open_since != NO_STOCKOUT)[None, :], zero])
        changed = before[1:] != before[:-1]
        lanes_out: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        # Transitions are rare (a few per lane and day), so a loop over them is cheap.
        for lane in np.flatnonzero(changed.any(axis=0)).tolist():
            for tick in np.flatnonzero(changed[:, lane]).tolist():
                if zero[tick, lane]:
                    self.open_since[lane] = ts_ms[tick]
                else:
                    lanes_out.append(lane)
                    starts.append(int(self.open_since[lane]))
                    ends.append(int(ts_ms[tick]))
                    self.open_since[lane] = NO_STOCKOUT
        # By end time, then lane: the same order however the ticks were chunked.
        order = np.lexsort((np.array(lanes_out, dtype=np.int64), np.array(ends, dtype=np.int64)))
        return StockoutIntervals(
            np.array(lanes_out, dtype=np.int64)[order],
            np.array(starts, dtype=np.int64)[order],
            np.array(ends, dtype=np.int64)[order],
        )

    def still_open(self) -> StockoutIntervals:
        lanes = np.flatnonzero(self.open_since != NO_STOCKOUT).astype(np.int64)
        return StockoutIntervals(
            lanes, self.open_since[lanes].copy(), np.full(lanes.shape[0], NO_STOCKOUT, np.int64)
        )


def first_stockout(units: I64) -> I64:
    """Per lane, the first tick of ``units`` with 0 units, or NO_STOCKOUT."""
    zero = units == 0
    if units.shape[0] == 0:
        return np.full(units.shape[1], NO_STOCKOUT, dtype=np.int64)
    return np.where(zero.any(axis=0), zero.argmax(axis=0), NO_STOCKOUT).astype(np.int64)


def ticks_to_stockout(units: I64, next_after: I64) -> I64:
    """Ticks from each ``(tick, lane)`` to the lane's next tick with 0 units (0 when
    out now), or NO_STOCKOUT when none comes within the horizon (censored).

    ``next_after[lane]`` is the first zero tick counted from the row after the
    end of ``units`` (as :func:`first_stockout` of the next chunk gives), so a
    horizon can be labelled chunk by chunk from its end backwards.
    """
    n = units.shape[0]
    never = np.iinfo(np.int64).max // 2
    rows = np.arange(n, dtype=np.int64)[:, None]
    position = np.where(units == 0, rows, never)
    tail = np.where(next_after == NO_STOCKOUT, never, n + next_after)
    following = np.minimum.accumulate(np.vstack([position, tail[None, :]])[::-1], axis=0)[::-1]
    distance = following[:-1] - rows
    return np.where(following[:-1] >= never, NO_STOCKOUT, distance)


def stockout_carry(units: I64, next_after: I64) -> I64:
    """The ``next_after`` for the chunk before ``units``: its first zero tick, else
    the one after it shifted by its length."""
    first = first_stockout(units)
    later = np.where(next_after == NO_STOCKOUT, NO_STOCKOUT, units.shape[0] + next_after)
    return np.where(first == NO_STOCKOUT, later, first)
