"""The webhook routes: register (the secret once, idempotently), validate, list, read,
delete, and page through the delivery log; operators act for a named dealer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cloud.tests.test_cloud_api_harness import api_client, auth, build_world, count, new_order
from shelflink.cloud.api import API_PREFIX
from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.webhooks_queue import fan_out

HOOKS = f"{API_PREFIX}/webhooks"
URL = "https://hooks.example.com/shelflink"


async def post(client: httpx.AsyncClient, key: str, body: dict[str, Any], **headers: str) -> Any:
    return await client.post(HOOKS, json=body, headers=auth(key) | headers)


async def test_the_secret_is_answered_once_and_never_listed(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        created = await post(
            client, world.north_key,
            {"url": URL, "event_types": ["order.approved", "order.shipped"], "description": "erp"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["secret"].startswith("whsec_")
        assert body["dealer_id"] == "north" and body["url"] == URL
        assert body["event_types"] == ["order.approved", "order.shipped"]
        assert created.headers["location"] == f"{HOOKS}/{body['webhook_id']}"

        one = await client.get(created.headers["location"], headers=auth(world.north_key))
        listed = await client.get(HOOKS, headers=auth(world.north_key))
    assert one.status_code == 200 and "secret" not in one.json()
    assert [w["webhook_id"] for w in listed.json()] == [body["webhook_id"]]
    assert body["secret"] not in listed.text + one.text


async def test_a_retried_registration_creates_one_endpoint(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    request = {"url": URL, "event_types": ["order.*"]}
    async with api_client(migrated_database_url) as (client, _):
        first = await post(client, world.north_key, request, **{"Idempotency-Key": "hook-1"})
        again = await post(client, world.north_key, request, **{"Idempotency-Key": "hook-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await count(db, "SELECT count(*) FROM webhook_endpoints") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://hooks.example.com/x", "event_types": ["order.*"]},
        {"url": "not a url", "event_types": ["order.*"]},
        {"url": "https://user:pw@hooks.example.com/", "event_types": ["order.*"]},
        {"url": URL, "event_types": []},
        {"url": URL, "event_types": ["order.lost"]},
        {"url": URL, "event_types": ["order.approved", "order.approved"]},
        {"url": URL, "event_types": ["order.*"], "secret": "mine"},
    ],
)
async def test_invalid_registrations_are_refused(
    db: Connection, migrated_database_url: str, body: dict[str, Any]
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        refused = await post(client, world.north_key, body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert await count(db, "SELECT count(*) FROM webhook_endpoints") == 0


async def test_operators_register_for_a_named_dealer_and_see_all(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        unnamed = await post(client, world.operator_key, {"url": URL, "event_types": ["order.*"]})
        unknown = await post(
            client, world.operator_key, {"url": URL, "event_types": ["order.*"], "dealer_id": "x"}
        )
        south = await post(
            client, world.operator_key,
            {"url": URL, "event_types": ["order.*"], "dealer_id": "south"},
        )  # fmt: skip
        await post(client, world.north_key, {"url": URL, "event_types": ["order.*"]})
        everyone = await client.get(HOOKS, headers=auth(world.operator_key))
        north_view = await client.get(HOOKS, headers=auth(world.north_key))
    assert unnamed.status_code == 422 and unknown.status_code == 404
    assert south.status_code == 201 and south.json()["dealer_id"] == "south"
    assert sorted(w["dealer_id"] for w in everyone.json()) == ["north", "south"]
    assert [w["dealer_id"] for w in north_view.json()] == ["north"]


async def test_deleting_an_endpoint_drops_its_pending_deliveries(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        created = await post(client, world.north_key, {"url": URL, "event_types": ["order.*"]})
        location = created.headers["location"]
        await new_order(db)
        async with transaction(db):
            await fan_out(db, 100)
        assert await count(db, "SELECT count(*) FROM webhook_deliveries") == 1
        deleted = await client.delete(location, headers=auth(world.north_key))
        gone = await client.get(location, headers=auth(world.north_key))
        again = await client.delete(location, headers=auth(world.north_key))
    assert deleted.status_code == 204
    assert gone.status_code == again.status_code == 404
    assert await count(db, "SELECT count(*) FROM webhook_deliveries") == 0


async def test_the_delivery_log_is_paged_newest_first(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        created = await post(client, world.north_key, {"url": URL, "event_types": ["order.*"]})
        log = f"{created.headers['location']}/deliveries"
        orders = [await new_order(db) for _ in range(3)]
        async with transaction(db):
            await fan_out(db, 100)
        first = await client.get(log, params={"limit": 2}, headers=auth(world.north_key))
        cursor = first.json()["next_cursor"]
        second = await client.get(
            log, params={"limit": 2, "cursor": cursor}, headers=auth(world.north_key)
        )
        bad = await client.get(log, params={"cursor": "nope"}, headers=auth(world.north_key))
    pages = first.json()["items"] + second.json()["items"]
    assert [d["order_id"] for d in pages] == [o.order_id for o in reversed(orders)]
    assert second.json()["next_cursor"] is None
    assert all(d["state"] == "pending" and d["attempts"] == [] for d in pages)
    assert {d["event_type"] for d in pages} == {"order.suggested"}
    assert bad.status_code == 400 and bad.json()["type"].endswith("bad-cursor")
