"""A store's ground truth: units are conserved, sales follow removals, restocks show."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.sim import (
    DEFAULT_START,
    PROFILES,
    SimClock,
    SimConfig,
    StoreSim,
    StoreStep,
    build_catalog,
    build_layout,
)
from shelflink.sim.clock import MS_PER_DAY

CLOCK = SimClock.starting(DEFAULT_START)
DAY = CLOCK.ticks_per_day


def make_store(
    seed: int = 1,
    profile: str = "convenience",
    index: int = 0,
    config: SimConfig | None = None,
    **changes: Any,
) -> StoreSim:
    chosen = dataclasses.replace(PROFILES[profile], **changes)
    layout = build_layout(seed, index, chosen, build_catalog(seed))
    return StoreSim(layout, seed=seed, clock=CLOCK, config=config)


def assert_same_steps(a: StoreStep, b: StoreStep) -> None:
    for field in dataclasses.fields(StoreStep):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), field.name
        elif isinstance(x, int):
            assert x == y, field.name
        else:
            for column in dataclasses.fields(x):
                assert np.array_equal(getattr(x, column.name), getattr(y, column.name)), (
                    f"{field.name}.{column.name}"
                )


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    profile=st.sampled_from(sorted(PROFILES)),
    shrink=st.floats(0.0, 0.3),
    fill_rate=st.floats(0.3, 1.0),
    auto_replenish=st.booleans(),
    chunks=st.lists(st.integers(1, 2 * DAY), min_size=1, max_size=4),
)
def test_units_are_conserved_per_lane_and_in_the_backroom(
    seed: int,
    profile: str,
    shrink: float,
    fill_rate: float,
    auto_replenish: bool,
    chunks: list[int],
) -> None:
    store = make_store(
        seed,
        profile,
        config=SimConfig(auto_replenish=auto_replenish),
        shrink_rate=shrink,
        dealer_fill_rate=fill_rate,
    )
    capacity = store.layout.capacity
    restocked = np.zeros(store.layout.lanes, dtype=np.int64)
    scanned = 0
    for ticks in chunks:
        step = store.advance(ticks)
        ledger = store.ledger
        assert ledger.balanced(), ledger.imbalance()
        assert store.backroom.ledger.balanced()
        assert (step.units >= 0).all() and (step.units <= capacity).all()
        assert (step.units[-1] == ledger.on_shelf).all()
        assert (store.backroom.on_hand >= 0).all()
        np.add.at(restocked, step.restocks.lane, step.restocks.units)
        scanned += len(step.sales)
        # Every unit that left a lane carried a serial this store received.
        assert (store.backroom.next_departure <= store.backroom.next_serial).all()
    assert (restocked == store.ledger.restocked).all()
    # Sold counts units when taken; their scans follow within minutes.
    assert scanned + len(store.till) == int(store.ledger.sold.sum())
    assert (store.ledger.lost >= 0).all()


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    chunks=st.lists(st.integers(1, DAY + 7), min_size=1, max_size=12),
)
def test_results_do_not_depend_on_how_time_is_stepped(seed: int, chunks: list[int]) -> None:
    total = sum(chunks)
    whole = make_store(seed, "kiosk").advance(total)
    stepped = make_store(seed, "kiosk")
    assert_same_steps(whole, StoreStep.concat([stepped.advance(n) for n in chunks]))


def test_same_seed_same_store_different_seed_different_store() -> None:
    assert_same_steps(make_store(4).advance(DAY), make_store(4).advance(DAY))
    a, b = make_store(4).advance(DAY), make_store(5).advance(DAY)
    assert not np.array_equal(a.units, b.units)


def test_demand_is_lost_only_at_lanes_that_ran_empty() -> None:
    store = make_store(2, shelf_days=0.4)  # short lanes: stock-outs every day
    lost_before = store.ledger.lost.copy()
    for _ in range(3):
        step = store.advance(DAY)
        lost_now = store.ledger.lost - lost_before
        lost_before = store.ledger.lost.copy()
        emptied = (step.units == 0).any(axis=0)
        assert lost_now.sum() > 0
        assert (emptied[lost_now > 0]).all()


def test_a_restock_shows_as_a_jump_in_grams() -> None:
    store = make_store(3)
    step = store.advance(2 * DAY)
    unit_g = store.layout.unit_g
    checked = 0
    for ts, lane, added in zip(
        step.restocks.ts.tolist(),
        step.restocks.lane.tolist(),
        step.restocks.units.tolist(),
        strict=True,
    ):
        t = int(np.searchsorted(step.ts, ts))
        if t == 0 or step.units[t, lane] - step.units[t - 1, lane] != added:
            continue  # customers also took from the lane in that minute
        jump = step.grams[t, lane] - step.grams[t - 1, lane]
        if np.isnan(jump):
            continue  # one of the two readings dropped out
        # Noise is 1.5 g per reading; temperature drift over a minute is far less.
        assert abs(jump - added * unit_g[lane]) < 15.0
        checked += 1
    assert checked >= 10


def test_every_sale_follows_a_removal_seen_in_the_readings() -> None:
    store = make_store(6)
    step = store.advance(DAY)
    sales = step.sales
    assert len(sales) > 100
    unit_g = store.layout.unit_g
    restocked_at = {
        (int(t), int(lane)) for t, lane in zip(step.restocks.ts, step.restocks.lane, strict=True)
    }
    gtin_of_lane = [store.layout.skus[int(k)].gtin for k in store.layout.lane_sku]
    for i in range(len(sales)):
        lane, picked = int(sales.lane[i]), int(sales.pick_ts[i])
        assert sales.ts[i] >= picked + 60_000, "scanned at least a minute after picking"
        assert store.layout.skus[int(sales.sku[i])].gtin == gtin_of_lane[lane]
        t = int(np.searchsorted(step.ts, picked))
        if t == 0 or (picked, lane) in restocked_at:
            continue
        assert step.units[t, lane] < step.units[t - 1, lane]
        drop = step.grams[t - 1, lane] - step.grams[t, lane]
        if not np.isnan(drop):
            assert drop > 0.5 * unit_g[lane]
    # Receipts add up, and every unit is scanned with its own serial.
    totals = Counter[int]()
    for receipt, price in zip(sales.receipt.tolist(), sales.price_minor.tolist(), strict=True):
        totals[receipt] += price
    complete = step.receipts.take(np.isin(step.receipts.receipt, sales.receipt))
    for receipt, total in zip(
        complete.receipt.tolist(), complete.total_minor.tolist(), strict=True
    ):
        assert totals[receipt] == total
    pairs = list(zip(sales.sku.tolist(), sales.serial.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)


def test_promotions_never_sell_below_the_minimum_resale_price() -> None:
    store = make_store(8, "supermarket", promotions_per_day=6.0)
    step = store.advance(2 * DAY)
    minimum = np.array([s.min_resale_minor for s in store.layout.skus])
    listed = np.array([s.price_minor for s in store.layout.skus])
    assert (step.sales.price_minor >= minimum[step.sales.sku]).all()
    assert (step.sales.price_minor < listed[step.sales.sku]).any(), "some sales are on promotion"


def test_an_injected_delivery_is_scanned_in_then_goes_to_the_lanes() -> None:
    store = make_store(9, config=SimConfig(auto_replenish=False))
    store.advance(60)  # 01:00
    lane = int(np.argmax(store.layout.popularity))
    sku = int(store.layout.lane_sku[lane])
    gtin = store.layout.skus[sku].gtin
    before = int(store.backroom.on_hand[sku])
    delivery = store.inject_delivery({gtin: 24}, CLOCK.start_ms + 90 * 60_000, ref="order-7")
    step = store.advance(90)  # to 02:30, before the first staff round
    assert int(store.backroom.on_hand[sku]) == before + 24
    goods = step.goods
    assert len(goods) == 24 and set(goods.sku.tolist()) == {sku}
    assert store.deliveries[int(goods.delivery[0])] is delivery
    assert (goods.ts > CLOCK.start_ms + 89 * 60_000).all() and (
        goods.ts <= CLOCK.start_ms + 90 * 60_000
    ).all()
    assert len(set(goods.serial.tolist())) == 24
    store.advance(DAY - 150)  # through the morning and afternoon rounds
    assert store.backroom.ledger.issued[sku] > 0
    try:
        store.inject_delivery({"4006381333931": 1}, CLOCK.start_ms + MS_PER_DAY)
    except ValueError as error:
        assert "does not stock" in str(error)
    else:
        raise AssertionError("a GTIN the store does not stock must be refused")
