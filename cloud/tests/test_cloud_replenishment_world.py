"""Arrangements the replenishment and channel-control tests share: a brand with two
dealers and three stores, a catalog, planograms, and writers for the ingest tables
(sales, shelf_units and lane/fridge alert events) as the ingest stores them.
No tests here; other modules import it as
``cloud.tests.test_cloud_replenishment_world``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import (
    replace_planogram,
    set_brand,
    set_dealer_stock,
    upsert_dealer,
    upsert_skus,
    upsert_stores,
)
from shelflink.cloud.master_data_models import (
    Brand,
    DealerChanges,
    PlanogramLane,
    Sku,
    StockLevel,
    StoreUpsert,
)

WATER = "4006381333931"  # ambient, 6 a case
MILK = "4012345678901"  # chilled, 6 a case
CHIPS = "4011111111117"  # ambient, 12 a case, at least 24 an order line
ALL_DAYS = [1, 2, 3, 4, 5, 6, 7]
# Lane order on every store's shelf device.
LANES = (WATER, MILK, CHIPS)


def shelf(store_id: str) -> str:
    """The store's one shelf device."""
    return f"shelf-{store_id}"


def fridge(store_id: str) -> str:
    """The store's fridge controller."""
    return f"fridge-{store_id}"


async def build_world(
    conn: Connection, *, warehouse: dict[str, int] | None = None, lead_time_days: int = 1
) -> None:
    """Dealers north (stores n1, n2) and south (s1); every store delivers daily and
    has a shelf with water, milk and chips. ``warehouse``: north's stock by GTIN
    (south holds 1,000 of each)."""
    await set_brand(conn, Brand(name="Fizz", currency="EUR"))
    await upsert_dealer(conn, "north", DealerChanges(name="North Drinks", territory=["N"]))
    await upsert_dealer(conn, "south", DealerChanges(name="South Drinks", territory=["S"]))
    await upsert_skus(
        conn,
        [
            Sku(gtin=WATER, name="Water", case_pack=6, min_order_units=6,
                list_price_minor=40, min_resale_minor=59, currency="EUR"),
            Sku(gtin=MILK, name="Milk", case_pack=6, min_order_units=6, cold_chain="chilled",
                list_price_minor=90, min_resale_minor=119, currency="EUR"),
            Sku(gtin=CHIPS, name="Chips", case_pack=12, min_order_units=24,
                list_price_minor=70, min_resale_minor=99, currency="EUR"),
        ],
    )  # fmt: skip
    await upsert_stores(
        conn,
        [
            StoreUpsert(store_id=store_id, dealer_id=dealer, name=store_id, region=region,
                        lead_time_days=lead_time_days, delivery_weekdays=ALL_DAYS)
            for store_id, dealer, region in (("n1", "north", "N"), ("n2", "north", "N"),
                                             ("s1", "south", "S"))
        ],
    )  # fmt: skip
    for store_id in ("n1", "n2", "s1"):
        await replace_planogram(
            conn,
            store_id,
            [
                PlanogramLane(device=shelf(store_id), lane=lane, gtin=gtin, capacity=30)
                for lane, gtin in enumerate(LANES)
            ],
        )
    if warehouse is not None:
        await set_dealer_stock(
            conn, "north", [StockLevel(gtin=g, units=u) for g, u in warehouse.items()]
        )
    await set_dealer_stock(conn, "south", [StockLevel(gtin=g, units=1000) for g in LANES])


def today_utc() -> datetime:
    """Today's UTC midnight."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


async def add_daily_sales(
    conn: Connection, store_id: str, gtin: str, per_day: list[int], *, price_minor: int = 99
) -> None:
    """Sales on the days before today, oldest first: ``per_day[-1]`` was sold yesterday,
    one sale row per unit, at noon UTC."""
    start = today_utc() - timedelta(days=len(per_day))
    rows = [
        (start + timedelta(days=day, hours=12, seconds=unit), units)
        for day, units in enumerate(per_day)
        for unit in range(units)
    ]
    await add_sales(conn, store_id, [(ts, gtin, None, price_minor) for ts, _ in rows])


async def add_sales(
    conn: Connection, store_id: str, sales: list[tuple[datetime, str, str | None, int]]
) -> None:
    """Sales ``(ts, gtin, serial, unit_price_minor)`` of one unit each at the store's till."""
    device = f"till-{store_id}"
    cur = await conn.execute("SELECT coalesce(max(seq), 0) FROM sales WHERE device = %s", (device,))
    row = await cur.fetchone()
    assert row is not None
    first = int(row[0]) + 1
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO sales (store_id, device, seq, ts, gtin, serial, qty, unit_price_minor,"
            " currency, receipt_id) VALUES (%s, %s, %s, %s, %s, %s, 1, %s, 'EUR', %s)",
            [
                (store_id, device, first + i, ts, gtin, serial, price, f"r{first + i}")
                for i, (ts, gtin, serial, price) in enumerate(sales)
            ],
        )


async def add_event(
    conn: Connection, store_id: str, type_: str, source: str, ts: datetime, body: dict[str, Any]
) -> None:
    """One gateway event, numbered after the gateway's last."""
    await conn.execute(
        "INSERT INTO events (gateway_id, seq, store_id, source, ts, type, severity, body)"
        " SELECT %(gw)s, coalesce(max(seq), 0) + 1, %(store)s, %(source)s, %(ts)s, %(type)s,"
        " 'info', %(body)s FROM events WHERE gateway_id = %(gw)s",
        {"gw": f"gw-{store_id}", "store": store_id, "source": source, "ts": ts,
         "type": type_, "body": Jsonb(body)},
    )  # fmt: skip


async def add_shelf_units(
    conn: Connection,
    store_id: str,
    ts: datetime,
    units: list[int | None],
    blind: list[bool] | None = None,
) -> None:
    """A ``shelf_units`` event of the store's shelf (lanes: water, milk, chips)."""
    body = {"units": units, "blind": blind or [False] * len(units)}
    await add_event(conn, store_id, "shelf_units", shelf(store_id), ts, body)


async def add_lane_alert(
    conn: Connection, store_id: str, type_: str, gtin: str, state: str, ts: datetime
) -> None:
    """A ``stockout_risk`` / ``out_of_stock`` event for the lane holding ``gtin``."""
    body = {"state": state, "lane": LANES.index(gtin), "gtin": gtin, "units": 1, "capacity": 30}
    await add_event(conn, store_id, type_, shelf(store_id), ts, body)


async def add_fridge_alarm(conn: Connection, store_id: str, state: str, ts: datetime) -> None:
    """A ``cold_chain_alarm`` (temperature_high) of the store's fridge."""
    body = {"state": state, "alarm": "temperature_high"}
    await add_event(conn, store_id, "cold_chain_alarm", fridge(store_id), ts, body)


async def scalar(conn: Connection, sql: str, *params: Any) -> Any:
    """The single value a query returns."""
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None
    return row[0]
