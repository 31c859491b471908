"""Event-time rules: per-key in-order admission, the store watermark and inference ticks.

Readings carry their device's timestamp (event time). The rules, also in
docs/stream.md:

- A key (a shelf device) only moves forward. A reading with the same
  timestamp as the key's last accepted one is a DUPLICATE (a redelivery), one
  with an older timestamp is LATE. Both are counted and dropped: a lane's
  state is a running fold over its readings and is never rewound.
- The store watermark is the latest event time seen minus an allowed
  lateness: the point up to which the store's readings are taken as complete.
- A :class:`TickClock` turns the watermark into tick boundaries (multiples
  of the tick) so that inference runs on event time: a replay or an
  accelerated simulation ticks exactly as the live store would.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Admission(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same timestamp as the key's last accepted reading
    LATE = "late"  # older than the key's last accepted reading


@dataclass(slots=True)
class AdmissionCounts:
    """How many readings each rule let through or dropped."""

    accepted: int = 0
    duplicate: int = 0
    late: int = 0

    def count(self, admission: Admission) -> None:
        if admission is Admission.ACCEPTED:
            self.accepted += 1
        elif admission is Admission.DUPLICATE:
            self.duplicate += 1
        else:
            self.late += 1


@dataclass(slots=True)
class InOrderGate(Generic[K]):
    """Admits a key's readings only in strictly increasing event time."""

    counts: AdmissionCounts = field(default_factory=AdmissionCounts)
    _last: dict[K, int] = field(default_factory=dict)

    def admit(self, key: K, ts_ms: int) -> Admission:
        last = self._last.get(key)
        if last is None or ts_ms > last:
            self._last[key] = ts_ms
            admission = Admission.ACCEPTED
        elif ts_ms == last:
            admission = Admission.DUPLICATE
        else:
            admission = Admission.LATE
        self.counts.count(admission)
        return admission

    def last_accepted(self, key: K) -> int | None:
        """The key's latest accepted event time, None before its first reading."""
        return self._last.get(key)


class StoreWatermark:
    """The store's event-time watermark: latest event time seen minus the allowed lateness."""

    def __init__(self, allowed_lateness_ms: int = 0) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed lateness cannot be negative")
        self.allowed_lateness_ms = allowed_lateness_ms
        self.max_event_ms: int | None = None

    def observe(self, ts_ms: int) -> int:
        """Take one event time in; returns the watermark after it."""
        if self.max_event_ms is None or ts_ms > self.max_event_ms:
            self.max_event_ms = ts_ms
        return self.max_event_ms - self.allowed_lateness_ms

    @property
    def value(self) -> int | None:
        """The current watermark, None before the first event."""
        if self.max_event_ms is None:
            return None
        return self.max_event_ms - self.allowed_lateness_ms


class TickClock:
    """Tick boundaries (multiples of ``tick_ms`` since the epoch) crossed by the watermark.

    The first call returns the latest boundary at or before the watermark, so
    a gateway scores once when it starts; each later call returns every
    boundary in ``(previous watermark's boundary, watermark]``, in order. After
    a long gap only the last ``max_catch_up`` boundaries are returned and the
    rest are counted in ``skipped``: scoring a day nobody can act on any more
    would only delay the present.
    """

    def __init__(self, tick_ms: int, *, max_catch_up: int = 1440) -> None:
        if tick_ms < 1:
            raise ValueError("tick_ms must be at least 1")
        if max_catch_up < 1:
            raise ValueError("max_catch_up must be at least 1")
        self.tick_ms = tick_ms
        self.max_catch_up = max_catch_up
        self.last_boundary_ms: int | None = None
        self.skipped = 0

    def advance(self, watermark_ms: int) -> list[int]:
        """The boundaries the watermark crossed since the previous call, oldest first."""
        boundary = watermark_ms - watermark_ms % self.tick_ms
        last = self.last_boundary_ms
        if last is None:
            self.last_boundary_ms = boundary
            return [boundary]
        if boundary <= last:
            return []
        crossed = (boundary - last) // self.tick_ms
        self.last_boundary_ms = boundary
        if crossed > self.max_catch_up:
            self.skipped += crossed - self.max_catch_up
            crossed = self.max_catch_up
        return [boundary - k * self.tick_ms for k in range(crossed - 1, -1, -1)]
