"""The orders routes: ETag and If-Match (412, 428), illegal moves (409), creation by
operators, keyset pages with filters."""

from __future__ import annotations

import asyncio

import pytest

from cloud.tests.test_cloud_api_harness import (
    GTIN_WATER,
    api_client,
    auth,
    build_world,
    count,
    new_order,
)
from shelflink.cloud.database import Connection

ORDERS = "/api/v1/orders"


async def test_transitions_need_the_current_etag(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    order = await new_order(db)
    url = f"{ORDERS}/{order.order_id}"
    north = auth(world.north_key)
    async with api_client(migrated_database_url) as (client, _):
        read = await client.get(url, headers=north)
        etag = read.headers["etag"]
        assert etag == f'"{order.order_id}.1"' and read.json()["state"] == "suggested"

        missing = await client.post(f"{url}/transitions", json={"to": "approved"}, headers=north)
        assert missing.status_code == 428
        assert missing.json()["type"] == "urn:shelflink:problem:if-match-required"

        approve = {"to": "approved", "note": "looks right"}
        moved = await client.post(
            f"{url}/transitions", json=approve, headers=north | {"If-Match": etag}
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["state"] == "approved"
        assert moved.headers["etag"] == f'"{order.order_id}.2"'

        for stale in (etag, f"W/{moved.headers['etag']}", '"999.2"', "garbage"):
            again = await client.post(
                f"{url}/transitions", json={"to": "picking"}, headers=north | {"If-Match": stale}
            )
            assert again.status_code == 412, stale
            assert again.headers["content-type"] == "application/problem+json"
        assert (await client.get(url, headers=north)).json()["state"] == "approved"

        listed = f'"1.1", {moved.headers["etag"]}'
        picked = await client.post(
            f"{url}/transitions", json={"to": "picking"}, headers=north | {"If-Match": listed}
        )
        assert picked.status_code == 200

        history = (await client.get(f"{url}/history", headers=north)).json()
    assert [(h["from_state"], h["to_state"], h["actor_kind"]) for h in history] == [
        (None, "suggested", "system"),
        ("suggested", "approved", "dealer"),
        ("approved", "picking", "dealer"),
    ]
    assert history[1]["note"] == "looks right"
    assert history[1]["actor_key_id"] == world.north_key_id


async def test_two_clients_with_one_etag_move_the_order_once(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    order = await new_order(db)
    url = f"{ORDERS}/{order.order_id}"
    async with api_client(migrated_database_url) as (client, _):
        etag = (await client.get(url, headers=auth(world.north_key))).headers["etag"]
        moves = [
            client.post(
                f"{url}/transitions",
                json={"to": target},
                headers=auth(key) | {"If-Match": etag},
            )
            for key, target in ((world.north_key, "approved"), (world.operator_key, "rejected"))
        ]
        answers = await asyncio.gather(*moves)
    assert sorted(a.status_code for a in answers) == [200, 412]
    assert await count(db, "SELECT count(*) FROM order_transitions") == 2


async def test_an_illegal_move_is_a_409_problem(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    order = await new_order(db)
    url = f"{ORDERS}/{order.order_id}"
    async with api_client(migrated_database_url) as (client, _):
        etag = (await client.get(url, headers=auth(world.north_key))).headers["etag"]
        refused = await client.post(
            f"{url}/transitions",
            json={"to": "shipped"},
            headers=auth(world.north_key) | {"If-Match": etag},
        )
        unknown_state = await client.post(
            f"{url}/transitions",
            json={"to": "lost"},
            headers=auth(world.north_key) | {"If-Match": etag},
        )
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == "urn:shelflink:problem:illegal-transition"
    assert "suggested cannot become shipped" in problem["detail"]
    assert unknown_state.status_code == 422
    assert await count(db, "SELECT count(*) FROM order_transitions") == 1


async def test_operators_create_orders_dealers_cannot(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db, auto_approve_below_minor=500)
    body = {"store_id": "s0001", "lines": [{"gtin": GTIN_WATER, "quantity": 12}],
            "reason": "manual", "expedite": True}  # fmt: skip
    async with api_client(migrated_database_url) as (client, _):
        created = await client.post(ORDERS, json=body, headers=auth(world.operator_key))
        assert created.status_code == 201, created.text
        order = created.json()
        assert created.headers["location"] == f"{ORDERS}/{order['order_id']}"
        assert created.headers["etag"] == f'"{order["order_id"]}.{order["version"]}"'
        assert (order["state"], order["value_minor"], order["expedite"]) == ("approved", 480, True)

        by_dealer = await client.post(ORDERS, json=body, headers=auth(world.north_key))
        assert by_dealer.status_code == 403
        wrong_case = body | {"lines": [{"gtin": GTIN_WATER, "quantity": 5}]}
        refused = await client.post(ORDERS, json=wrong_case, headers=auth(world.operator_key))
        assert refused.status_code == 422
        assert refused.json()["type"] == "urn:shelflink:problem:order-refused"
    assert await count(db, "SELECT count(*) FROM orders") == 1


async def test_keyset_pages_with_filters(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    ids = [(await new_order(db)).order_id for _ in range(5)]
    await new_order(db, "s0002")
    async with api_client(migrated_database_url) as (client, _):
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await client.get(ORDERS, params=params, headers=auth(world.north_key))).json()
            pages += 1
            seen += [o["order_id"] for o in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(ids, reverse=True) and pages == 3

        filtered = await client.get(
            ORDERS, params={"state": "suggested", "store_id": "s0002"},
            headers=auth(world.operator_key),
        )  # fmt: skip
        assert [o["store_id"] for o in filtered.json()["items"]] == ["s0002"]
        for bad in ({"cursor": "not-a-cursor"}, {"cursor": "eyJrIjogImEifQ"}):
            refused = await client.get(ORDERS, params=bad, headers=auth(world.north_key))
            assert refused.status_code == 400
            assert refused.json()["type"] == "urn:shelflink:problem:bad-cursor"


@pytest.mark.parametrize("limit", [0, 201])
async def test_the_page_size_is_bounded(
    db: Connection, migrated_database_url: str, limit: int
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        refused = await client.get(ORDERS, params={"limit": limit}, headers=auth(world.north_key))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["query", "limit"]
