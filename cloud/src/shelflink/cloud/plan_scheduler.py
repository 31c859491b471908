"""Planning on a schedule, and at once when the edge raises a stock-out risk.

Every ``every_s`` seconds all dealers are planned and channel control scans
the sales that arrived since its last scan. Between ticks the scheduler
LISTENs on ``shelflink_replenishment``: a trigger on ``events`` (migration
0005) notifies the store of every ``stockout_risk`` or ``out_of_stock`` event
raised, at the commit that stores it. The scheduler waits ``settle_s`` for
the rest of a burst (a gateway's replay brings many at once), then plans
only the dealers of the stores named. LISTEN/NOTIFY rather than polling
``events``: that table has no arrival column to keep a watermark on, and a
notification costs nothing until a risk is raised. Notifications sent while
the listening connection is down are lost; the listener reconnects with
backoff, and the scheduled run is the safety net that plans those stores
anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from shelflink.cloud.channel_control import scan_channel
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.replenishment import PlanningOptions, run_planning
from shelflink.device.backoff import Backoff

logger = logging.getLogger(__name__)

CHANNEL: Final = "shelflink_replenishment"
APPLICATION_NAME: Final = "shelflink-planner"

Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    """When the scheduler plans."""

    every_s: float
    # How long a raised risk waits for others before its run: one run per burst.
    settle_s: float = 2.0
    # Also run channel control on every scheduled tick.
    channel_scan: bool = True
    planning: PlanningOptions = field(default_factory=PlanningOptions)


async def run_schedule(
    database_url: str,
    options: ScheduleOptions,
    report: Report,
    *,
    stop: asyncio.Event | None = None,
    listening: asyncio.Event | None = None,
    dealer_ids: list[str] | None = None,
) -> None:
    """Plan on schedule and on raised risks until ``stop`` is set (or the task is
    cancelled); ``report`` gets one summary per run. ``listening`` is set while
    notifications are being received. ``dealer_ids`` limits every run to those
    dealers (a scheduler per shard of dealers)."""
    if options.every_s <= 0:
        raise ValueError("every_s must be above 0")
    stop = stop or asyncio.Event()
    listening = listening or asyncio.Event()
    raised: asyncio.Queue[str] = asyncio.Queue()
    async with (
        await connect(database_url, application_name=APPLICATION_NAME) as conn,
        asyncio.TaskGroup() as tasks,
    ):
        listener = tasks.create_task(_listen(database_url, raised, listening))
        try:
            await _loop(conn, options, report, stop, raised, dealer_ids)
        finally:
            listener.cancel()


async def _loop(
    conn: Connection,
    options: ScheduleOptions,
    report: Report,
    stop: asyncio.Event,
    raised: asyncio.Queue[str],
    dealer_ids: list[str] | None,
) -> None:
    next_due = time.monotonic()
    while not stop.is_set():
        store = await _next_store(raised, stop, max(0.0, next_due - time.monotonic()))
        if stop.is_set():
            return
        try:
            if store is None:
                next_due = time.monotonic() + options.every_s
                await _scheduled_run(conn, options, report, dealer_ids)
                continue
            # The rest of the burst: stores whose risks arrive while we settle.
            await _wait(stop, options.settle_s)
            stores = {store}
            while not raised.empty():
                stores.add(raised.get_nowait())
            await _risk_run(conn, options, report, stores, dealer_ids)
        except psycopg.OperationalError:
            raise  # the connection is gone: the service's supervisor restarts us
        except psycopg.Error as exc:
            # One run's failure (a constraint, a statement timeout) must not end
            # the schedule; the next tick tries again.
            logger.exception("planning run failed")
            report({"trigger": "schedule" if store is None else "stockout_risk",
                    "error": str(exc)})  # fmt: skip


async def _scheduled_run(
    conn: Connection, options: ScheduleOptions, report: Report, dealer_ids: list[str] | None
) -> None:
    summary = await run_planning(
        conn, dealer_ids=dealer_ids, trigger="schedule", options=options.planning
    )
    line: dict[str, Any] = {"trigger": "schedule", **summary.as_dict()}
    if options.channel_scan:
        line["channel"] = (await scan_channel(conn)).as_dict()
    report(line)


async def _risk_run(
    conn: Connection,
    options: ScheduleOptions,
    report: Report,
    stores: set[str],
    dealer_ids: list[str] | None,
) -> None:
    cur = await conn.execute(
        "SELECT DISTINCT dealer_id FROM stores WHERE store_id = ANY(%s) ORDER BY dealer_id",
        (sorted(stores),),
    )
    dealers = [row[0] for row in await cur.fetchall()]
    if dealer_ids is not None:
        dealers = [d for d in dealers if d in dealer_ids]
    if not dealers:
        return
    summary = await run_planning(
        conn, dealer_ids=dealers, trigger="stockout_risk", options=options.planning
    )
    report({"trigger": "stockout_risk", "risk_stores": sorted(stores), **summary.as_dict()})


async def _next_store(
    raised: asyncio.Queue[str], stop: asyncio.Event, timeout_s: float
) -> str | None:
    """The next store with a raised risk, or None when the timeout (or ``stop``) came first."""
    getting = asyncio.ensure_future(raised.get())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait(
            {getting, stopping}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopping.cancel()
        if not getting.done():
            getting.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _listen(database_url: str, raised: asyncio.Queue[str], listening: asyncio.Event) -> None:
    """Queue the store of every notification; reconnect after a lost connection."""
    backoff = Backoff(initial_s=0.5, maximum_s=30.0)
    while True:
        try:
            async with await connect(database_url, application_name=APPLICATION_NAME) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                listening.set()
                backoff.reset()
                async for notice in conn.notifies():
                    raised.put_nowait(notice.payload)
        except psycopg.OperationalError as exc:
            listening.clear()
            delay = backoff.next_delay()
            logger.warning("planner lost its LISTEN connection (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
