"""Webhook delivery to a real receiver on loopback: signed, per dealer, per event type,
published from the outbox, refused for private addresses by default, and the run loop."""

from __future__ import annotations

import asyncio
import json

from cloud.tests.test_cloud_api_harness import api_client, auth, build_world, count, new_order
from cloud.tests.test_cloud_webhooks_receiver import (
    Receiver,
    fast_options,
    register,
    running,
    settle,
)
from shelflink.cloud.api import API_PREFIX
from shelflink.cloud.database import Connection
from shelflink.cloud.orders import transition_order
from shelflink.cloud.orders_models import Actor
from shelflink.cloud.orders_workflow import OrderState
from shelflink.cloud.webhooks_dispatcher import WebhookDispatcher
from shelflink.cloud.webhooks_signing import verify_signature


async def test_a_registered_endpoint_gets_a_signed_delivery_it_can_verify(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with running(Receiver()) as receiver:
        async with api_client(migrated_database_url) as (client, _):
            created = await client.post(
                f"{API_PREFIX}/webhooks",
                json={"url": receiver.url, "event_types": ["order.*"]},
                headers=auth(world.north_key),
            )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        order = await new_order(db)

        async with WebhookDispatcher(migrated_database_url, fast_options()) as dispatcher:
            assert await settle(dispatcher, db) == 1

    (request,) = receiver.received
    assert verify_signature(secret, request.body, request.headers["x-shelflink-signature"], 60)
    assert request.headers["x-shelflink-timestamp"] == request.headers[
        "x-shelflink-signature"
    ].split(",")[0].removeprefix("t=")
    assert request.headers["x-shelflink-event"] == "order.suggested"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body["type"] == "order.suggested"
    assert body["dealer_id"] == "north"
    assert body["delivery_id"] == request.headers["x-shelflink-delivery"]
    assert body["order"]["order_id"] == order.order_id
    assert body["order"]["state"] == "suggested" and body["order"]["previous_state"] is None
    # The outbox event is published, and the log says delivered with the status.
    assert await count(db, "SELECT count(*) FROM order_events WHERE published_at IS NULL") == 0
    cur = await db.execute(
        "SELECT d.state, a.status_code, a.error FROM webhook_deliveries d"
        " JOIN webhook_attempts a USING (delivery_id)"
    )
    assert await cur.fetchall() == [("delivered", 200, None)]


async def test_a_dealer_never_receives_another_dealers_events(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with (
        running(Receiver()) as north_all,
        running(Receiver()) as north_approved,
        running(Receiver()) as south_all,
    ):
        await register(db, "north", north_all.url)
        await register(db, "north", north_approved.url, ["order.approved"])
        await register(db, "south", south_all.url)
        north_orders = [await new_order(db, "s0001") for _ in range(3)]
        south_orders = [await new_order(db, "s0002") for _ in range(2)]
        await transition_order(db, north_orders[0].order_id, OrderState.APPROVED, Actor.system())
        await transition_order(db, south_orders[0].order_id, OrderState.APPROVED, Actor.system())

        async with WebhookDispatcher(migrated_database_url, fast_options()) as dispatcher:
            await settle(dispatcher, db)

    def seen(receiver: Receiver) -> list[tuple[str, int]]:
        bodies = [json.loads(r.body) for r in receiver.received]
        return sorted((b["type"], b["order"]["order_id"]) for b in bodies)

    north_ids = {o.order_id for o in north_orders}
    south_ids = {o.order_id for o in south_orders}
    assert {order_id for _, order_id in seen(north_all)} == north_ids
    assert {order_id for _, order_id in seen(south_all)} == south_ids
    assert len(north_all.received) == 4 and len(south_all.received) == 3
    assert seen(north_approved) == [("order.approved", north_orders[0].order_id)]
    assert all(json.loads(r.body)["dealer_id"] == "south" for r in south_all.received)


async def test_events_before_an_endpoint_existed_are_not_sent_to_it(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    await new_order(db)
    async with running(Receiver()) as receiver:
        await register(db, "north", receiver.url)
        later = await new_order(db)
        async with WebhookDispatcher(migrated_database_url, fast_options()) as dispatcher:
            await settle(dispatcher, db)
    assert [json.loads(r.body)["order"]["order_id"] for r in receiver.received] == [later.order_id]


async def test_private_addresses_are_refused_unless_allowed(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with running(Receiver()) as receiver:
        await register(db, "north", receiver.url)
        await new_order(db)
        options = fast_options(allow_private_targets=False, max_attempts=1)
        async with WebhookDispatcher(migrated_database_url, options) as dispatcher:
            await settle(dispatcher, db)
    assert receiver.received == []
    cur = await db.execute(
        "SELECT d.state, a.status_code, a.error FROM webhook_deliveries d"
        " JOIN webhook_attempts a USING (delivery_id)"
    )
    ((state, status, error),) = await cur.fetchall()
    assert state == "dead" and status is None
    assert "refused" in error and "127.0.0.1" in error and "not a public address" in error


async def test_the_run_loop_delivers_until_stopped(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with running(Receiver()) as receiver:
        await register(db, "north", receiver.url)
        async with WebhookDispatcher(migrated_database_url, fast_options()) as dispatcher:
            loop = asyncio.create_task(dispatcher.run())
            order = await new_order(db)  # while the loop runs
            async with asyncio.timeout(10):
                await receiver.wait_for(1)
            dispatcher.stop()
            async with asyncio.timeout(5):
                await loop
    assert json.loads(receiver.received[0].body)["order"]["order_id"] == order.order_id
