"""Idempotency-Key on POSTs: a retry is answered from the store with one side effect;
another request under the same key is refused; keys are per API key and expire."""

from __future__ import annotations

from datetime import timedelta

from cloud.tests.test_cloud_api_harness import (
    GTIN_WATER,
    api_client,
    auth,
    build_world,
    count,
    new_order,
)
from shelflink.cloud.api import ApiOptions
from shelflink.cloud.api.idempotency import request_fingerprint
from shelflink.cloud.database import Connection

ORDER = {"store_id": "s0001", "lines": [{"gtin": GTIN_WATER, "quantity": 12}], "reason": "m"}


async def test_a_retry_replays_the_first_answer(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    headers = auth(world.operator_key) | {"Idempotency-Key": "create-1"}
    async with api_client(migrated_database_url) as (client, _):
        first = await client.post("/api/v1/orders", json=ORDER, headers=headers)
        # The same JSON, other key order and spacing: the same request.
        same = '{"reason": "m",  "store_id": "s0001", "lines": [{"quantity": 12, "gtin": "%s"}]}'
        retry = await client.post(
            "/api/v1/orders",
            content=same % GTIN_WATER,
            headers=headers | {"Content-Type": "application/json"},
        )
        assert first.status_code == retry.status_code == 201
        assert retry.content == first.content
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["etag"] == first.headers["etag"]
        assert retry.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers

        other = await client.post(
            "/api/v1/orders", json=ORDER | {"reason": "other"}, headers=headers
        )
        assert other.status_code == 422
        assert other.json()["type"] == "urn:shelflink:problem:idempotency-key-reused"

        fresh = await client.post(
            "/api/v1/orders",
            json=ORDER,
            headers=auth(world.operator_key) | {"Idempotency-Key": "2"},
        )
        assert fresh.status_code == 201
    assert await count(db, "SELECT count(*) FROM orders") == 2
    assert await count(db, "SELECT count(*) FROM order_events") == 2


async def test_errors_are_replayed_too(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    order = await new_order(db)
    url = f"/api/v1/orders/{order.order_id}/transitions"
    north = auth(world.north_key)
    async with api_client(migrated_database_url) as (client, _):
        etag = (await client.get(f"/api/v1/orders/{order.order_id}", headers=north)).headers["etag"]
        headers = north | {"If-Match": etag, "Idempotency-Key": "approve"}
        moved = await client.post(url, json={"to": "approved"}, headers=headers)
        replay = await client.post(url, json={"to": "approved"}, headers=headers)
        assert moved.status_code == replay.status_code == 200
        assert replay.json()["version"] == moved.json()["version"] == 2

        illegal = north | {"If-Match": moved.headers["etag"], "Idempotency-Key": "ship"}
        refused = await client.post(url, json={"to": "delivered"}, headers=illegal)
        refused_again = await client.post(url, json={"to": "delivered"}, headers=illegal)
        assert refused.status_code == refused_again.status_code == 409
        assert refused_again.headers["content-type"] == "application/problem+json"
        assert refused_again.content == refused.content
    assert await count(db, "SELECT count(*) FROM order_transitions") == 2


async def test_keys_are_per_api_key(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        for key in (world.operator_key, world.north_key):
            shipment = {"dealer_id": "north", "gtin": GTIN_WATER, "serials": ["S1"],
                        "shipment_ref": "r", "shipped_at": "2024-01-01T00:00:00Z"}  # fmt: skip
            answer = await client.post(
                "/api/v1/serial-shipments",
                json=shipment,
                headers=auth(key) | {"Idempotency-Key": "same"},
            )
            # The dealer's 403 is its own answer, not the operator's stored 201.
            assert answer.status_code == (201 if key == world.operator_key else 403)


async def test_a_running_request_holds_its_key(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    fingerprint = request_fingerprint(
        "POST", "/api/v1/orders", "", b'{"store_id":"s0001","lines":[],"reason":"m"}'
    )
    await db.execute(
        "INSERT INTO idempotency_keys (key_id, idempotency_key, request_sha256, expires_at)"
        " SELECT key_id, 'busy', %s, now() + interval '1 hour' FROM api_keys"
        " WHERE dealer_id IS NULL",
        (fingerprint,),
    )
    async with api_client(migrated_database_url) as (client, _):
        busy = await client.post(
            "/api/v1/orders",
            json={"store_id": "s0001", "lines": [], "reason": "m"},
            headers=auth(world.operator_key) | {"Idempotency-Key": "busy"},
        )
    assert busy.status_code == 409
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["type"] == "urn:shelflink:problem:request-in-progress"


async def test_an_expired_key_runs_the_request_again(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    headers = auth(world.operator_key) | {"Idempotency-Key": "k"}
    options = ApiOptions(idempotency_ttl=timedelta(hours=1), pool_max_size=4)
    async with api_client(migrated_database_url, options) as (client, _):
        assert (await client.post("/api/v1/orders", json=ORDER, headers=headers)).status_code == 201
        await db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        again = await client.post("/api/v1/orders", json=ORDER, headers=headers)
        assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert await count(db, "SELECT count(*) FROM orders") == 2
    assert (
        await count(
            db, "SELECT count(*) FROM idempotency_keys WHERE expires_at > now() + interval '50 min'"
        )
        == 1
    )
