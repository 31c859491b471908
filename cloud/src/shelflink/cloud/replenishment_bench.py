"""How long a replenishment run takes on a modest, seeded dataset.

``python -m shelflink.cloud.replenishment_bench`` creates a scratch database on
the configured server (``SHELFLINK_DATABASE_URL``, else an embedded one),
migrates it, seeds dealers, stores, SKUs, 28 days of sales and hourly
``shelf_units`` events with SQL (``generate_series``, seeded ``random()``),
times a first planning run (which creates orders), a second one (which finds
them on order and creates none) and a channel-control scan, prints one JSON
object and drops the database.

Half the stores have a scanner (demand from sales); the other half are read
from shelf depletion. Every store's shelves carry every SKU, eight lanes per
shelf device; lanes deplete at the SKU's rate and are restocked every two
days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from shelflink.cloud.channel_control import scan_channel
from shelflink.cloud.database import Connection, connect, open_database, with_database
from shelflink.cloud.migrations import migrate
from shelflink.cloud.replenishment import run_planning
from shelflink.cloud.settings import load_settings

LANES_PER_DEVICE = 8


@dataclass(frozen=True, slots=True)
class BenchSize:
    """The dataset: dealers × stores each × SKUs, ``days`` of history."""

    dealers: int = 2
    stores_per_dealer: int = 50
    skus: int = 40
    days: int = 28
    seed: float = 0.42  # setseed() argument, in [-1, 1]


_SEED = """
SELECT setseed(%(seed)s);
INSERT INTO brand (name, currency) VALUES ('Bench', 'EUR');
INSERT INTO dealers (dealer_id, name, territory)
SELECT 'd' || d, 'Dealer ' || d, ARRAY['R' || d] FROM generate_series(1, %(dealers)s) d;
INSERT INTO skus (gtin, name, case_pack, min_order_units, cold_chain, list_price_minor,
                  min_resale_minor, currency)
SELECT lpad((40000000 + k)::text, 13, '0'), 'SKU ' || k, 6, 6,
       CASE WHEN k %% 4 = 0 THEN 'chilled' ELSE 'ambient' END, 50, 80, 'EUR'
FROM generate_series(1, %(skus)s) k;
INSERT INTO stores (store_id, dealer_id, name, region, lead_time_days, delivery_weekdays)
SELECT 'st' || d || '-' || s, 'd' || d, 'Store ' || s, 'R' || d, 1 + s %% 2,
       ARRAY[1, 3, 5]::smallint[]
FROM generate_series(1, %(dealers)s) d, generate_series(1, %(stores)s) s;
INSERT INTO planograms (store_id, device, lane, gtin, capacity)
SELECT st.store_id, st.store_id || '-shelf-' || ((k - 1) / {lanes}),
       (k - 1) %% {lanes}, lpad((40000000 + k)::text, 13, '0'), 24
FROM stores st, generate_series(1, %(skus)s) k;
INSERT INTO dealer_stock (dealer_id, gtin, units)
SELECT d.dealer_id, k.gtin, (random() * 600)::integer FROM dealers d, skus k;
-- Scanner stores (odd numbers): about one sale per SKU a day, more for low SKU numbers.
INSERT INTO sales (store_id, device, seq, ts, gtin, serial, qty, unit_price_minor, currency,
                   receipt_id)
SELECT store_id, store_id || '-till', row_number() OVER (PARTITION BY store_id ORDER BY ts),
       ts, gtin, NULL, 1, CASE WHEN random() < 0.01 THEN 70 ELSE 99 END, 'EUR', 'r'
FROM (
    SELECT st.store_id, p.gtin,
           %(start)s::timestamptz + (day || ' days')::interval
               + (random() * 86399 || ' seconds')::interval AS ts
    FROM stores st
    JOIN planograms p USING (store_id)
    CROSS JOIN generate_series(0, %(days)s - 1) day
    CROSS JOIN LATERAL generate_series(1, (random() * 4 / (1 + (right(p.gtin, 3)::int %% 5)))::int)
    WHERE right(st.store_id, 1)::int %% 2 = 1
) s;
-- Hourly shelf counts for every shelf device, up to now: each lane loses
-- units at its SKU's rate and is refilled every 48 hours.
INSERT INTO events (gateway_id, seq, store_id, source, ts, type, severity, body)
SELECT 'gw-' || store_id, row_number() OVER (PARTITION BY store_id ORDER BY ts, device),
       store_id, device, ts, 'shelf_units', 'info',
       jsonb_build_object('units', units, 'blind', blind)
FROM (
    SELECT p.store_id, p.device, %(start)s::timestamptz + (h || ' hours')::interval AS ts,
           jsonb_agg(greatest(0, 24 - ((h + p.lane * 7) %% 48) / (1 + p.lane %% 4))
                     ORDER BY p.lane) AS units,
           jsonb_agg(false ORDER BY p.lane) AS blind
    FROM planograms p CROSS JOIN generate_series(0, %(hours)s) h
    GROUP BY p.store_id, p.device, h
) readings;
ANALYZE;
""".replace("{lanes}", str(LANES_PER_DEVICE))


async def seed_planning_dataset(conn: Connection, size: BenchSize, *, now: datetime) -> None:
    """Fill a freshly migrated database with the bench's dataset."""
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    start = today - timedelta(days=size.days)
    hours = int((now - start).total_seconds() // 3600)
    params = {
        "seed": size.seed, "dealers": size.dealers, "stores": size.stores_per_dealer,
        "skus": size.skus, "days": size.days, "start": start, "hours": hours,
    }  # fmt: skip
    # One statement at a time: a parameterised query may hold only one. The
    # seeded random() sequence only holds on one connection, which this is.
    for statement in _SEED.split(";\n"):
        if statement.strip():
            await conn.execute(statement.encode(), params)


async def bench_replenishment(server_url: str, size: BenchSize) -> dict[str, Any]:
    """Seed a scratch database on ``server_url``, time the runs, drop it; the figures."""
    name = f"shelflink_bench_{uuid.uuid4().hex[:10]}"
    async with await connect(server_url) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        async with await connect(with_database(server_url, name)) as conn:
            await migrate(conn)
            now = datetime.now(UTC)
            started = time.perf_counter()
            await seed_planning_dataset(conn, size, now=now)
            seeded_s = time.perf_counter() - started
            counts = await _counts(conn)
            first = await run_planning(conn, now=now)
            second = await run_planning(conn, now=now)
            started = time.perf_counter()
            scan = await scan_channel(conn)
            scan_s = time.perf_counter() - started
    finally:
        async with await connect(server_url) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return {
        **counts,
        "seed_seconds": round(seeded_s, 2),
        "first_run": _figures(first.as_dict()),
        "second_run": _figures(second.as_dict()),
        "channel_scan_seconds": round(scan_s, 3),
        "price_alerts": scan.price_alerts,
    }


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("dealers", "stores", "pairs", "orders_created", "lines", "units", "by_reason")
    return {key: summary[key] for key in keep} | {"seconds": summary["seconds"]}


async def _counts(conn: Connection) -> dict[str, int]:
    found: dict[str, int] = {}
    for table in ("stores", "planograms", "sales", "events"):
        cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        row = await cur.fetchone()
        assert row is not None
        found[table] = int(row[0])
    return found


def main() -> None:
    """Run the bench from the command line; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = BenchSize()
    parser.add_argument("--dealers", type=int, default=defaults.dealers)
    parser.add_argument("--stores-per-dealer", type=int, default=defaults.stores_per_dealer)
    parser.add_argument("--skus", type=int, default=defaults.skus)
    parser.add_argument("--days", type=int, default=defaults.days)
    args = parser.parse_args()
    size = BenchSize(args.dealers, args.stores_per_dealer, args.skus, args.days)

    async def run() -> dict[str, Any]:
        async with open_database(load_settings()) as url:
            return await bench_replenishment(url, size)

    print(json.dumps(asyncio.run(run())))


if __name__ == "__main__":
    main()
