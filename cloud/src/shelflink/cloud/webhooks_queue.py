"""The webhook delivery queue in PostgreSQL: fan-out from the outbox, claiming due
deliveries, and recording what each attempt did.

Fan-out turns each unpublished ``order_events`` row into one ``webhook_deliveries``
row per matching endpoint of the order's dealer, and marks the event published
in the same transaction: once published, every delivery it owes is recorded,
and retries are the deliveries' business, not the outbox's. Fan-out runs under
a transaction-scoped advisory lock, one dispatcher at a time, so deliveries are
recorded in event order even with several dispatchers.

Claiming locks due deliveries with ``FOR UPDATE SKIP LOCKED``; the caller sends
them and records the outcomes before committing, so another dispatcher skips a
delivery in flight and sees it delivered (or rescheduled) afterwards. A claim
never takes a delivery while an earlier one of the same order to the same
endpoint is still pending: per endpoint, an order's events arrive in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import class_row

from shelflink.cloud.database import Connection

# pg_advisory_xact_lock(int4, int4): "SHLF", "WHFO" (webhook fan-out).
FANOUT_LOCK = (0x53484C46, 0x5748464F)


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery and what sending it takes."""

    delivery_id: UUID
    webhook_id: int
    event_id: int
    order_id: int
    event_type: str
    attempts: int  # made before this one
    dealer_id: str
    url: str
    secret: str
    payload: dict[str, Any]
    occurred_at: datetime

    def body(self) -> bytes:
        """The JSON body: the same bytes at every attempt (only the signature's
        timestamp changes)."""
        document = {
            "delivery_id": str(self.delivery_id),
            "event_id": self.event_id,
            "type": self.event_type,
            "dealer_id": self.dealer_id,
            "occurred_at": self.occurred_at.isoformat(),
            "order": self.payload,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt did, and what becomes of its delivery."""

    delivery_id: UUID
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: float
    state: str  # 'delivered', 'pending' (retry at next_attempt_at) or 'dead'
    next_attempt_at: datetime | None


async def fan_out(conn: Connection, limit: int) -> int | None:
    """Record the deliveries of up to ``limit`` unpublished events and publish them.

    Returns how many events were published, or None when another dispatcher is
    fanning out now. Runs in the caller's transaction; the caller commits.
    """
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", FANOUT_LOCK)
    row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    # An endpoint gets the events that happen after it was registered, not the
    # backlog of an outbox that had no sender before.
    cur = await conn.execute(
        """
        WITH events AS (
            SELECT event_id, order_id, dealer_id, created_at,
                   'order.' || (payload ->> 'state') AS event_type
            FROM order_events WHERE published_at IS NULL
            ORDER BY event_id LIMIT %(limit)s
        ), fanned AS (
            INSERT INTO webhook_deliveries (webhook_id, event_id, order_id, event_type)
            SELECT w.webhook_id, e.event_id, e.order_id, e.event_type
            FROM events e JOIN webhook_endpoints w
              ON w.dealer_id = e.dealer_id
             AND w.event_types && ARRAY[e.event_type, 'order.*']
             AND w.created_at <= e.created_at
            ORDER BY e.event_id, w.webhook_id
            ON CONFLICT (webhook_id, event_id) DO NOTHING
        )
        UPDATE order_events SET published_at = now()
        WHERE event_id IN (SELECT event_id FROM events)
        """,
        {"limit": limit},
    )
    return cur.rowcount


async def claim_due(conn: Connection, limit: int) -> list[DueDelivery]:
    """Lock up to ``limit`` due deliveries that no other dispatcher holds.

    Must run inside a transaction that the caller keeps open while it sends them.
    """
    async with conn.cursor(row_factory=class_row(DueDelivery)) as cur:
        await cur.execute(
            """
            SELECT d.delivery_id, d.webhook_id, d.event_id, d.order_id, d.event_type,
                   d.attempts, w.dealer_id, w.url, w.secret, ev.payload,
                   ev.created_at AS occurred_at
            FROM webhook_deliveries d
            JOIN webhook_endpoints w USING (webhook_id)
            JOIN order_events ev USING (event_id)
            WHERE d.state = 'pending' AND d.next_attempt_at <= now()
              AND NOT EXISTS (
                  SELECT 1 FROM webhook_deliveries p
                  WHERE p.webhook_id = d.webhook_id AND p.order_id = d.order_id
                    AND p.state = 'pending' AND p.event_id < d.event_id)
            ORDER BY d.next_attempt_at, d.event_id
            LIMIT %(limit)s
            FOR UPDATE OF d SKIP LOCKED
            """,
            {"limit": limit},
        )
        return await cur.fetchall()


async def record_outcomes(conn: Connection, outcomes: list[AttemptOutcome]) -> None:
    """Write each attempt to the log and move its delivery on (caller's transaction)."""
    if not outcomes:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code,"
            " error, latency_ms, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (o.delivery_id, o.attempt, o.attempted_at, o.status_code, o.error,
                 o.latency_ms, o.next_attempt_at)
                for o in outcomes
            ],
        )  # fmt: skip
        await cur.executemany(
            "UPDATE webhook_deliveries SET state = %s, attempts = %s, next_attempt_at = %s,"
            " finished_at = CASE WHEN %s = 'pending' THEN NULL ELSE now() END"
            " WHERE delivery_id = %s",
            [(o.state, o.attempt, o.next_attempt_at, o.state, o.delivery_id) for o in outcomes],
        )
