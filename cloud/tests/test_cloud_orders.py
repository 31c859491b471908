"""Orders in the database: creation and its checks, auto-approval, stale versions,
delivery into the backroom, keyset lists and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.tests.test_cloud_api_harness import (
    GTIN_MILK,
    GTIN_WATER,
    build_world,
    count,
    new_order,
    water_order,
)
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import dealer_stock, set_dealer_stock, upsert_dealer
from shelflink.cloud.master_data_models import DealerChanges, StockLevel
from shelflink.cloud.orders import (
    InvalidOrder,
    OrderNotFound,
    StaleOrder,
    backroom_stock,
    create_order,
    list_orders,
    order_history,
    transition_order,
)
from shelflink.cloud.orders_models import Actor, NewOrder, NewOrderLine
from shelflink.cloud.orders_workflow import OrderState

OPERATOR = Actor(kind="operator", key_id="ops")


async def test_a_new_order_is_suggested_priced_audited_and_announced(db: Connection) -> None:
    await build_world(db)
    new = NewOrder(
        store_id="s0001",
        lines=[
            NewOrderLine(gtin=GTIN_WATER, quantity=24),
            NewOrderLine(gtin=GTIN_MILK, quantity=6, unit_price_minor=80),
        ],
        reason="below_reorder_point",
        expedite=True,
    )
    order = await create_order(db, new, OPERATOR)
    assert (order.state, order.dealer_id, order.version, order.expedite) == (
        OrderState.SUGGESTED, "north", 1, True,
    )  # fmt: skip
    assert order.value_minor == 24 * 40 + 6 * 80
    assert [(x.gtin, x.quantity, x.unit_price_minor) for x in order.lines] == [
        (GTIN_WATER, 24, 40),
        (GTIN_MILK, 6, 80),
    ]
    history = await order_history(db, order.order_id)
    assert [(h.from_state, h.to_state, h.actor_kind) for h in history] == [
        (None, OrderState.SUGGESTED, "operator")
    ]
    cur = await db.execute("SELECT type, dealer_id FROM order_events")
    assert await cur.fetchall() == [("order.created", "north")]


@pytest.mark.parametrize(
    ("threshold", "cases", "state"),
    [(0, 1, "suggested"), (1000, 2, "approved"), (960, 2, "suggested"), (961, 2, "approved")],
)
async def test_auto_approval_under_the_dealers_threshold(
    db: Connection, threshold: int, cases: int, state: str
) -> None:
    await build_world(db, auto_approve_below_minor=threshold)
    order = await new_order(db, cases=cases)  # 2 cases: 24 × 40 = 960
    assert order.state == state
    history = await order_history(db, order.order_id)
    if state == "approved":
        assert [(h.to_state, h.actor_kind) for h in history] == [
            ("suggested", "system"),
            ("approved", "system"),
        ]
        assert "below the threshold" in history[-1].note
        assert await count(db, "SELECT count(*) FROM order_events") == 2
    else:
        assert len(history) == 1


async def test_no_auto_approval_in_another_currency(db: Connection) -> None:
    await build_world(db)
    await upsert_dealer(
        db,
        "north",
        DealerChanges(
            name="North", territory=["N1"], currency="USD", auto_approve_below_minor=10**9
        ),
    )
    assert (await new_order(db)).state == OrderState.SUGGESTED


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (water_order("s9999"), "no store s9999"),
        (NewOrder(store_id="s0001", lines=[NewOrderLine(gtin="4000000000009", quantity=12)],
                  reason="x"), "no SKU"),
        (NewOrder(store_id="s0001", lines=[NewOrderLine(gtin=GTIN_WATER, quantity=13)],
                  reason="x"), "not whole cases"),
        (NewOrder(store_id="s0001", lines=[NewOrderLine(gtin=GTIN_MILK, quantity=3)],
                  reason="x"), "not whole cases"),
        (NewOrder(store_id="s0001", lines=[NewOrderLine(gtin=GTIN_WATER, quantity=12),
                                           NewOrderLine(gtin=GTIN_WATER, quantity=24)],
                  reason="x"), "two lines"),
    ],
)  # fmt: skip
async def test_orders_the_master_data_does_not_allow(
    db: Connection, new: NewOrder, message: str
) -> None:
    await build_world(db)
    with pytest.raises(InvalidOrder, match=message):
        await create_order(db, new, OPERATOR)
    assert await count(db, "SELECT count(*) FROM orders") == 0
    assert await count(db, "SELECT count(*) FROM order_events") == 0


async def test_a_stale_version_is_refused_and_nothing_changes(db: Connection) -> None:
    await build_world(db)
    order = await new_order(db)
    await transition_order(db, order.order_id, OrderState.APPROVED, OPERATOR)
    with pytest.raises(StaleOrder) as refused:
        await transition_order(
            db, order.order_id, OrderState.CANCELLED, OPERATOR, expected_version=order.version
        )
    assert refused.value.current == order.version + 1
    assert len(await order_history(db, order.order_id)) == 2


async def test_another_dealers_order_is_not_found(db: Connection) -> None:
    await build_world(db)
    order = await new_order(db)
    with pytest.raises(OrderNotFound):
        await transition_order(db, order.order_id, OrderState.APPROVED, OPERATOR, dealer_id="south")
    with pytest.raises(OrderNotFound):
        await order_history(db, order.order_id, dealer_id="south")


async def test_delivery_books_the_lines_into_the_backroom(db: Connection) -> None:
    await build_world(db)
    first = await new_order(db, cases=2)
    second = await new_order(db, cases=1)
    for order in (first, second):
        for step in ("approved", "picking", "shipped"):
            await transition_order(db, order.order_id, OrderState(step), OPERATOR)
    assert await backroom_stock(db, "s0001") == []  # shipped is not delivered
    await transition_order(db, first.order_id, OrderState.DELIVERED, OPERATOR)
    await transition_order(db, second.order_id, OrderState.DELIVERED, OPERATOR)
    levels = await backroom_stock(db, "s0001")
    assert [(x.gtin, x.units) for x in levels] == [(GTIN_WATER, 36)]
    cur = await db.execute(
        "SELECT order_id, store_id, gtin, units FROM backroom_receipts ORDER BY receipt_id"
    )
    assert await cur.fetchall() == [
        (first.order_id, "s0001", GTIN_WATER, 24),
        (second.order_id, "s0001", GTIN_WATER, 12),
    ]
    # The scanner's table stays the devices' own.
    assert await count(db, "SELECT count(*) FROM goods_receipts") == 0


async def test_shipping_takes_the_lines_out_of_the_reported_warehouse_stock(
    db: Connection,
) -> None:
    await build_world(db)
    await set_dealer_stock(db, "north", [StockLevel(gtin=GTIN_WATER, units=30)])
    first = await new_order(db, cases=2)  # 24 units
    second = await new_order(db, cases=1)  # 12 units: more than what is left
    for step in ("approved", "picking"):
        await transition_order(db, first.order_id, OrderState(step), OPERATOR)
    # Picking is still in the warehouse: the planner counts it as promised instead.
    assert await dealer_stock(db, "north") == [StockLevel(gtin=GTIN_WATER, units=30)]
    await transition_order(db, first.order_id, OrderState.SHIPPED, OPERATOR)
    assert await dealer_stock(db, "north") == [StockLevel(gtin=GTIN_WATER, units=6)]
    for step in ("approved", "picking", "shipped"):
        await transition_order(db, second.order_id, OrderState(step), OPERATOR)
    # Shipped from stock not reported yet: never below zero.
    assert await dealer_stock(db, "north") == [StockLevel(gtin=GTIN_WATER, units=0)]
    # A SKU the dealer does not report stays unreported (not limited), and
    # another dealer's stock is not touched.
    await set_dealer_stock(db, "south", [StockLevel(gtin=GTIN_WATER, units=50)])
    milk = await create_order(
        db,
        NewOrder(store_id="s0001", lines=[NewOrderLine(gtin=GTIN_MILK, quantity=6)],
                 reason="below_reorder_point"),
        Actor.system(),
    )  # fmt: skip
    for step in ("approved", "picking", "shipped"):
        await transition_order(db, milk.order_id, OrderState(step), OPERATOR)
    assert await dealer_stock(db, "north") == [StockLevel(gtin=GTIN_WATER, units=0)]
    assert await dealer_stock(db, "south") == [StockLevel(gtin=GTIN_WATER, units=50)]


async def test_a_delivery_is_booked_at_the_time_it_arrived(db: Connection) -> None:
    # A delivery recorded after the fact (or on a simulated clock) keeps its own
    # time: the planner orders receipts and restocks by it.
    await build_world(db)
    order = await new_order(db)
    for step in ("approved", "picking", "shipped"):
        await transition_order(db, order.order_id, OrderState(step), OPERATOR)
    arrived = datetime(2024, 1, 1, 9, 30, tzinfo=UTC)
    await transition_order(db, order.order_id, OrderState.DELIVERED, OPERATOR, received_at=arrived)
    cur = await db.execute("SELECT received_at FROM backroom_receipts")
    assert await cur.fetchall() == [(arrived,)]


async def test_keyset_lists_newest_first_with_filters(db: Connection) -> None:
    await build_world(db)
    north = [await new_order(db) for _ in range(5)]
    south = [await new_order(db, "s0002") for _ in range(2)]
    await transition_order(db, north[1].order_id, OrderState.APPROVED, OPERATOR)

    everyone = await list_orders(db, limit=100)
    assert [o.order_id for o in everyone] == sorted(
        (o.order_id for o in north + south), reverse=True
    )
    pages: list[int] = []
    before = None
    while True:
        page = await list_orders(db, dealer_id="north", before=before, limit=2)
        if not page:
            break
        pages += [o.order_id for o in page]
        before = page[-1].order_id
    assert pages == [o.order_id for o in reversed(north)]
    approved = await list_orders(db, dealer_id="north", state=OrderState.APPROVED)
    assert [o.order_id for o in approved] == [north[1].order_id]
    assert await list_orders(db, dealer_id="north", store_id="s0002") == []
    assert [o.order_id for o in await list_orders(db, store_id="s0002")] == [
        south[1].order_id,
        south[0].order_id,
    ]
