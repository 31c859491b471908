"""Arrangements the dealer-side tests share: a brand with two dealers, their stores
and keys, a catalog, and the API app on the test's own database. No tests here.

Other modules import it as ``cloud.tests.test_cloud_api_harness`` (the
repository root is on the import path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from shelflink.cloud.api import ApiOptions, create_app
from shelflink.cloud.api_keys import issue_key
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import set_brand, upsert_dealer, upsert_skus, upsert_stores
from shelflink.cloud.master_data_models import Brand, DealerChanges, Sku, StoreUpsert
from shelflink.cloud.orders import create_order
from shelflink.cloud.orders_models import Actor, NewOrder, NewOrderLine, Order

GTIN_WATER = "4006381333931"
GTIN_MILK = "4012345678901"


@dataclass(frozen=True)
class World:
    """Two dealers (north with store s0001, south with s0002) and their keys."""

    operator_key: str
    north_key: str
    south_key: str
    north_key_id: str


async def build_world(conn: Connection, *, auto_approve_below_minor: int = 0) -> World:
    """The master data most tests need."""
    await set_brand(conn, Brand(name="Fizz", currency="EUR"))
    await upsert_dealer(
        conn,
        "north",
        DealerChanges(
            name="North Drinks", territory=["N1", "N2"],
            auto_approve_below_minor=auto_approve_below_minor,
        ),
    )  # fmt: skip
    await upsert_dealer(conn, "south", DealerChanges(name="South Drinks", territory=["S1"]))
    await upsert_skus(
        conn,
        [
            Sku(gtin=GTIN_WATER, name="Water 0.5 l", case_pack=12, min_order_units=12,
                list_price_minor=40, min_resale_minor=59, currency="EUR"),
            Sku(gtin=GTIN_MILK, name="Milk 1 l", case_pack=6, min_order_units=6,
                shelf_life_days=10, cold_chain="chilled", list_price_minor=90,
                min_resale_minor=119, currency="EUR"),
        ],
    )  # fmt: skip
    await upsert_stores(
        conn,
        [
            StoreUpsert(store_id="s0001", dealer_id="north", name="Corner N", region="N1",
                        lead_time_days=2, delivery_weekdays=[1, 4]),
            StoreUpsert(store_id="s0002", dealer_id="south", name="Corner S", region="S1",
                        lead_time_days=1, delivery_weekdays=[2]),
        ],
    )  # fmt: skip
    operator = await issue_key(conn, None, label="ops")
    north = await issue_key(conn, "north")
    south = await issue_key(conn, "south")
    return World(operator.api_key, north.api_key, south.api_key, north.key_id)


def water_order(store_id: str = "s0001", cases: int = 2) -> NewOrder:
    """An order of whole cases of water (40 minor units each, 12 a case)."""
    return NewOrder(
        store_id=store_id,
        lines=[NewOrderLine(gtin=GTIN_WATER, quantity=12 * cases)],
        reason="below_reorder_point",
    )


async def new_order(conn: Connection, store_id: str = "s0001", cases: int = 2) -> Order:
    """An order created by the system (as the planner will)."""
    return await create_order(conn, water_order(store_id, cases), Actor.system())


def auth(key: str) -> dict[str, str]:
    """The header that presents ``key``."""
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def api_client(
    database_url: str, options: ApiOptions | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The API app on ``database_url``, lifespan included, and a client that calls it
    in process."""
    # Generous limits: a test walking every route must not meet the rate limit by accident;
    # the rate-limit test passes its own.
    app = create_app(
        database_url, options or ApiOptions(pool_max_size=4, rate_per_s=10_000.0, burst=10_000)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dealer-api") as client:
            yield client, app


async def count(conn: Connection, sql: str, *params: Any) -> int:
    """The single integer a counting query returns."""
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])
