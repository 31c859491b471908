"""What the uplink counts, and the snapshot it hands to metrics.

Plain counters on the hot path, like intake's; the gateway's collector turns a
:class:`UplinkStats` snapshot into Prometheus families at scrape time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Final

# Upper bounds (seconds) of the ack latency histogram: from a healthy cloud's
# sub-second commit to a resend after a long timeout.
LATENCY_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(slots=True)
class LatencyHistogram:
    """Seconds from a batch's first publish to its ack, in Prometheus' shape."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    sum_s: float = 0.0
    count: int = 0
    last_s: float | None = None

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket ("le").
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.sum_s += seconds
        self.count += 1
        self.last_s = seconds

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """``(le, count)`` pairs ending with ``(inf, count)``, as a histogram family wants."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return tuple(out)


@dataclass(slots=True)
class UplinkCounters:
    """Totals since the uplink started (Prometheus counters)."""

    published: int = 0  # first publishes of a batch
    resends: int = 0  # publishes of a batch already sent (timeout or reconnect)
    acked: int = 0  # batches committed by the cloud and deleted from the buffer
    acked_records: int = 0
    rejected: int = 0  # batches the cloud dead-lettered (also deleted, see docs/uplink.md)
    rejected_records: int = 0
    acks_unknown: int = 0  # valid acks for a batch not in flight (duplicates, late answers)
    acks_invalid: int = 0  # payloads on the ack topic that are not a BatchAck for us
    replay_waits: int = 0  # backlog batches held back by the replay rate limit
    live_batches: int = 0  # batches taken from the newest records while a replay was paced
    reconnects: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True, slots=True)
class UplinkStats:
    """A snapshot for metrics and health; taking it does no I/O."""

    state: str  # connecting | connected | backoff
    connected: bool
    reconnects: int
    window: int  # the configured maximum of batches in flight
    in_flight_batches: int
    in_flight_records: int
    restored_waiting: int  # leases from before a restart, not yet sent again
    replay_paced: bool  # a backlog batch is waiting for the replay rate limit
    published: int
    resends: int
    acked: int
    acked_records: int
    rejected: int
    rejected_records: int
    acks_unknown: int
    acks_invalid: int
    replay_waits: int
    live_batches: int
    ack_latency_last_s: float | None
    ack_latency_sum_s: float
    ack_latency_count: int
    ack_latency_buckets: tuple[tuple[float, int], ...]  # cumulative (le, count), last le = inf
    backlog_records: int  # from the buffer: every record not yet acked, leased ones included
    backlog_bytes: int
    backlog_oldest_age_s: float  # 0.0 when the buffer is empty
