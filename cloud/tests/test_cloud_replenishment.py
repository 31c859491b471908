"""The replenishment run against a real database: inputs read from the ingest and
dealer tables, orders that match the planning core, and the run's idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from cloud.tests.test_cloud_replenishment_world import (
    CHIPS,
    MILK,
    WATER,
    add_daily_sales,
    add_shelf_units,
    build_world,
    scalar,
    today_utc,
)
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import upsert_dealer
from shelflink.cloud.master_data_models import DealerChanges
from shelflink.cloud.orders import create_order, list_orders, transition_order
from shelflink.cloud.orders_models import Actor, NewOrder, NewOrderLine
from shelflink.cloud.orders_workflow import OrderState
from shelflink.cloud.planning import PairInputs, SkuInputs, StoreInputs, plan
from shelflink.cloud.replenishment import PlanningOptions, run_planning
from shelflink.cloud.replenishment_inputs import UNREPORTED_STOCK_UNITS, load_dealer_inputs

DAYS = 28


def _n2_water_readings() -> list[int]:
    """Noon counts of n2's water lane: one unit a day, a restock on day 12."""
    return [14 - d if d <= 11 else 20 - (d - 12) for d in range(DAYS)]


async def _arrange_small_dealer(db: Connection) -> None:
    """n1 scans its sales; n2 has no scanner, so its demand is its shelf's depletion."""
    await build_world(db)
    await add_daily_sales(db, "n1", WATER, [2] * DAYS)
    await add_daily_sales(db, "n1", MILK, [1] * DAYS)
    today = today_utc()
    await add_shelf_units(db, "n1", today, [3, 2, 30])
    start = today - timedelta(days=DAYS)
    for day, water in enumerate(_n2_water_readings()):
        await add_shelf_units(db, "n2", start + timedelta(days=day, hours=12), [water, 10, 30])
    await add_shelf_units(db, "n2", today, [2, 10, 30])
    # A delivery of 18 on day 10; the restock on day 12 took 17 of it to the shelf.
    await db.execute(
        "INSERT INTO backroom_receipts (store_id, gtin, units, received_at)"
        " VALUES (%s, %s, %s, %s)",
        ("n2", WATER, 18, start + timedelta(days=10, hours=9)),
    )


def _expected_small_dealer_plan() -> tuple[list[tuple[str, str]], np.ndarray]:
    """The same dealer as hand-made arrays, planned by the core: (pairs, quantities)."""
    start = today_utc() - timedelta(days=DAYS)
    # Stores n1, n2; SKUs in GTIN order: water, chips, milk; pairs by store then GTIN.
    pairs = [(s, g) for s in ("n1", "n2") for g in (WATER, CHIPS, MILK)]
    n2_water = [0.0] + [1.0] * 11 + [0.0] + [1.0] * 15
    history = np.array(
        [[2.0] * DAYS, [0.0] * DAYS, [1.0] * DAYS, n2_water, [0.0] * DAYS, [0.0] * DAYS]
    )
    result = plan(
        StoreInputs(
            lead_time_days=np.array([1, 1]),
            review_days=np.array([1, 1]),
            order_today=np.array([True, True]),
        ),
        SkuInputs(
            case_pack=np.array([6, 12, 6]),
            min_order_units=np.array([6, 24, 6]),
            cold_chain=np.array([False, False, True]),
            service_level=np.array([0.95, 0.95, 0.95]),
            warehouse_units=np.full(3, UNREPORTED_STOCK_UNITS),
        ),
        PairInputs(
            store=np.array([0, 0, 0, 1, 1, 1]),
            sku=np.array([0, 1, 2, 0, 1, 2]),
            history=history,
            on_shelf=np.array([3, 30, 2, 2, 30, 10]),
            backroom=np.array([0, 0, 0, 1, 0, 0]),
            in_transit=np.zeros(6, dtype=np.int64),
            stockout_risk=np.zeros(6, dtype=np.bool_),
            fridge_alarm=np.zeros(6, dtype=np.bool_),
        ),
        (start.weekday() + np.arange(DAYS)) % 7,
        horizon_start_weekday=today_utc().weekday(),
    )
    return pairs, result.quantity


async def test_inputs_are_read_from_sales_shelves_receipts_and_orders(db: Connection) -> None:
    await _arrange_small_dealer(db)
    async with db.transaction():
        inputs = await load_dealer_inputs(
            db, "north", now=datetime.now(UTC), history_days=DAYS,
            rejected_cooldown=timedelta(hours=24), service_level=0.95,
        )  # fmt: skip
    assert inputs.store_ids == ["n1", "n2"]
    assert inputs.gtins == [WATER, CHIPS, MILK]
    p = inputs.pairs
    assert list(zip(p.store.tolist(), p.sku.tolist(), strict=True)) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2),
    ]  # fmt: skip
    assert p.on_shelf.tolist() == [3, 30, 2, 2, 30, 10]
    assert p.backroom.tolist() == [0, 0, 0, 1, 0, 0]
    assert p.history[0].tolist() == [2.0] * DAYS  # scanner sales
    assert p.history[3].tolist() == [0.0] + [1.0] * 11 + [0.0] + [1.0] * 15  # depletion
    assert p.history[[1, 2, 4, 5]].sum() == DAYS  # n1's milk only
    assert inputs.stores.review_days.tolist() == [1, 1]
    assert inputs.stores.order_today.all()
    assert inputs.skus.warehouse_units.tolist() == [UNREPORTED_STOCK_UNITS] * 3
    assert inputs.lanes_unknown == 0


async def test_suggested_orders_match_the_planning_core(db: Connection) -> None:
    await _arrange_small_dealer(db)
    summary = await run_planning(db, dealer_ids=["north"])

    pairs, quantity = _expected_small_dealer_plan()
    expected = {pair: int(q) for pair, q in zip(pairs, quantity, strict=True) if q > 0}
    orders = await list_orders(db, dealer_id="north")
    ordered = {(o.store_id, line.gtin): line.quantity for o in orders for line in o.lines}
    assert ordered == expected
    # Worked by hand for n1's water: 2 a day, lead 1 + review 1 day: E = 4,
    # sigma = sqrt(2) a day (the Poisson floor), S = ceil(4 + 1.645 * 2) = 8;
    # 3 on the shelf, so 5 more: one case of 6. Milk: S = ceil(2 + 1.645 * sqrt 2) = 5.
    assert ordered[("n1", WATER)] == 6 and ordered[("n1", MILK)] == 6
    assert all(o.state == OrderState.SUGGESTED and o.reason.startswith("ok:") for o in orders)

    result = summary.as_dict()
    assert (result["dealers"], result["pairs"], result["orders_created"]) == (1, 6, len(orders))
    assert sum(result["by_reason"].values()) == 6
    assert result["by_reason"]["ok"] == len(expected)
    runs = await scalar(db, "SELECT count(*) FROM planning_runs WHERE dealer_id = 'north'")
    assert runs == 1


async def test_a_second_run_does_not_order_again(db: Connection) -> None:
    await _arrange_small_dealer(db)
    # Auto-approved: the first run's orders are approved, then in the position.
    await upsert_dealer(
        db, "north",
        DealerChanges(name="North Drinks", territory=["N"], auto_approve_below_minor=10_000),
    )  # fmt: skip
    first = await run_planning(db)
    assert first.as_dict()["orders_created"] >= 1
    states = {o.state for o in await list_orders(db)}
    assert states == {OrderState.APPROVED}

    second = await run_planning(db)
    assert second.as_dict()["orders_created"] == 0
    assert await scalar(db, "SELECT count(*) FROM orders") == first.as_dict()["orders_created"]
    assert await scalar(db, "SELECT count(*) FROM planning_runs") == 2 * 2  # two dealers, twice


async def test_suggestions_waiting_for_the_dealer_count_as_on_order(db: Connection) -> None:
    await _arrange_small_dealer(db)
    first = (await run_planning(db, dealer_ids=["north"])).as_dict()
    second = (await run_planning(db, dealer_ids=["north"])).as_dict()
    assert first["orders_created"] >= 1 and second["orders_created"] == 0


async def test_orders_on_the_way_reduce_the_next_order(db: Connection) -> None:
    await build_world(db)
    for store in ("n1", "n2"):
        await add_daily_sales(db, store, WATER, [2] * DAYS)
        await add_shelf_units(db, store, today_utc(), [0, 30, 30])
    # n1 has a case of water approved and on its way; n2 has nothing coming.
    on_the_way = await create_order(
        db,
        NewOrder(store_id="n1", lines=[NewOrderLine(gtin=WATER, quantity=6)], reason="manual"),
        Actor(kind="operator"),
    )
    await transition_order(db, on_the_way.order_id, OrderState.APPROVED, Actor(kind="dealer"))

    await run_planning(db, dealer_ids=["north"])
    planned = [o for o in await list_orders(db, dealer_id="north") if o.reason != "manual"]
    # S = 8 on an empty shelf: n2 needs 8, two cases; n1 has 6 coming, one case.
    assert {(o.store_id, x.gtin, x.quantity) for o in planned for x in o.lines} == {
        ("n1", WATER, 6),
        ("n2", WATER, 12),
    }


async def test_a_rejected_suggestion_is_not_suggested_again_at_once(db: Connection) -> None:
    await build_world(db)
    await add_daily_sales(db, "n1", WATER, [2] * DAYS)
    await add_shelf_units(db, "n1", today_utc(), [0, 30, 30])
    await run_planning(db, dealer_ids=["north"])
    (order,) = await list_orders(db, dealer_id="north")
    await transition_order(db, order.order_id, OrderState.REJECTED, Actor(kind="dealer"))

    again = (await run_planning(db, dealer_ids=["north"])).as_dict()
    assert again["orders_created"] == 0
    assert again["by_reason"]["rejected_recently"] == 1
    # After the cooldown it is planned as usual.
    later = PlanningOptions(rejected_cooldown=timedelta(0))
    after = (await run_planning(db, dealer_ids=["north"], options=later)).as_dict()
    assert after["orders_created"] == 1


async def test_a_blind_lane_counts_what_the_gateway_holds_and_a_null_lane_is_unknown(
    db: Connection,
) -> None:
    await build_world(db)
    today = today_utc()
    await add_shelf_units(db, "n1", today - timedelta(hours=3), [10, 4, 7])
    # The water cell went blind: the gateway holds its last count (10). The
    # chips lane gave no count at all: unknown, not zero by accident.
    await add_shelf_units(db, "n1", today, [10, 3, None], blind=[True, False, False])
    async with db.transaction():
        inputs = await load_dealer_inputs(
            db, "north", now=datetime.now(UTC), history_days=DAYS,
            rejected_cooldown=timedelta(hours=24), service_level=0.95,
        )  # fmt: skip
    # n1: water, chips, milk (GTIN order).
    assert inputs.pairs.on_shelf[:3].tolist() == [10, 0, 3]
    assert inputs.lanes_unknown == 1 + 3  # n1's chips, and n2's lanes never reported


async def test_a_sku_without_a_stock_report_is_not_limited_but_a_reported_zero_is(
    db: Connection,
) -> None:
    await build_world(db, warehouse={WATER: 0})
    for store in ("n1", "n2"):
        await add_daily_sales(db, store, WATER, [2] * DAYS)
        await add_daily_sales(db, store, CHIPS, [5] * DAYS)
        await add_shelf_units(db, store, today_utc(), [0, 30, 0])
    result = (await run_planning(db, dealer_ids=["north"])).as_dict()
    orders = await list_orders(db, dealer_id="north")
    assert {line.gtin for o in orders for line in o.lines} == {CHIPS}
    assert result["by_reason"]["allocated_short"] == 2  # water, reported 0 in stock
