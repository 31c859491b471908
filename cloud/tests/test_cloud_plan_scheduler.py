"""The planning schedule against a real database: a tick at start, an early run for
the dealer of a store whose stock-out risk was just raised, and a clean stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud.tests.test_cloud_replenishment_world import (
    WATER,
    add_daily_sales,
    add_lane_alert,
    add_shelf_units,
    build_world,
    today_utc,
)
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.plan_scheduler import CHANNEL, ScheduleOptions, run_schedule


class Reports:
    """The scheduler's report lines, and a way to wait for the n-th."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def __call__(self, line: dict[str, Any]) -> None:
        self.lines.append(line)
        self._arrived.set()

    async def wait_for(self, count: int, timeout_s: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while len(self.lines) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.lines[count - 1]


async def test_only_raised_risks_and_empty_lanes_notify_the_planner(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    now = datetime.now(UTC)
    async with await connect(migrated_database_url) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        await add_lane_alert(db, "n1", "stockout_risk", WATER, "cleared", now)
        await add_lane_alert(db, "n1", "low_stock", WATER, "raised", now)
        await add_lane_alert(db, "n2", "out_of_stock", WATER, "raised", now)
        await add_lane_alert(db, "s1", "stockout_risk", WATER, "raised", now)
        received = [n.payload async for n in listener.notifies(timeout=1.0)]
    assert received == ["n2", "s1"]


async def test_a_raised_risk_plans_its_dealer_before_the_next_tick(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    await add_daily_sales(db, "n1", WATER, [2] * 28)
    await add_shelf_units(db, "n1", today_utc(), [8, 30, 30])  # at S: no order without a risk
    reports = Reports()
    stop, listening = asyncio.Event(), asyncio.Event()
    options = ScheduleOptions(every_s=3600, settle_s=0.2)
    task = asyncio.create_task(
        run_schedule(migrated_database_url, options, reports, stop=stop, listening=listening)
    )
    try:
        tick = await reports.wait_for(1)
        async with asyncio.timeout(10):
            await listening.wait()
        assert (tick["trigger"], tick["dealers"], tick["orders_created"]) == ("schedule", 2, 0)
        assert tick["channel"]["sales_scanned"] == 28 * 2

        await add_lane_alert(
            db, "n1", "stockout_risk", WATER, "raised", datetime.now(UTC) - timedelta(minutes=1)
        )
        early = await reports.wait_for(2)
        assert (early["trigger"], early["risk_stores"]) == ("stockout_risk", ["n1"])
        assert early["dealers"] == 1
        assert early["orders_created"] == 1 and early["expedited_orders"] == 1
        assert [r["dealer_id"] for r in early["runs"]] == ["north"]
        cur = await db.execute("SELECT trigger, dealer_id FROM planning_runs ORDER BY run_id")
        assert await cur.fetchall() == [
            ("schedule", "north"), ("schedule", "south"), ("stockout_risk", "north"),
        ]  # fmt: skip
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task
    assert len(reports.lines) == 2
