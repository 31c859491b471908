"""A live run's view for a terminal: per store, what is flowing and what is running low.

Plain frozen data, rebuilt after every step of the run: a view polls it or
receives it through the run's callback and never touches the simulator.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Message rates are averaged over this much wall time: long enough to be
# steady at one tick per second, short enough to show a broker outage.
RATE_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class StoreView:
    store_id: str
    profile: str
    sim_ms: int  # the store's last simulated tick
    published: int  # data messages acknowledged by the broker so far
    backlog: int  # queued or in flight, not yet acknowledged
    dropped: int  # dropped by a full outgoing queue
    msgs_per_s: float  # acknowledged per wall-clock second, recently
    lanes: int
    lanes_low: int  # true units at or below the low-stock share of capacity
    lanes_out: int  # true units 0
    fridge_c: tuple[float, ...]  # each fridge's last measured cabinet temperature
    units_sold: int
    units_lost: int  # wanted from an empty lane


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    elapsed_s: float  # wall-clock seconds since the simulated clock started
    sim_ms: int
    ticks_done: int
    ticks_total: int
    speed: float
    connected: int  # device clients connected right now
    devices: int
    stores: tuple[StoreView, ...]

    @property
    def published(self) -> int:
        return sum(s.published for s in self.stores)

    @property
    def done(self) -> bool:
        return self.ticks_done >= self.ticks_total


class Rate:
    """Events per second over the last ``window_s`` of samples of a running count."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now_s: float, count: int) -> float:
        self._samples.append((now_s, count))
        while len(self._samples) > 2 and now_s - self._samples[1][0] >= self._window_s:
            self._samples.popleft()
        first_s, first_count = self._samples[0]
        span = now_s - first_s
        return (count - first_count) / span if span > 0 else 0.0
