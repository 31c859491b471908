"""The webhook dispatcher: fans the order outbox out to dealers' endpoints and POSTs
each delivery, signed, retrying with exponential backoff and jitter until it is
delivered or dead.

Run any number of them against one database: fan-out is one dispatcher at a
time, and a delivery in flight is locked (``FOR UPDATE SKIP LOCKED``) until its
outcome is recorded, so no two send the same attempt. Delivery is at least
once: a dispatcher that dies after the receiver answered but before it
committed leaves the delivery pending, and it is sent again with the same
``X-Shelflink-Delivery`` id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType

import httpx
import psycopg

from shelflink.cloud._version import __version__
from shelflink.cloud.database import Connection, connect, transaction
from shelflink.cloud.webhooks_queue import (
    AttemptOutcome,
    DueDelivery,
    claim_due,
    fan_out,
    record_outcomes,
)
from shelflink.cloud.webhooks_signing import signature_header
from shelflink.cloud.webhooks_targets import (
    IPNetwork,
    RefusedTarget,
    Resolver,
    TargetPolicy,
    system_resolver,
)
from shelflink.cloud.webhooks_transport import PinnedTransport
from shelflink.device.backoff import Backoff

logger = logging.getLogger(__name__)

EVENT_HEADER = "X-Shelflink-Event"
DELIVERY_HEADER = "X-Shelflink-Delivery"
TIMESTAMP_HEADER = "X-Shelflink-Timestamp"
SIGNATURE_HEADER = "X-Shelflink-Signature"


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    """How hard the dispatcher tries. The defaults spread 10 attempts over about
    10 hours on average (caps 30 s, 90 s, 270 s, … up to 6 h, full jitter)."""

    max_attempts: int = 10
    backoff_initial_s: float = 30.0
    backoff_maximum_s: float = 6 * 3600.0
    backoff_factor: float = 3.0
    # The whole attempt: connecting, sending and the answer's status line.
    timeout_s: float = 10.0
    # Deliveries claimed (and sent concurrently) per step, and events fanned out.
    batch_size: int = 32
    fanout_batch: int = 500
    # How long the loop sleeps when nothing was due.
    poll_interval_s: float = 1.0
    # Private, loopback and link-local targets are refused unless this is set, or
    # unless they are in one of the allowed networks (say, a private deployment's
    # receivers, while the cloud metadata address stays refused).
    allow_private_targets: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    # Resolves receivers' host names; the connection goes to the addresses it answers.
    resolver: Resolver = system_resolver
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch_size < 1 or self.fanout_batch < 1:
            raise ValueError("max_attempts, batch_size and fanout_batch must be positive")
        if self.timeout_s <= 0 or self.poll_interval_s <= 0:
            raise ValueError("timeout_s and poll_interval_s must be positive")

    def target_policy(self) -> TargetPolicy:
        return TargetPolicy(self.allow_private_targets, self.allowed_networks)

    def retry_delay_s(self, attempts_made: int) -> float:
        """Seconds before the retry that follows attempt number ``attempts_made``."""
        backoff = Backoff(
            initial_s=self.backoff_initial_s,
            maximum_s=self.backoff_maximum_s,
            factor=self.backoff_factor,
            rng=self.rng,
            attempt=attempts_made - 1,
        )
        return backoff.next_delay()


class WebhookDispatcher:
    """Sends the outbox's order events to dealers' webhook endpoints.

    An async context manager owning its HTTP client::

        async with WebhookDispatcher(database_url) as dispatcher:
            await dispatcher.run()  # until stop() or cancellation
    """

    def __init__(self, database_url: str, options: DispatchOptions | None = None) -> None:
        self.database_url = database_url
        self.options = options or DispatchOptions()
        self._client: httpx.AsyncClient | None = None
        self._stopping = asyncio.Event()
        # The last fan-out took a full batch: more events are waiting, do not sleep.
        self._outbox_backlog = False

    async def __aenter__(self) -> WebhookDispatcher:
        if self._client is not None:
            raise RuntimeError("this dispatcher is already open")
        self._client = httpx.AsyncClient(
            # Connects to the addresses that passed the target check, and only those.
            transport=PinnedTransport(self.options.target_policy(), self.options.resolver),
            timeout=self.options.timeout_s,
            follow_redirects=False,  # a redirect is the receiver's misconfiguration, not a hop
            headers={"User-Agent": f"Shelflink-Webhooks/{__version__}"},
            trust_env=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def stop(self) -> None:
        """Ask :meth:`run` to return after the step in progress."""
        self._stopping.set()

    async def run(self) -> None:
        """Dispatch until :meth:`stop`; reconnects (with backoff) when the database fails."""
        reconnect = Backoff(initial_s=0.5, maximum_s=30.0, rng=self.options.rng)
        while not self._stopping.is_set():
            try:
                async with await connect(
                    self.database_url, application_name="shelflink-webhooks"
                ) as conn:
                    reconnect.reset()
                    await self._loop(conn)
            except (OSError, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                delay = reconnect.next_delay()
                logger.warning("webhook dispatcher lost the database (%s); again in %.1f s",
                               exc, delay)  # fmt: skip
                await self._sleep(delay)

    async def _loop(self, conn: Connection) -> None:
        while not self._stopping.is_set():
            attempts = await self.dispatch_once(conn)
            if attempts < self.options.batch_size and not self._outbox_backlog:
                await self._sleep(self.options.poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def dispatch_once(self, conn: Connection) -> int:
        """One step: fan out new events, then send one batch of due deliveries and
        record the outcomes. Returns the number of attempts made."""
        async with transaction(conn):
            published = await fan_out(conn, self.options.fanout_batch)
        self._outbox_backlog = published == self.options.fanout_batch
        if published:
            logger.debug("fanned out %d order events", published)
        async with transaction(conn):
            due = await claim_due(conn, self.options.batch_size)
            if not due:
                return 0
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._attempt(delivery)) for delivery in due]
            await record_outcomes(conn, [task.result() for task in tasks])
        return len(due)

    async def _attempt(self, delivery: DueDelivery) -> AttemptOutcome:
        client = self._client
        if client is None:
            raise RuntimeError("use the dispatcher inside `async with`")
        attempt = delivery.attempts + 1
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        body = delivery.body()
        try:
            async with asyncio.timeout(self.options.timeout_s):
                timestamp = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    EVENT_HEADER: delivery.event_type,
                    DELIVERY_HEADER: str(delivery.delivery_id),
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: signature_header(delivery.secret, body, timestamp),
                }
                # Streamed and never read: a receiver's answer body is not ours to hold.
                # A refused target raises RefusedTarget from inside, when connecting.
                async with client.stream("POST", delivery.url, content=body, headers=headers) as r:
                    status_code = r.status_code
        except TimeoutError:
            error = f"no answer within {self.options.timeout_s:g} s"
        except RefusedTarget as exc:
            error = f"refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        delivered = status_code is not None and 200 <= status_code < 300
        next_attempt_at: datetime | None = None
        if delivered:
            state = "delivered"
        elif attempt >= self.options.max_attempts:
            state = "dead"
            logger.warning("webhook delivery %s to %s is dead after %d attempts",
                           delivery.delivery_id, delivery.url, attempt)  # fmt: skip
        else:
            state = "pending"
            delay = self.options.retry_delay_s(attempt)
            next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        return AttemptOutcome(
            delivery_id=delivery.delivery_id,
            attempt=attempt,
            attempted_at=attempted_at,
            status_code=status_code,
            error=error,
            latency_ms=latency_ms,
            state=state,
            next_attempt_at=next_attempt_at,
        )
