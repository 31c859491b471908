"""The uplink's send window: batches published and not yet answered by the cloud.

No I/O: the uplink tells the window what it sent and when, and asks which
batches are due for a resend. Times are the caller's monotonic seconds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from shelflink.device.backoff import Backoff
from shelflink.gateway.buffer_record import Lease


@dataclass(slots=True, eq=False)
class Flight:
    """One batch on its way: its lease, its exact payload, and its resend clock.

    The payload is built once and kept, so every resend is byte-identical
    (the cloud de-duplicates by ``batch_seq`` and may compare the bytes).
    """

    lease: Lease
    payload: bytes
    backoff: Backoff
    sends: int = 0
    first_sent: float | None = None  # for the ack latency: first publish in this process
    deadline: float = math.inf  # when an unanswered batch goes out again

    @property
    def batch_seq(self) -> int:
        return self.lease.batch_seq


class Window:
    """At most ``size`` batches in flight, each resent when its ack is overdue.

    The first wait for an ack is ``ack_timeout_s``; the k-th resend waits
    ``ack_timeout_s`` plus a full-jitter draw from the one backoff helper,
    whose cap doubles per resend and keeps the whole wait within
    ``ack_timeout_max_s``. The jitter keeps a fleet of gateways from resending
    in lock-step after a cloud hiccup.
    """

    def __init__(
        self,
        size: int,
        ack_timeout_s: float,
        ack_timeout_max_s: float,
        rng: random.Random | None = None,
    ) -> None:
        if size < 1 or ack_timeout_s <= 0 or ack_timeout_max_s < ack_timeout_s:
            raise ValueError("need size >= 1 and 0 < ack_timeout_s <= ack_timeout_max_s")
        self.size = size
        self.ack_timeout_s = ack_timeout_s
        self.ack_timeout_max_s = ack_timeout_max_s
        self._rng = rng if rng is not None else random.Random()
        self._flights: dict[int, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def has_room(self) -> bool:
        return len(self._flights) < self.size

    @property
    def records(self) -> int:
        return sum(len(f.lease.records) for f in self._flights.values())

    def add(self, lease: Lease, payload: bytes) -> Flight:
        """Take a batch in (before its first publish); the caller checked :meth:`has_room`."""
        if lease.batch_seq in self._flights:
            raise ValueError(f"batch {lease.batch_seq} is already in flight")
        flight = Flight(
            lease,
            payload,
            Backoff(
                initial_s=self.ack_timeout_s,
                maximum_s=self.ack_timeout_max_s - self.ack_timeout_s,
                rng=self._rng,
            ),
        )
        self._flights[lease.batch_seq] = flight
        return flight

    def sent(self, flight: Flight, now: float) -> None:
        """Record a publish (first or resend) and set when the ack is overdue."""
        if flight.first_sent is None:
            flight.first_sent = now
        timeout = self.ack_timeout_s
        if flight.sends > 0:
            timeout += flight.backoff.next_delay()
        flight.sends += 1
        flight.deadline = now + timeout

    def due(self, now: float) -> list[Flight]:
        """Batches whose ack is overdue, oldest batch first."""
        return sorted(
            (f for f in self._flights.values() if f.deadline <= now), key=lambda f: f.batch_seq
        )

    def in_order(self) -> list[Flight]:
        return sorted(self._flights.values(), key=lambda f: f.batch_seq)

    def next_deadline(self) -> float | None:
        return min((f.deadline for f in self._flights.values()), default=None)

    def pop(self, batch_seq: int) -> Flight | None:
        """The flight an ack answers, taken out of the window; None for an unknown batch."""
        return self._flights.pop(batch_seq, None)

    def put_back(self, flight: Flight) -> None:
        """Return a flight whose ack could not be applied; it goes out again when due."""
        self._flights[flight.batch_seq] = flight
