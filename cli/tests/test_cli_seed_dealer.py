"""The demo dealer on a real database and real simulated stores: it works orders through
the workflow on the simulated clock, as its own dealer, and delivers into the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from shelflink.cli.demo_dealer import DEMO_DEALER, DealerPace, DemoDealer, latest_order_id
from shelflink.cli.demo_seed import DemoKeys, issue_demo_keys, seed_demo
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.master_data import dealer_stock
from shelflink.cloud.orders import backroom_stock, create_order, order_history, transition_order
from shelflink.cloud.orders_models import Actor, NewOrder, NewOrderLine, Order
from shelflink.cloud.orders_workflow import OrderState
from shelflink.sim import SimConfig
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
