"""When the uplink takes a batch from the buffer, and how fast it replays a backlog.

Pure rules over plain numbers (times are the caller's monotonic seconds,
record timestamps epoch milliseconds), so they are tested with tables; the
uplink (:mod:`shelflink.gateway.uplink`) only asks them. See docs/uplink.md
"Batching" and "Replay after an outage".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shelflink.gateway.buffer_record import Record


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up.

    A cost bigger than the burst is allowed once the bucket is full and leaves
    it in debt: one oversized batch must not be refused forever, and the debt
    makes the following batches wait, so the average rate still holds.
    """

    rate_per_s: float
    burst: float
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is None:
            self.updated = now
        elif now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
            self.updated = now

    def wait_s(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` may be taken; 0.0 when it may be taken now."""
        self._refill(now)
        missing = min(cost, self.burst) - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    def take(self, now: float, cost: float) -> None:
        self._refill(now)
        self.tokens -= cost


class ReplayPacer:
    """The replay limits: batches a second and payload bytes a second, either may be off.

    The batch bucket holds one batch (even pacing, no burst after a quiet
    spell); the byte bucket holds one second's worth.
    """

    def __init__(self, batches_per_s: float | None, bytes_per_s: int | None) -> None:
        self._batches = None if batches_per_s is None else TokenBucket(batches_per_s, 1.0)
        self._bytes = None if bytes_per_s is None else TokenBucket(bytes_per_s, bytes_per_s)

    @property
    def limited(self) -> bool:
        return self._batches is not None or self._bytes is not None

    def wait_s(self, now: float, payload_bytes: int) -> float:
        wait = 0.0
        if self._batches is not None:
            wait = max(wait, self._batches.wait_s(now, 1.0))
        if self._bytes is not None:
            wait = max(wait, self._bytes.wait_s(now, payload_bytes))
        return wait

    def take(self, now: float, payload_bytes: int) -> None:
        if self._batches is not None:
            self._batches.take(now, 1.0)
        if self._bytes is not None:
            self._bytes.take(now, payload_bytes)


def is_backlog(records: Iterable[Record], now_ms: int, replay_after_ms: int) -> bool:
    """A batch is backlog when any record in it is older than the replay threshold.

    Any, not all: a batch that carries a fresh alarm in front of hours-old
    telemetry still replays the old telemetry, and it is that part the limit
    is for. Fresh events wait at most one pacing interval.
    """
    oldest = min((r.ts for r in records), default=now_ms)
    return oldest < now_ms - replay_after_ms


@dataclass(slots=True)
class Linger:
    """Take a batch when a full one is waiting, or when the first record has waited ``linger_s``.

    The buffer does not say when a record arrived, so the clock starts when
    the uplink first sees the queue non-empty (it looks every few tens of ms).
    ``waiting_bytes`` may be an estimate: it decides when, never what, to send.
    """

    max_records: int
    max_bytes: int
    linger_s: float
    since: float | None = None

    def ready(self, now: float, waiting_records: int, waiting_bytes: int) -> bool:
        if waiting_records <= 0:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        full = waiting_records >= self.max_records or waiting_bytes >= self.max_bytes
        return full or now - self.since >= self.linger_s

    def wake_at(self) -> float | None:
        """When a lingering queue becomes ready by time alone; None when nothing lingers."""
        return None if self.since is None else self.since + self.linger_s

    def taken(self) -> None:
        self.since = None
