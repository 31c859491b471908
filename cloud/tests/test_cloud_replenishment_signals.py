"""The edge's signals in a replenishment run (stock-out risks expedite, fridge alarms
hold chilled goods and say why), and dealers planned apart from each other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.tests.test_cloud_replenishment_world import (
    CHIPS,
    MILK,
    WATER,
    add_daily_sales,
    add_fridge_alarm,
    add_lane_alert,
    add_shelf_units,
    build_world,
    scalar,
    today_utc,
)
from shelflink.cloud.database import Connection
from shelflink.cloud.orders import list_orders
from shelflink.cloud.replenishment import run_planning

DAYS = 28


async def _water_sells_two_a_day(db: Connection, stores: tuple[str, ...], shelf: int) -> None:
    for store in stores:
        await add_daily_sales(db, store, WATER, [2] * DAYS)
        await add_shelf_units(db, store, today_utc(), [shelf, 30, 30])


async def test_a_raised_stockout_risk_expedites_and_a_cleared_one_does_not(
    db: Connection,
) -> None:
    await build_world(db)
    # Eight on the shelf is exactly the order-up-to level at 95 %: no order.
    await _water_sells_two_a_day(db, ("n1", "n2", "s1"), shelf=8)
    before = (await run_planning(db)).as_dict()
    assert before["orders_created"] == 0 and before["by_reason"]["no_need"] == 9

    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await add_lane_alert(db, "n1", "stockout_risk", WATER, "raised", an_hour_ago)
    await add_lane_alert(db, "n2", "stockout_risk", WATER, "raised", an_hour_ago)
    await add_lane_alert(
        db, "n2", "stockout_risk", WATER, "cleared", an_hour_ago + timedelta(minutes=5)
    )
    # A lane that ran empty: the edge cleared the risk because it came true.
    await add_lane_alert(db, "s1", "out_of_stock", WATER, "raised", an_hour_ago)

    after = (await run_planning(db)).as_dict()
    assert after["orders_created"] == 2 and after["expedited_orders"] == 2
    assert after["by_reason"]["expedite"] == 2
    orders = await list_orders(db)
    # At 99 %: S = ceil(4 + 2.326 * 2) = 9, one unit short: one case.
    assert {(o.store_id, o.expedite, x.gtin, x.quantity) for o in orders for x in o.lines} == {
        ("n1", True, WATER, 6),
        ("s1", True, WATER, 6),
    }
    assert all(o.reason.startswith("expedite: 1 lines") for o in orders)


async def test_a_fridge_alarm_holds_chilled_goods_and_tells_the_dealer_once(
    db: Connection,
) -> None:
    await build_world(db)
    await add_daily_sales(db, "n1", WATER, [2] * DAYS)
    await add_daily_sales(db, "n1", MILK, [1] * DAYS)
    await add_shelf_units(db, "n1", today_utc(), [3, 2, 30])
    raised_at = datetime.now(UTC) - timedelta(hours=2)
    await add_fridge_alarm(db, "n1", "raised", raised_at)

    result = (await run_planning(db, dealer_ids=["north"])).as_dict()
    assert result["held_stores"] == 1
    assert result["by_reason"]["held_cold_chain_alarm"] == 1  # n1's milk; n2 has no alarm
    (order,) = await list_orders(db, dealer_id="north")
    assert [(x.gtin, x.quantity) for x in order.lines] == [(WATER, 6)]
    assert "held 1 cold-chain SKUs: cold-chain alarm temperature_high on fridge-n1" in order.reason

    cur = await db.execute(
        "SELECT dealer_id, store_id, kind, evidence FROM alerts WHERE kind = 'replenishment_hold'"
    )
    ((dealer, store, kind, evidence),) = await cur.fetchall()
    assert (dealer, store, kind) == ("north", "n1", "replenishment_hold")
    assert evidence["gtins"] == [MILK] and evidence["reason"] == "held_cold_chain_alarm"
    assert evidence["alarms"] == [
        {"device": "fridge-n1", "alarm": "temperature_high", "since": raised_at.isoformat()}
    ]

    # While the alarm stands, later runs hold again but announce nothing new.
    await run_planning(db, dealer_ids=["north"])
    assert await scalar(db, "SELECT count(*) FROM alerts") == 1
    assert await scalar(db, "SELECT count(*) FROM orders") == 1

    await add_fridge_alarm(db, "n1", "cleared", raised_at + timedelta(hours=1))
    await run_planning(db, dealer_ids=["north"])
    newest = (await list_orders(db, dealer_id="north"))[0]
    assert [(x.gtin, x.quantity) for x in newest.lines] == [(MILK, 6)]


async def test_a_dealers_stock_serves_only_its_own_stores(db: Connection) -> None:
    # North holds one case of water for two stores that each want two; south is full.
    await build_world(db, warehouse={WATER: 6})
    await _water_sells_two_a_day(db, ("n1", "n2", "s1"), shelf=0)

    result = (await run_planning(db)).as_dict()
    orders = await list_orders(db)
    assert all(o.dealer_id == {"n1": "north", "n2": "north", "s1": "south"}[o.store_id]
               for o in orders)  # fmt: skip
    by_store = {o.store_id: sum(x.quantity for x in o.lines) for o in orders}
    assert sum(v for k, v in by_store.items() if k != "s1") == 6  # all north has
    assert by_store["s1"] == 12  # south's own stock, untouched by north's shortage
    assert result["by_reason"]["allocated_short"] == 2

    # North's case is spoken for by its open order: a second run ships nothing more.
    again = (await run_planning(db)).as_dict()
    assert again["orders_created"] == 0


async def test_stock_below_the_minimum_order_is_not_allocated(db: Connection) -> None:
    # Chips ship in cases of 12, at least 24 a line; north has one case left.
    await build_world(db, warehouse={CHIPS: 12})
    await add_daily_sales(db, "n1", CHIPS, [5] * DAYS)
    await add_daily_sales(db, "n1", WATER, [2] * DAYS)
    await add_shelf_units(db, "n1", today_utc(), [0, 30, 0])

    result = (await run_planning(db, dealer_ids=["north"])).as_dict()
    # Fair share gives nothing rather than a line no order may carry.
    assert result["by_reason"]["allocated_short"] == 1
    assert "dropped_below_minimum" not in result["by_reason"]
    (order,) = await list_orders(db, dealer_id="north")
    assert [x.gtin for x in order.lines] == [WATER]
