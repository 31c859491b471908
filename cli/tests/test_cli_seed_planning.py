"""The demo's planner on a real database: it plans as of the simulated clock, and a
raised stock-out risk wakes it for the dealer of that store only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from shelflink.cli.demo_history import import_sales_history
from shelflink.cli.demo_planner import DemoPlanner, PlanningPace
from shelflink.cli.demo_seed import seed_demo
from shelflink.cli.store_configs import sim_layouts
from shelflink.cloud.database import Connection, connect

SEED = 3
# A Wednesday morning: both demo dealers deliver on Thursday, so today is an order day.
SIM_NOW = datetime(2024, 3, 6, 9, 0, tzinfo=UTC)


def sim_now_ms() -> int:
    return int(SIM_NOW.timestamp() * 1000)


async def seeded(conn: Connection) -> list[Any]:
    layouts = sim_layouts(2, SEED)
    await seed_demo(conn, layouts)
    await import_sales_history(conn, layouts, seed=SEED, until=SIM_NOW)
    return layouts


async def shelf_report(conn: Connection, layout: Any, seq: int) -> None:
    """What the store's gateway reports: every lane at half its capacity."""
    for shelf in layout.shelves:
        units = [int(layout.capacity[lane]) // 2 for lane in range(shelf.start, shelf.stop)]
        await event(conn, layout.store_id, seq, shelf.device_id, "shelf_units", {"units": units})
        seq += 1


async def event(
    conn: Connection, store_id: str, seq: int, source: str, kind: str, body: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO events (gateway_id, seq, store_id, source, ts, type, severity, body)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'info', %s::jsonb)",
        (f"gw-{store_id}", seq, store_id, source, SIM_NOW, kind, json.dumps(body)),
    )


async def test_a_raised_risk_plans_that_stores_dealer_at_once(migrated_database_url: str) -> None:
    async with await connect(migrated_database_url) as conn:
        layouts = await seeded(conn)
        await shelf_report(conn, layouts[0], 0)
        lines: list[dict[str, Any]] = []
        # The scheduled run waits for the second store's shelves, which never report
        # here (and an hour of simulated time is an hour of wall time).
        planner = DemoPlanner(
            migrated_database_url, sim_now_ms, speed=1.0,
            pace=PlanningPace(every_min=60, settle_s=0.2), report=lines.append,
            shelf_devices=[shelf.device_id for x in layouts for shelf in x.shelves],
        )  # fmt: skip
        task = asyncio.create_task(planner.run())
        try:
            async with asyncio.timeout(10):
                await planner.listening.wait()
            layout = layouts[0]
            gtin = layout.skus[int(layout.lane_sku[0])].gtin
            body = {"state": "raised", "lane": 0, "gtin": gtin, "units": 1, "capacity": 9}
            await event(conn, layout.store_id, 100, layout.shelves[0].device_id,
                        "stockout_risk", body)  # fmt: skip
            async with asyncio.timeout(15):
                while not lines:  # noqa: ASYNC110 - the planner reports through a list
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        (line,) = lines
        assert line["trigger"] == "stockout_risk" and line["risk_stores"] == ["s0001"]
        assert line["sim_now"] == SIM_NOW.isoformat()
        assert [run["dealer_id"] for run in line["runs"]] == ["north-drinks"]
        assert line["expedited_orders"] == 1
        cur = await conn.execute("SELECT store_id, dealer_id, expedite FROM orders")
        assert await cur.fetchall() == [("s0001", "north-drinks", True)]
        cur = await conn.execute(
            "SELECT l.quantity > 0 FROM order_lines l JOIN orders o USING (order_id)"
            " WHERE l.gtin = %s",
            (gtin,),
        )
        assert await cur.fetchall() == [(True,)]
        assert (planner.runs, planner.risk_runs) == (1, 1)


async def test_scheduled_runs_plan_every_dealer_as_of_the_simulated_now(
    migrated_database_url: str,
) -> None:
    async with await connect(migrated_database_url) as conn:
        layouts = await seeded(conn)
        for layout in layouts:
            await shelf_report(conn, layout, 0)
        planner = DemoPlanner(migrated_database_url, sim_now_ms, speed=3600.0)
        line = await planner.plan(conn, trigger="schedule")
        assert [run["dealer_id"] for run in line["runs"]] == ["north-drinks", "south-wholesale"]
        # Half-full shelves against four weeks of demand: both stores order; the
        # dealers' short SKU is cut by fair share.
        assert line["orders_created"] == 2
        assert line["by_reason"].get("allocated_short", 0) >= 1
        again = await planner.plan(conn, trigger="schedule")
        assert again["orders_created"] == 0, "the suggestions waiting count as on order"
        assert planner.orders_created == 2
