"""The replenishment loop end to end, with real parts only: a simulated store runs low,
its gateway's edge raises the risk, the cloud suggests an order to the store's own
dealer, the dealer works it through the workflow, and the delivery refills the lane.

Simulated kiosk (its backroom empty, its standing order off) → MQTT broker →
gateway (edge and uplink) → broker → ingest worker → PostgreSQL → planning run →
order → approved, picking, shipped, delivered → the store's backroom → the next
staff round → the lane, as the simulator's ground truth and the gateway see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shelflink.cli.demo_history import import_sales_history
from shelflink.cli.demo_seed import issue_demo_keys, seed_demo
from shelflink.cli.store_configs import gateway_config
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.ingest import IngestOptions, IngestWorker
from shelflink.cloud.orders import list_orders, transition_order
from shelflink.cloud.orders_models import Actor, Order
from shelflink.cloud.orders_workflow import OrderState
from shelflink.cloud.replenishment import run_planning
from shelflink.cloud.writer import register_gateway
from shelflink.gateway import Gateway
from shelflink.sim import PROFILES, SimConfig, build_catalog, build_layout
from shelflink.sim.backroom import Backroom
from shelflink.sim.clock import MS_PER_DAY
from shelflink.sim.run import LiveRun
from shelflink.sim.store import StoreSim

pytestmark = pytest.mark.slow

SEED = 21
SPEED = 1500.0  # 25 simulated minutes per wall second
HOUR_MS = 3_600_000
# The run starts at 15:00, after the kiosk's 13:00 staff round: with an empty
# backroom nothing refills a lane until the delivery, and the next round is
# 05:30 the next morning. The store closes at 20:00.
START_HOUR = 15
CLOSING_HOUR = 20
MORNING_ROUND_HOUR = 5.5
MIN_RUN_S = 50.0  # wall seconds the simulation must be able to run


def run_duration_s(now_ms: int) -> float:
    """A duration that makes the live run's clock start at START_HOUR (UTC) of a day:
    the run starts ``duration × (speed - 1)`` in the past (docs/simulator.md)."""
    start = (now_ms // MS_PER_DAY) * MS_PER_DAY + START_HOUR * HOUR_MS
    while now_ms - start < MIN_RUN_S * (SPEED - 1) * 1000:
        start -= MS_PER_DAY
    return (now_ms - start) / (SPEED - 1) / 1000


def empty_backroom(sim: StoreSim) -> None:
    """Start the store with nothing behind the shelves (its opening lanes stay as drawn)."""
    skus = len(sim.layout.skus)
    on_lanes = np.bincount(sim.layout.lane_sku, weights=sim.stock, minlength=skus)
    sim.backroom = Backroom(np.zeros(skus, dtype=np.int64), on_lanes.astype(np.int64))


@dataclass
class Loop:
    conn: Connection
    live: LiveRun
    gateway: Gateway
    dealer_key_id: str

    @property
    def sim(self) -> StoreSim:
        return self.live.sims[0]

    def sim_hours_since_start(self) -> float:
        return (self.sim.now_ms - self.live.clock.start_ms) / HOUR_MS

    async def until(self, check: Callable[[], Awaitable[Any]], sim_hours: float, what: str) -> Any:
        """Poll ``check`` until it returns something truthy, at most until the simulated
        clock is ``sim_hours`` past the start (plus a wall margin for the pipeline)."""
        deadline = time.monotonic() + sim_hours * 3600 / SPEED + 20.0
        while True:
            found = await check()
            if found:
                return found
            if time.monotonic() > deadline:
                edge = self.gateway.edge
                raise AssertionError(
                    f"timed out waiting for {what}: simulated "
                    f"{self.sim_hours_since_start():.1f} h after the start, edge alerts "
                    f"{dict(edge.counters.alerts) if edge else None}"
                )
            await asyncio.sleep(0.2)


@pytest.fixture
async def loop(tmp_path: Path, mqtt_url: str, migrated_database_url: str) -> AsyncIterator[Loop]:
    live = LiveRun(
        stores=1, seed=SEED, speed=SPEED, duration_s=run_duration_s(time.time_ns() // 1_000_000),
        broker_url=mqtt_url, state_dir=tmp_path / "devices", profile_mix={"kiosk": 1.0},
        config=SimConfig(auto_replenish=False),
    )  # fmt: skip
    empty_backroom(live.sims[0])
    layout = live.sims[0].layout
    # A second kiosk that only the cloud knows, served by the other dealer.
    other = build_layout(SEED, 1, PROFILES["kiosk"], build_catalog(SEED))
    # A gateway id of this test's own: no broker session of an earlier run reaches it.
    config = gateway_config(layout, mqtt_url, tmp_path / "gateway", uplink_url=mqtt_url)
    config = config.model_copy(update={"gateway_id": f"gw-e2e-{uuid.uuid4().hex[:10]}"})
    start = datetime.fromtimestamp(live.clock.start_ms / 1000, tz=UTC)
    conn = await connect(migrated_database_url)
    await seed_demo(conn, [layout, other])
    await import_sales_history(conn, [layout, other], seed=SEED, until=start)
    keys = await issue_demo_keys(conn, replace=True)
    await register_gateway(conn, config.gateway_id, layout.store_id)

    gateway = Gateway(config)
    worker = IngestWorker(
        mqtt_url, migrated_database_url, IngestOptions(worker_id=f"e2e-{uuid.uuid4().hex[:8]}")
    )
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(worker.run()),
        asyncio.create_task(gateway.run()),
    ]
    try:
        async with asyncio.timeout(30):
            await gateway.ready.wait()
            assert gateway.southbound is not None
            await gateway.southbound.connected.wait()
            await worker.connected.wait()
        tasks.append(asyncio.create_task(live.run()))
        yield Loop(conn, live, gateway, keys.dealers["north-drinks"].key_id)
    finally:
        for task in reversed(tasks):
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await conn.close()


async def first_raised_risk(conn: Connection, store_id: str) -> tuple[Any, ...] | None:
    cur = await conn.execute(
        "SELECT source, (body ->> 'lane')::integer, body ->> 'gtin', type FROM events"
        " WHERE store_id = %s AND type IN ('stockout_risk', 'out_of_stock')"
        " AND body ->> 'state' = 'raised' ORDER BY ts, seq LIMIT 1",
        (store_id,),
    )
    return await cur.fetchone()


async def test_a_store_running_low_is_refilled_through_its_dealer(loop: Loop) -> None:
    layout = loop.sim.layout
    store = layout.store_id

    # 1. A lane runs low; the edge raises it and the event lands in the cloud.
    async def risk() -> tuple[Any, ...] | None:
        return await first_raised_risk(loop.conn, store)

    device, slot, gtin, kind = await loop.until(
        risk, CLOSING_HOUR - START_HOUR + 1, "a raised stockout_risk or out_of_stock event"
    )
    shelf = next(s for s in layout.shelves if s.device_id == device)
    lane = shelf.start + slot
    assert layout.skus[int(layout.lane_sku[lane])].gtin == gtin

    # 2. Planning as of the simulated now suggests an order to the store's own dealer.
    now = datetime.fromtimestamp(loop.sim.now_ms / 1000, tz=UTC)
    summary = await run_planning(loop.conn, now=now, trigger="stockout_risk")
    assert summary.as_dict()["orders_created"] >= 1, summary.as_dict()
    orders = await list_orders(loop.conn)
    mine = [o for o in orders if o.store_id == store]
    assert len(mine) == 1, orders
    (order,) = mine
    assert order.dealer_id == "north-drinks" and order.state is OrderState.SUGGESTED
    assert gtin in {line.gtin for line in order.lines}, (kind, gtin, order.lines)
    assert order.expedite and order.reason.startswith("expedite"), order.reason
    # The other dealer's orders are for its own store only.
    assert {o.store_id for o in orders if o.dealer_id != "north-drinks"} <= {"s0002"}

    # 3. The dealer works it through the workflow with its own key.
    dealer = Actor(kind="dealer", key_id=loop.dealer_key_id, dealer_id="north-drinks")
    moved: Order = order
    for target in (OrderState.APPROVED, OrderState.PICKING, OrderState.SHIPPED,
                   OrderState.DELIVERED):  # fmt: skip
        moved = await transition_order(
            loop.conn, order.order_id, target, dealer,
            expected_version=moved.version, dealer_id="north-drinks",
        )  # fmt: skip
    assert moved.state is OrderState.DELIVERED

    # 4. The goods reach the simulated store; the next staff round fills the lane.
    true_before = int(loop.sim.stock[lane])
    assert loop.gateway.edge is not None
    seen_before = int(loop.gateway.edge.features.units()[lane])
    ref = f"order-{order.order_id}"
    loop.live.inject_delivery(store, {x.gtin: x.quantity for x in order.lines}, ref=ref)
    hours_to_round = 24 + MORNING_ROUND_HOUR - START_HOUR + 1

    async def refilled() -> bool:
        return int(loop.sim.stock[lane]) > true_before

    await loop.until(refilled, hours_to_round, f"lane {lane} refilled from the delivery")
    assert int(loop.sim.ledger.restocked[lane]) > 0

    async def seen_by_gateway() -> bool:
        assert loop.gateway.edge is not None
        return int(loop.gateway.edge.features.units()[lane]) > seen_before

    await loop.until(seen_by_gateway, hours_to_round + 1, "the gateway seeing the lane refilled")

    # 5. The store's receiving scanner reported the delivery back to the cloud.
    delivered = sum(x.quantity for x in order.lines)

    async def scanned_in() -> bool:
        cur = await loop.conn.execute(
            "SELECT coalesce(sum(qty), 0) FROM goods_receipts WHERE store_id = %s"
            " AND delivery_ref = %s",
            (store, ref),
        )
        row = await cur.fetchone()
        return row is not None and row[0] == delivered

    await loop.until(scanned_in, hours_to_round + 1, "the delivery scanned in, in the cloud")
