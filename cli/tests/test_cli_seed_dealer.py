"""The demo dealer on a real database and real simulated stores: it works orders through
the workflow on the simulated clock, as its own dealer, and delivers into the store; the
serials the seeding records as shipped are the ones the simulated stores sell."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shelflink.cli.demo_channel import DemoChannel, latest_alert_id, stage_price_fault
from shelflink.cli.demo_dealer import DEMO_DEALER, DealerPace, DemoDealer, latest_order_id
from shelflink.cli.demo_seed import (
    DemoKeys,
    issue_demo_keys,
    seed_demo,
    seed_serial_shipments,
    staged_diversion,
)
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.master_data import dealer_stock, shipped_serial
from shelflink.cloud.orders import backroom_stock, create_order, order_history, transition_order
from shelflink.cloud.orders_models import Actor, NewOrder, NewOrderLine, Order
from shelflink.cloud.orders_workflow import OrderState
from shelflink.sim import SimConfig, serial_code
from shelflink.sim.run import LiveRun

MINUTE = 60_000
PACE = DealerPace(approve_min=20, pick_min=30, ship_min=60, deliver_min=240)


@dataclass
class World:
    conn: Connection
    live: LiveRun
    keys: DemoKeys
    clock: list[int]  # the simulated now, moved by the test

    def dealer(self, after_order_id: int = 0) -> DemoDealer:
        actors = {
            dealer_id: Actor(kind="dealer", key_id=key.key_id, dealer_id=dealer_id)
            for dealer_id, key in self.keys.dealers.items()
        }
        return DemoDealer(
            self.live, ["s0001", "s0002"], lambda: self.clock[0], actors=actors, pace=PACE,
            after_order_id=after_order_id,
        )  # fmt: skip


@pytest.fixture
async def world(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    # A live run that is never started: its stores are simulated only as the test
    # advances them, and no broker is needed.
    live = LiveRun(
        stores=2, seed=11, speed=60.0, duration_s=60.0, broker_url="mqtt://127.0.0.1:9",
        state_dir=tmp_path, config=SimConfig(auto_replenish=False),
    )  # fmt: skip
    async with await connect(migrated_database_url) as conn:
        await seed_demo(conn, [sim.layout for sim in live.sims])
        keys = await issue_demo_keys(conn, replace=True)
        yield World(conn, live, keys, [live.clock.start_ms])


async def order(world: World, store_id: str, cases: int, *, cheapest: bool = False) -> Order:
    layout = world.live.sim(store_id).layout
    cur = await world.conn.execute(
        "SELECT gtin, case_pack FROM skus WHERE gtin = ANY(%s)"
        " ORDER BY case_pack * list_price_minor, gtin",
        ([sku.gtin for sku in layout.skus],),
    )
    rows = await cur.fetchall()
    gtin, pack = rows[0] if cheapest else rows[-1]
    new = NewOrder(
        store_id=store_id,
        lines=[NewOrderLine(gtin=gtin, quantity=cases * pack)],
        reason="test",
    )
    return await create_order(world.conn, new, Actor.system())


async def test_the_dealer_moves_orders_on_the_simulated_clock_into_the_store(
    world: World,
) -> None:
    big = await order(world, "s0001", 2)  # north-drinks approves by hand
    small = await order(world, "s0002", 1, cheapest=True)  # south-wholesale: under 30 EUR
    assert (big.state, small.state) == (OrderState.SUGGESTED, OrderState.APPROVED)
    stock_before = {s.gtin: s.units for s in await dealer_stock(world.conn, "north-drinks")}
    dealer = world.dealer()

    seen = await dealer.step(world.conn)
    assert [(m.order_id, m.previous, m.state, m.actor) for m in seen] == [
        (big.order_id, None, OrderState.SUGGESTED, "system"),
        (small.order_id, None, OrderState.APPROVED, "system"),
    ]
    assert seen[1].note.startswith("auto-approved")
    world.clock[0] += 19 * MINUTE
    assert await dealer.step(world.conn) == [], "approved before 20 simulated minutes"
    world.clock[0] += MINUTE
    moved = await dealer.step(world.conn)
    assert [(m.order_id, m.state, m.actor) for m in moved] == [
        (big.order_id, OrderState.APPROVED, DEMO_DEALER)
    ]

    # Each look makes at most one move per order; an hour-long step moves both on.
    path: dict[int, list[OrderState]] = {big.order_id: [], small.order_id: []}
    for _ in range(12):
        world.clock[0] += 4 * 60 * MINUTE
        for move in await dealer.step(world.conn):
            path[move.order_id].append(move.state)
    assert path[big.order_id] == [OrderState.PICKING, OrderState.SHIPPED, OrderState.DELIVERED]
    assert path[small.order_id] == [
        OrderState.PICKING, OrderState.SHIPPED, OrderState.DELIVERED
    ]  # fmt: skip
    assert dealer.counts == {"delivered": 2}
    assert dealer.deliveries == 2
    assert dealer.units_delivered == sum(line.quantity for o in (big, small) for line in o.lines)

    # The audit trail names the dealer's own key for every move it made.
    north_key = world.keys.dealers["north-drinks"].key_id
    history = await order_history(world.conn, big.order_id)
    assert [(h.to_state, h.actor_kind, h.actor_key_id) for h in history] == [
        (OrderState.SUGGESTED, "system", None),
        (OrderState.APPROVED, "dealer", north_key),
        (OrderState.PICKING, "dealer", north_key),
        (OrderState.SHIPPED, "dealer", north_key),
        (OrderState.DELIVERED, "dealer", north_key),
    ]
    cur = await world.conn.execute(
        "SELECT count(*) FROM order_events WHERE order_id = %s", (big.order_id,)
    )
    assert await cur.fetchone() == (5,)
    # Shipping took the goods out of the warehouse; delivery booked them into the backroom.
    (line,) = big.lines
    stock_after = {s.gtin: s.units for s in await dealer_stock(world.conn, "north-drinks")}
    assert stock_after[line.gtin] == stock_before[line.gtin] - line.quantity
    booked = {s.gtin: s.units for s in await backroom_stock(world.conn, "s0001")}
    assert booked == {line.gtin: line.quantity}

    # The simulated store receives the units with its next tick.
    sim = world.live.sim("s0001")
    sku = [s.gtin for s in sim.layout.skus].index(line.gtin)
    received = int(sim.backroom.ledger.received[sku])
    sim.advance(1)
    assert int(sim.backroom.ledger.received[sku]) == received + line.quantity
    assert sim.deliveries[-1].ref == f"order-{big.order_id}" and sim.deliveries[-1].injected
    assert np.all(sim.backroom.ledger.on_hand >= 0)


async def test_the_dealer_leaves_others_orders_and_reports_their_moves(world: World) -> None:
    earlier = await order(world, "s0001", 1)
    dealer = world.dealer(after_order_id=await latest_order_id(world.conn))
    mine = await order(world, "s0001", 1)
    assert [m.order_id for m in await dealer.step(world.conn)] == [mine.order_id]
    # An operator rejects it through the API before the dealer gets to it.
    assert world.keys.operator is not None
    operator = Actor(kind="operator", key_id=world.keys.operator.key_id)
    await transition_order(
        world.conn, mine.order_id, OrderState.REJECTED, operator, note="not this week"
    )
    world.clock[0] += 60 * MINUTE
    (rejected,) = await dealer.step(world.conn)
    assert (rejected.previous, rejected.state, rejected.actor, rejected.note) == (
        OrderState.SUGGESTED, OrderState.REJECTED, "operator", "not this week"
    )  # fmt: skip
    world.clock[0] += 24 * 60 * MINUTE
    assert await dealer.step(world.conn) == []
    assert dealer.counts == {"rejected": 1} and dealer.deliveries == 0
    # The order from before the dealer started was never touched.
    assert [h.to_state for h in await order_history(world.conn, earlier.order_id)] == [
        OrderState.SUGGESTED
    ]


async def test_the_opening_stock_is_shipped_to_each_stores_dealer_but_one_sku(
    world: World,
) -> None:
    layouts = [sim.layout for sim in world.live.sims]
    start = datetime.fromtimestamp(world.live.clock.start_ms / 1000, tz=UTC)
    seeded = await seed_serial_shipments(
        world.conn, layouts, seed=world.live.seed, shipped_at=start - timedelta(days=1),
        demand=world.live.config.demand,
    )  # fmt: skip
    staged = seeded.diversion
    assert staged is not None and staged == staged_diversion(layouts)
    # What the simulated stores start with, serials [0, n) of each SKU, and nothing else.
    opening = sum(int(sim.backroom.next_serial.sum()) for sim in world.live.sims)
    assert seeded.serials == seeded.new == opening
    cur = await world.conn.execute(
        "SELECT left(serial, 4), gtin, dealer_id, shipment_ref, count(*), max(serial)"
        " FROM serial_shipments GROUP BY 1, 2, 3, 4"
    )
    recorded = {(prefix, gtin): row for prefix, gtin, *row in await cur.fetchall()}
    dealers = {"s0001": "north-drinks", "s0002": "south-wholesale"}
    assert (staged.sold_by, staged.shipped_to) == (
        dealers[staged.store_id], next(d for d in dealers.values() if d != staged.sold_by)
    )  # fmt: skip
    for sim in world.live.sims:
        layout = sim.layout
        for k, sku in enumerate(layout.skus):
            n = int(sim.backroom.next_serial[k])
            diverted = (layout.store_id, sku.gtin) == (staged.store_id, staged.gtin)
            assert recorded[(f"{layout.store_index + 1:04d}", sku.gtin)] == [
                staged.shipped_to if diverted else dealers[layout.store_id],
                f"demo-opening-stock-{layout.store_id}", n, serial_code(layout.store_index, n - 1),
            ]  # fmt: skip

    # The staged store sells the diverted units first (first in, first out).
    sim = world.live.sim(staged.store_id)
    sales = sim.advance(sim.clock.ticks_per_day).sales
    gtins = np.array([sku.gtin for sku in sim.layout.skus])[sales.sku]
    first = serial_code(sim.layout.store_index, int(sales.serial[gtins == staged.gtin][0]))
    shipped = await shipped_serial(world.conn, staged.gtin, first)
    assert shipped is not None and shipped.dealer_id == staged.shipped_to

    # Seeding again adds nothing and keeps the first shipments, whatever it says now.
    cur = await world.conn.execute("SELECT * FROM serial_shipments ORDER BY gtin, serial")
    before = await cur.fetchall()
    again = await seed_serial_shipments(
        world.conn, layouts, seed=world.live.seed, shipped_at=datetime.now(UTC)
    )
    assert (again.serials, again.new, again.diversion) == (seeded.serials, 0, staged)
    cur = await world.conn.execute("SELECT * FROM serial_shipments ORDER BY gtin, serial")
    assert await cur.fetchall() == before


async def test_the_demo_reports_a_diverted_sale_below_the_minimum_price_once(
    world: World,
) -> None:
    # The demo's channel control from a simulated sale to the alerts it shows: the
    # store sells a diverted unit at a till with the staged price fault.
    layouts = [sim.layout for sim in world.live.sims]
    start = datetime.fromtimestamp(world.live.clock.start_ms / 1000, tz=UTC)
    seeded = await seed_serial_shipments(
        world.conn, layouts, seed=world.live.seed, shipped_at=start - timedelta(days=1)
    )
    staged = seeded.diversion
    assert staged is not None
    assert stage_price_fault(world.live, staged)
    sim = world.live.sim(staged.store_id)
    layout = sim.layout
    sales = sim.advance(sim.clock.ticks_per_day).sales
    gtins = [sku.gtin for sku in layout.skus]
    staged_rows = [i for i in range(len(sales)) if gtins[int(sales.sku[i])] == staged.gtin]
    other_rows = [i for i in range(len(sales)) if gtins[int(sales.sku[i])] != staged.gtin]
    assert staged_rows and other_rows
    min_resale = next(s.min_resale_minor for s in layout.skus if s.gtin == staged.gtin)
    # The first unit sold is from the diverted opening stock, below the minimum.
    assert int(sales.price_minor[staged_rows[0]]) < min_resale
    rows = []
    for seq, i in enumerate((staged_rows[0], other_rows[0]), start=1):
        rows.append((
            layout.store_id, layout.tills[int(sales.till[i])], seq,
            datetime.fromtimestamp(int(sales.ts[i]) / 1000, tz=UTC), gtins[int(sales.sku[i])],
            serial_code(layout.store_index, int(sales.serial[i])), int(sales.price_minor[i]),
            f"{layout.store_id}-r{int(sales.receipt[i]):08d}",
        ))  # fmt: skip
    async with world.conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO sales (store_id, device, seq, ts, gtin, serial, qty, unit_price_minor,"
            " currency, receipt_id) VALUES (%s, %s, %s, %s, %s, %s, 1, %s, 'EUR', %s)",
            rows,
        )
    await world.conn.commit()

    channel = DemoChannel(after_alert_id=await latest_alert_id(world.conn))
    fresh = await channel.step(world.conn)
    # One diversion (the cloud holds a copy per dealer; the demo shows it once) and one
    # price alert, both for the staged sale; the ordinary sale raises nothing.
    assert sorted(a.kind for a in fresh) == ["diversion", "price"]
    assert channel.counts == {"diversion": 1, "price": 1}
    for alert in fresh:
        assert (alert.store_id, alert.gtin, alert.serial) == (
            staged.store_id, staged.gtin, rows[0][5]
        )  # fmt: skip
        assert alert.sold_by == staged.sold_by
    diversion = next(a for a in fresh if a.kind == "diversion")
    assert diversion.shipped_to == staged.shipped_to
    price = next(a for a in fresh if a.kind == "price")
    assert price.min_resale_minor == min_resale and price.unit_price_minor < min_resale
    # A second scan finds nothing new.
    assert await channel.step(world.conn) == [] and channel.scans == 2
