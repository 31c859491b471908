"""Webhook endpoints in PostgreSQL: register (the secret is returned once), list, read,
delete, and the delivery log of each.

A ``dealer_id`` argument restricts the call to that dealer's endpoints, as the
order queries do: the API passes the caller's dealer, so another dealer's
endpoint is simply not found. Delivering is ``webhooks_dispatcher.py``'s job.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.webhooks_models import (
    Delivery,
    DeliveryAttempt,
    Webhook,
    WebhookCreate,
    WebhookCreated,
)
from shelflink.cloud.webhooks_signing import new_secret

__all__ = [
    "UnknownDealer",
    "WebhookNotFound",
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_deliveries",
    "list_webhooks",
]

_WEBHOOK = "webhook_id, dealer_id, url, event_types, description, created_at"


class UnknownDealer(LookupError):
    """An endpoint was registered for a dealer that does not exist."""


class WebhookNotFound(LookupError):
    """No such endpoint (or not one of the caller's dealer)."""


async def create_webhook(conn: Connection, dealer_id: str, new: WebhookCreate) -> WebhookCreated:
    """Register an endpoint for ``dealer_id``; the result carries its new secret."""
    secret = new_secret()
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT 1 FROM dealers WHERE dealer_id = %s", (dealer_id,))
        if await cur.fetchone() is None:
            raise UnknownDealer(f"no dealer {dealer_id}")
        await cur.execute(
            "INSERT INTO webhook_endpoints (dealer_id, url, event_types, secret, description)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_WEBHOOK}",
            (dealer_id, str(new.url), [str(e) for e in new.event_types], secret,
             new.description),
        )  # fmt: skip
        row = await cur.fetchone()
    assert row is not None
    return WebhookCreated(**row, secret=secret)


async def list_webhooks(conn: Connection, *, dealer_id: str | None = None) -> list[Webhook]:
    """Endpoints by id (only ``dealer_id``'s when given)."""
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_WEBHOOK} FROM webhook_endpoints"
            " WHERE %(dealer)s::text IS NULL OR dealer_id = %(dealer)s ORDER BY webhook_id",
            {"dealer": dealer_id},
        )
        return [Webhook(**row) for row in await cur.fetchall()]


async def get_webhook(
    conn: Connection, webhook_id: int, *, dealer_id: str | None = None
) -> Webhook | None:
    """One endpoint, or None (also when it is another dealer's)."""
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_WEBHOOK} FROM webhook_endpoints WHERE webhook_id = %(id)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"id": webhook_id, "dealer": dealer_id},
        )
        row = await cur.fetchone()
    return None if row is None else Webhook(**row)


async def delete_webhook(
    conn: Connection, webhook_id: int, *, dealer_id: str | None = None
) -> bool:
    """Delete an endpoint with its pending deliveries and its log; False when there is none.

    A delivery being sent at this moment holds its row, so this waits for that
    attempt (at most the dispatcher's HTTP timeout) and nothing is sent after.
    """
    async with transaction(conn):
        cur = await conn.execute(
            "DELETE FROM webhook_endpoints WHERE webhook_id = %(id)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"id": webhook_id, "dealer": dealer_id},
        )
        return cur.rowcount == 1


async def list_deliveries(
    conn: Connection,
    webhook_id: int,
    *,
    dealer_id: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """The endpoint's deliveries, newest event first (``event_id < before``), each with
    its attempts; WebhookNotFound when the endpoint is not the caller's."""
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        if await get_webhook(conn, webhook_id, dealer_id=dealer_id) is None:
            raise WebhookNotFound(f"no webhook {webhook_id}")
        # (webhook_id, event_id) is unique and indexed: a page is one range scan.
        await cur.execute(
            "SELECT delivery_id, event_id, order_id, event_type, state, next_attempt_at,"
            " created_at, finished_at FROM webhook_deliveries"
            " WHERE webhook_id = %(id)s AND (%(before)s::bigint IS NULL OR event_id < %(before)s)"
            " ORDER BY event_id DESC LIMIT %(limit)s",
            {"id": webhook_id, "before": before, "limit": limit},
        )
        deliveries = await cur.fetchall()
        await cur.execute(
            "SELECT delivery_id, attempt, attempted_at, status_code, error, latency_ms,"
            " next_attempt_at FROM webhook_attempts WHERE delivery_id = ANY(%s)"
            " ORDER BY delivery_id, attempt",
            ([d["delivery_id"] for d in deliveries],),
        )
        attempts: dict[Any, list[DeliveryAttempt]] = {}
        for row in await cur.fetchall():
            attempts.setdefault(row.pop("delivery_id"), []).append(DeliveryAttempt(**row))
    return [Delivery(**d, attempts=attempts.get(d["delivery_id"], [])) for d in deliveries]
