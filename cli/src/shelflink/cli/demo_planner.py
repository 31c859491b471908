"""Replenishment planning in the demo, on the simulated clock.

The production scheduler (``plan_scheduler.run_schedule``) plans as of the
wall clock. The demo's stores live on a simulated clock that runs many times
faster and behind the wall, so the demo calls the same run,
``replenishment.run_planning``, itself: as of the simulated now, every
``every_min`` simulated minutes, and early for the dealers of a store whose
gateway raised a stock-out risk. The risk arrives the way it does in
production: the trigger on ``events`` (migration 0005) notifies
``shelflink_replenishment`` when the ingest commits the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from shelflink.cloud.database import Connection, connect
from shelflink.cloud.plan_scheduler import CHANNEL
from shelflink.cloud.replenishment import run_planning

logger = logging.getLogger(__name__)

APPLICATION_NAME = "shelflink-demo-planner"
RECONNECT_S = 1.0
SHELF_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class PlanningPace:
    """When the demo plans, in simulated minutes (and the wall seconds of a burst)."""

    every_min: float = 30.0
    # A raised risk waits this long (wall) for the rest of its burst: one run per burst.
    settle_s: float = 1.0


class DemoPlanner:
    """Plans every dealer on a simulated schedule and on raised risks, until cancelled."""

    def __init__(
        self,
        database_url: str,
        sim_now_ms: Callable[[], int],
        speed: float,
        pace: PlanningPace | None = None,
        report: Callable[[dict[str, Any]], None] | None = None,
        shelf_devices: Collection[str] = (),
    ) -> None:
        self.database_url = database_url
        self.shelf_devices = sorted(shelf_devices)
        self.sim_now_ms = sim_now_ms
        self.speed = speed
        self.pace = pace or PlanningPace()
        self.report = report
        self.runs = 0
        self.risk_runs = 0
        self.orders_created = 0
        self.last: dict[str, Any] | None = None
        self.listening = asyncio.Event()

    @property
    def every_s(self) -> float:
        """Wall seconds between scheduled runs."""
        return self.pace.every_min * 60.0 / self.speed

    async def run(self) -> None:
        """Plan until cancelled. The first scheduled run waits until every one of
        ``shelf_devices`` has reported its lanes to the cloud (at most one interval),
        because a lane nobody has reported would be ordered up to its full level;
        raised risks are planned meanwhile."""
        raised: asyncio.Queue[str] = asyncio.Queue()
        async with (
            await connect(self.database_url, application_name=APPLICATION_NAME) as conn,
            asyncio.TaskGroup() as tasks,
        ):
            listener = tasks.create_task(self._listen(raised))
            try:
                await self._loop(conn, raised)
            finally:
                listener.cancel()

    async def _loop(self, conn: Connection, raised: asyncio.Queue[str]) -> None:
        loop = asyncio.get_running_loop()
        since = datetime.fromtimestamp(self.sim_now_ms() / 1000, tz=UTC)
        due = loop.time() + self.every_s
        started = False
        while True:
            wait = max(0.0, due - loop.time())
            store: str | None = None
            with contextlib.suppress(TimeoutError):
                timeout = wait if started else min(wait, SHELF_POLL_S)
                store = await asyncio.wait_for(raised.get(), timeout=timeout)
            try:
                if store is None:
                    if not started and wait > 0 and not await self._shelves_reported(conn, since):
                        continue
                    started = True
                    due = loop.time() + self.every_s
                    await self.plan(conn, trigger="schedule")
                    continue
                await asyncio.sleep(self.pace.settle_s)
                stores = {store}
                while not raised.empty():
                    stores.add(raised.get_nowait())
                await self.plan(conn, trigger="stockout_risk", stores=stores)
            except psycopg.OperationalError:
                raise  # the database is gone: the demo is over
            except psycopg.Error:
                logger.exception("demo planning run failed")

    async def _shelves_reported(self, conn: Connection, since: datetime) -> bool:
        cur = await conn.execute(
            "SELECT count(DISTINCT source) FROM events WHERE type = 'shelf_units'"
            " AND source = ANY(%s) AND ts >= %s",
            (self.shelf_devices, since),
        )
        row = await cur.fetchone()
        return row is not None and row[0] >= len(self.shelf_devices)

    async def plan(
        self, conn: Connection, *, trigger: str, stores: set[str] | None = None
    ) -> dict[str, Any]:
        """One run as of the simulated now: every dealer, or those of ``stores``."""
        dealers: list[str] | None = None
        if stores is not None:
            cur = await conn.execute(
                "SELECT DISTINCT dealer_id FROM stores WHERE store_id = ANY(%s) ORDER BY 1",
                (sorted(stores),),
            )
            dealers = [row[0] for row in await cur.fetchall()]
            if not dealers:
                return {}
        now = datetime.fromtimestamp(self.sim_now_ms() / 1000, tz=UTC)
        summary = await run_planning(conn, dealer_ids=dealers, now=now, trigger=trigger)
        line: dict[str, Any] = {"trigger": trigger, "sim_now": now.isoformat()}
        if stores is not None:
            line["risk_stores"] = sorted(stores)
        line.update(summary.as_dict())
        self.runs += 1
        self.risk_runs += trigger == "stockout_risk"
        self.orders_created += int(line["orders_created"])
        self.last = line
        if self.report is not None:
            self.report(line)
        return line

    async def _listen(self, raised: asyncio.Queue[str]) -> None:
        """Queue the store of every raised-risk notification; reconnect when dropped."""
        while True:
            try:
                async with await connect(
                    self.database_url, application_name=APPLICATION_NAME
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for notice in conn.notifies():
                        raised.put_nowait(notice.payload)
            except psycopg.OperationalError as exc:
                self.listening.clear()
                logger.warning("demo planner lost its LISTEN connection: %s", exc)
                await asyncio.sleep(RECONNECT_S)
