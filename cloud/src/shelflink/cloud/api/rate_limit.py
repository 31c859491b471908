"""Per-key rate limits: a token bucket per API key, kept in PostgreSQL or in the process.

:class:`DatabaseLimiter` (the default store) keeps the buckets in the
``api_rate_buckets`` table (migration 0007), so every API process behind a load
balancer spends from the same bucket and N processes allow the rate once, not N
times. One statement per request takes a token, on the database's clock so that
API hosts whose clocks disagree still agree on the refill. :class:`ProcessLimiter`
keeps them in this process's memory (:class:`TokenBuckets`): right for a single
process, and N times the rate behind a load balancer. See docs/dealer-api.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import psycopg

from shelflink.cloud.database import Connection

logger = logging.getLogger(__name__)

RateLimitStore = Literal["database", "process"]
RATE_LIMIT_STORES: tuple[RateLimitStore, ...] = ("database", "process")

# A bucket idle this long is deleted even when it refilled sooner, so that API
# processes started with other --rate/--burst (a rolling change) cannot delete a
# bucket another process still counts on.
MIN_IDLE_BEFORE_PURGE_S = 3600.0


class RateLimiter(Protocol):
    """Spends one request of a key's allowance."""

    async def take(self, key: str, conn: Connection) -> float:
        """0.0 when the request may run, else the seconds until ``key`` has a token.

        ``conn`` is the request's own connection (it has just authenticated the
        key): a store in the database spends no second pool checkout on it.
        """
        ...


def _check(rate: float, burst: int) -> None:
    if rate <= 0 or burst < 1:
        raise ValueError("rate must be positive and burst at least 1")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``rate`` requests per second per key, with bursts of up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 when allowed, else the seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


class ProcessLimiter:
    """The buckets in this process: each API process allows the full rate."""

    def __init__(self, buckets: TokenBuckets) -> None:
        self.buckets = buckets

    async def take(self, key: str, conn: Connection) -> float:
        return self.buckets.take(key)


# The clock is read once, in VALUES (excluded.updated_at), before the row lock is
# taken; a request that read it earlier but got the lock later sees a negative
# elapsed time, counted as none, and updated_at never goes back. So requests
# queued on one key's row can only under-refill, never hand out more than
# burst + rate x elapsed. A refused take stores the refill it computed, which
# is the same bucket as before, and says so in `allowed`.
_TAKE = """
INSERT INTO api_rate_buckets AS b (key_id, tokens, updated_at, allowed)
VALUES (%(key)s, %(burst)s - 1, clock_timestamp(), true)
ON CONFLICT (key_id) DO UPDATE SET (tokens, updated_at, allowed) = (
    SELECT CASE WHEN r.tokens >= 1 THEN r.tokens - 1 ELSE r.tokens END, r.now, r.tokens >= 1
    FROM (SELECT least(%(burst)s, b.tokens + %(rate)s
                       * greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at))
                 )::float8 AS tokens,
                 greatest(b.updated_at, excluded.updated_at) AS now) r
)
RETURNING tokens, allowed
"""

# A bucket idle for burst / rate seconds is full, and a full bucket is what a
# missing row means: deleting it changes no answer.
_PURGE = """
DELETE FROM api_rate_buckets
WHERE updated_at < clock_timestamp() - make_interval(secs => %(idle_s)s)
"""


class DatabaseLimiter:
    """The buckets in PostgreSQL, shared by every API process on the database.

    Concurrent requests of one key, from any process, queue on the key's row
    lock, so each sees the bucket the previous one left. A database error lets
    the request through (fail open): it is logged, once per run of failures,
    and counted in :attr:`failures`.
    """

    def __init__(self, rate: float, burst: int) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        # Requests let through because the bucket could not be read.
        self.failures = 0
        self._failures_at_recovery = 0

    async def take(self, key: str, conn: Connection) -> float:
        params = {"key": key, "rate": float(self.rate), "burst": float(self.burst)}
        try:
            # Autocommit: the bucket's row lock is held for this statement only.
            cur = await conn.execute(_TAKE, params)
            row = await cur.fetchone()
        except psycopg.Error:
            # The limiter guards capacity, not data: the key is already
            # authenticated, and refusing everyone while the bucket table is
            # unreachable would turn a limiter fault into an outage.
            self.failures += 1
            if self.failures - self._failures_at_recovery == 1:
                logger.warning("rate limit store failed; letting requests through", exc_info=True)
            return 0.0
        if self.failures != self._failures_at_recovery:
            logger.warning(
                "rate limit store answers again after %d requests went unlimited",
                self.failures - self._failures_at_recovery,
            )
            self._failures_at_recovery = self.failures
        assert row is not None
        tokens, allowed = row
        return 0.0 if allowed else (1.0 - float(tokens)) / self.rate

    async def purge_idle(self, conn: Connection) -> int:
        """Delete buckets that have refilled and sat idle; returns how many."""
        idle_s = max(MIN_IDLE_BEFORE_PURGE_S, self.burst / self.rate)
        cur = await conn.execute(_PURGE, {"idle_s": idle_s})
        return cur.rowcount
