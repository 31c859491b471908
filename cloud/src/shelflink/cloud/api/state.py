"""What the dealer API holds while it runs: its options, the pool, the rate limiter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from shelflink.cloud.api.rate_limit import RateLimiter, RateLimitStore
from shelflink.cloud.database import Connection


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """How the dealer API behaves; the defaults suit a few processes serving a few dealers."""

    # Requests per second per API key, and the burst a key may spend at once.
    rate_per_s: float = 20.0
    burst: int = 40
    # Where the buckets live. "database": one bucket per key shared by every API
    # process on the database, so the rate holds however many run. "process": in
    # memory, so each process allows the full rate (N processes, N times it).
    rate_limit_store: RateLimitStore = "database"
    # How long a stored response answers retries of its Idempotency-Key.
    idempotency_ttl: timedelta = timedelta(hours=24)
    # How often expired idempotency records and idle rate-limit buckets are deleted.
    purge_every_s: float = 600.0
    pool_min_size: int = 1
    pool_max_size: int = 8


@dataclass(frozen=True, slots=True)
class ApiState:
    """The running API's resources, on ``app.state.shelflink``."""

    options: ApiOptions
    pool: AsyncConnectionPool[Connection]
    # What each authenticated request spends from, in the chosen store.
    rate_limiter: RateLimiter


def api_state(conn: HTTPConnection) -> ApiState:
    """The state of the app serving this request."""
    state: ApiState = conn.app.state.shelflink
    return state
