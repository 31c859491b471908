"""Retries, dead deliveries, per-order ordering and concurrent dispatchers, against a
real receiver on loopback that fails as the test scripts it."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime
from typing import Any

from cloud.tests.test_cloud_api_harness import api_client, auth, build_world, new_order
from cloud.tests.test_cloud_webhooks_receiver import (
    HANG,
    Receiver,
    fast_options,
    register,
    running,
    settle,
)
from shelflink.cloud.api import API_PREFIX
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.orders import transition_order
from shelflink.cloud.orders_models import Actor
from shelflink.cloud.orders_workflow import OrderState
from shelflink.cloud.webhooks_dispatcher import WebhookDispatcher
from shelflink.cloud.webhooks_signing import verify_signature


async def delivery_log(database_url: str, key: str, webhook_id: int) -> list[dict[str, Any]]:
    """The endpoint's delivery log as its dealer reads it through the API."""
    async with api_client(database_url) as (client, _):
        response = await client.get(
            f"{API_PREFIX}/webhooks/{webhook_id}/deliveries", headers=auth(key)
        )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with running(Receiver(script=[500, HANG, 503])) as receiver:
        endpoint = await register(db, "north", receiver.url)
        await new_order(db)
        options = fast_options(max_attempts=5, timeout_s=0.3)
        async with WebhookDispatcher(migrated_database_url, options) as dispatcher:
            assert await settle(dispatcher, db) == 4

    # The same delivery four times, each attempt signed afresh.
    assert len(set(receiver.delivery_ids())) == 1 and len(receiver.received) == 4
    for request in receiver.received:
        verify_signature(endpoint.secret, request.body, request.headers["x-shelflink-signature"])
    assert len({r.body for r in receiver.received}) == 1

    (delivery,) = await delivery_log(migrated_database_url, world.north_key, endpoint.webhook_id)
    assert delivery["state"] == "delivered" and delivery["next_attempt_at"] is None
    attempts = delivery["attempts"]
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [
        (1, 500), (2, None), (3, 503), (4, 200)
    ]  # fmt: skip
    assert attempts[1]["error"] == "no answer within 0.3 s"
    assert attempts[1]["latency_ms"] >= 300
    for earlier, later in itertools.pairwise(attempts):
        # Each retry waited for its backoff: no sooner than scheduled, and the
        # schedule stays under the exponential cap (full jitter draws below it).
        scheduled = at(earlier["next_attempt_at"])
        assert at(later["attempted_at"]) >= scheduled
        cap = options.backoff_initial_s * options.backoff_factor ** (earlier["attempt"] - 1)
        waited = (scheduled - at(earlier["attempted_at"])).total_seconds()
        assert 0 <= waited <= min(cap, options.backoff_maximum_s) + earlier["latency_ms"] / 1000
    assert attempts[-1]["next_attempt_at"] is None


async def test_a_receiver_that_always_fails_ends_dead_after_the_limit(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with running(Receiver(default=500)) as receiver:
        endpoint = await register(db, "north", receiver.url)
        await new_order(db)
        async with WebhookDispatcher(migrated_database_url, fast_options(max_attempts=3)) as d:
            assert await settle(d, db) == 3
            assert await d.dispatch_once(db) == 0  # dead: never attempted again
    assert len(receiver.received) == 3

    (delivery,) = await delivery_log(migrated_database_url, world.north_key, endpoint.webhook_id)
    assert delivery["state"] == "dead"
    assert delivery["finished_at"] is not None and delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500]
    assert [a["next_attempt_at"] is None for a in delivery["attempts"]] == [False, False, True]
    # Another dealer cannot read this log.
    async with api_client(migrated_database_url) as (client, _):
        south = await client.get(
            f"{API_PREFIX}/webhooks/{endpoint.webhook_id}/deliveries", headers=auth(world.south_key)
        )
    assert south.status_code == 404


async def test_an_orders_later_event_waits_for_the_earlier_one(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with running(Receiver(script=[500])) as receiver:
        await register(db, "north", receiver.url)
        order = await new_order(db)
        await transition_order(db, order.order_id, OrderState.APPROVED, Actor.system())
        options = fast_options(backoff_initial_s=0.2, backoff_maximum_s=0.2)
        async with WebhookDispatcher(migrated_database_url, options) as dispatcher:
            await settle(dispatcher, db)
    arrived = [(json.loads(r.body)["type"], r.answered) for r in receiver.received]
    assert arrived == [("order.suggested", 500), ("order.suggested", 200), ("order.approved", 200)]


async def test_two_dispatchers_never_send_a_delivery_twice(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with running(Receiver(delay_s=0.01)) as first, running(Receiver(delay_s=0.01)) as second:
        await register(db, "north", first.url)
        await register(db, "north", second.url)
        for _ in range(20):
            order = await new_order(db)
            await transition_order(db, order.order_id, OrderState.APPROVED, Actor.system())
        # A generous timeout: on a loaded machine a 0.5 s one expires, and a retry
        # is an honest second attempt, not the double send this test looks for.
        options = fast_options(batch_size=6, fanout_batch=7, timeout_s=30.0)
        async with (
            WebhookDispatcher(migrated_database_url, options) as one,
            WebhookDispatcher(migrated_database_url, options) as two,
            await connect(migrated_database_url) as other_conn,
        ):
            made = await asyncio.gather(settle(one, db), settle(two, other_conn))
    assert sum(made) == 80  # 40 events × 2 endpoints, each attempted once
    for receiver in (first, second):
        ids = receiver.delivery_ids()
        assert len(ids) == 40 and len(set(ids)) == 40
        # Per order, the suggestion arrived before the approval.
        seen: dict[int, list[str]] = {}
        for request in receiver.received:
            body = json.loads(request.body)
            seen.setdefault(body["order"]["order_id"], []).append(body["type"])
        assert all(types == ["order.suggested", "order.approved"] for types in seen.values())


async def test_a_dispatcher_dying_mid_send_leaves_the_delivery_for_another(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with running(Receiver(script=[HANG])) as receiver:
        await register(db, "north", receiver.url)
        await new_order(db)
        options = fast_options(timeout_s=5.0)
        async with WebhookDispatcher(migrated_database_url, options) as doomed:
            step = asyncio.create_task(doomed.dispatch_once(db))
            await receiver.wait_for(1)
            step.cancel()  # the process dies: its transaction rolls back
            await asyncio.gather(step, return_exceptions=True)
        async with (
            WebhookDispatcher(migrated_database_url, options) as survivor,
            await connect(migrated_database_url) as conn,
        ):
            assert await settle(survivor, conn) == 1
    # At least once: the receiver saw the same delivery id twice, and drops the repeat.
    first, second = receiver.delivery_ids()
    assert first == second
