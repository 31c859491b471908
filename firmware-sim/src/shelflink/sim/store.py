"""One store, advanced tick by tick or day by day: the simulator's functional core.

Order of events within a tick: deliveries due by then are booked into the
backroom, a staff round (if one falls in the tick) refills lanes, the standing
order (if due) is placed, customers pick in arrival order, and then every
device reads. Customers are drawn a simulated day at a time (see
:mod:`shelflink.sim.demand`); between two stock movements that depend on state
(restocks, orders, arrivals) their picks are settled with array arithmetic
(see :mod:`shelflink.sim.stock`). The results are identical however the run is
chunked: ``advance(1440)`` equals 1440 calls of ``advance(1)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from shelflink.device.topics import is_valid_id
from shelflink.sim.backroom import Backroom, Delivery, arrival_ms, standing_order
from shelflink.sim.clock import MS_PER_DAY, SimClock, crosses_hour
from shelflink.sim.config import SimConfig
from shelflink.sim.day import DayDraws, draw_day
from shelflink.sim.demand import (
    DemandParams,
    Promotion,
    draw_promotions,
    expected_units_per_day,
)
from shelflink.sim.faults import FaultSchedule, price_below_minimum
from shelflink.sim.ground_truth import LaneLedger, StockoutTracker
from shelflink.sim.layout import StoreLayout
from shelflink.sim.readout import Devices
from shelflink.sim.seeds import Stream, store_rng
from shelflink.sim.step import GoodsBatch, RestockBatch, StoreStep
from shelflink.sim.stock import allocate, group_exclusive_cumsum, restock_gaps
from shelflink.sim.till import ReceiptBatch, SaleBatch, TillQueue, ring_up

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


def _bincount(index: I64, weights: I64, length: int) -> I64:
    return np.bincount(index, weights=weights, minlength=length).astype(np.int64)


def opening_stock(layout: StoreLayout, seed: int, demand: DemandParams) -> tuple[I64, I64]:
    """What the store holds when its simulation begins: units on each lane, and units
    of each store SKU in the backroom (whole cases, a few days of expected demand)."""
    n_skus = len(layout.skus)
    opening = store_rng(seed, layout.store_index, Stream.SUPPLY, 0)
    units = np.maximum(1, np.round(layout.capacity * opening.uniform(0.6, 1.0, layout.lanes)))
    sku_demand = np.bincount(
        layout.lane_sku, weights=expected_units_per_day(layout, demand), minlength=n_skus
    )
    case_pack = np.array([s.case_pack for s in layout.skus], dtype=np.int64)
    cover = layout.profile.backroom_cover_days * opening.uniform(0.5, 1.0, n_skus)
    backroom = np.ceil(sku_demand * cover / case_pack) * case_pack
    return units.astype(np.int64), backroom.astype(np.int64)


def opening_units(layout: StoreLayout, seed: int, demand: DemandParams) -> I64:
    """Units of each store SKU in the opening stock, shelves and backroom together: the
    store received them before the simulation began, as serial numbers ``[0, n)``."""
    lanes, backroom = opening_stock(layout, seed, demand)
    return _bincount(layout.lane_sku, lanes, len(layout.skus)) + backroom


class StoreSim:
    """A store's state and its rules; no I/O.

    Drive it with :meth:`advance`; read the truth from ``stock``, ``ledger``,
    ``backroom.ledger`` and ``tracker`` at any time between steps; change its
    future with :meth:`inject_delivery` and by replacing ``faults``.
    """

    def __init__(
        self,
        layout: StoreLayout,
        *,
        seed: int,
        clock: SimClock,
        config: SimConfig | None = None,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.layout = layout
        self.seed = seed
        self.clock = clock
        self.config = config or SimConfig(tick_s=clock.tick_s)
        if self.config.tick_s != clock.tick_s:
            raise ValueError("the clock and the config disagree on the tick length")
        self.faults = faults or FaultSchedule()
        self.faults.validate(layout)
        self.tick = 0  # the next tick to simulate
        n_skus = len(layout.skus)
        lane_units, backroom_units = opening_stock(layout, seed, self.config.demand)
        self.stock: I64 = lane_units
        self.ledger = LaneLedger.opening(self.stock)
        self.lane_demand = expected_units_per_day(layout, self.config.demand)
        self.sku_demand: F64 = np.bincount(
            layout.lane_sku, weights=self.lane_demand, minlength=n_skus
        ).astype(np.float64)
        self.sku_capacity = _bincount(layout.lane_sku, layout.capacity, n_skus)
        self.case_pack = np.array([s.case_pack for s in layout.skus], dtype=np.int64)
        self.backroom = Backroom(
            backroom_units, _bincount(layout.lane_sku, self.stock, n_skus) + backroom_units
        )
        self.tracker = StockoutTracker(layout.lanes)
        self.till = TillQueue()
        self.next_receipt = 1
        self.promotions: list[Promotion] = []
        self.deliveries: list[Delivery] = []  # booked in, in order; GoodsBatch.delivery indexes it
        self._orders = 0
        self._injected = 0
        self._day: DayDraws | None = None
        self.devices = Devices(layout, seed, self.config)

    # -- the API a caller drives ------------------------------------------------

    @property
    def now_ms(self) -> int:
        """The timestamp of the last simulated tick (the clock's start before any)."""
        return self.clock.ts(max(self.tick - 1, 0))

    def advance(self, ticks: int) -> StoreStep:
        if ticks < 1:
            raise ValueError("advance by at least one tick")
        per_day = self.clock.ticks_per_day
        parts: list[StoreStep] = []
        while ticks > 0:
            day = self.tick // per_day
            if self._day is None or self._day.index != day:
                self._day = self._draw_day(day)
            count = min(ticks, (day + 1) * per_day - self.tick)
            parts.append(self._advance_within_day(self._day, count))
            ticks -= count
        return StoreStep.concat(parts)

    def inject_delivery(
        self, units_by_gtin: Mapping[str, int], arrive_ms: int, ref: str | None = None
    ) -> Delivery:
        """Schedule a delivery into the backroom (e.g. a dealer shipping a cloud order).

        It is booked in, and its units scanned, at the first tick at or after
        ``arrive_ms`` (the next tick if that is already past); the next staff
        round takes it to the lanes.
        """
        position = {sku.gtin: k for k, sku in enumerate(self.layout.skus)}
        units = np.zeros(len(self.layout.skus), dtype=np.int64)
        for gtin, count in units_by_gtin.items():
            if gtin not in position:
                raise ValueError(f"{self.layout.store_id} does not stock {gtin}")
            if count < 1:
                raise ValueError(f"deliver at least one unit of {gtin}")
            units[position[gtin]] += count
        self._injected += 1
        ref = ref or f"{self.layout.store_id}-x{self._injected:06d}"
        if not is_valid_id(ref):
            raise ValueError(f"delivery reference {ref!r} must match the device-id pattern")
        delivery = Delivery(ref, arrive_ms, units, injected=True)
        self.backroom.schedule(delivery)
        return delivery

    def _draw_day(self, day: int) -> DayDraws:
        clock = self.clock
        ts = clock.ts_range(day * clock.ticks_per_day, clock.ticks_per_day)
        if self.config.promotions:
            rng = store_rng(self.seed, self.layout.store_index, Stream.DEMAND, day, 0)
            self.promotions += draw_promotions(rng, self.layout, int(ts[0]))
        active = tuple(p for p in self.promotions if p.start_ms <= ts[-1] and p.end_ms > ts[0])
        return draw_day(self.layout, self.seed, day, ts, clock.tick_ms, active, self.config)

    # -- stock movements --------------------------------------------------------

    def _book_in(self, ts_ms: int, goods: list[GoodsBatch]) -> None:
        tick_ms = self.clock.tick_ms
        for delivery in self.backroom.take_due(ts_ms):
            sku, serial = self.backroom.receive(delivery)
            # Scans spread over the tick, all before the tick's readings.
            spacing = max(1, tick_ms // (sku.shape[0] + 1))
            scan_ts = np.minimum(ts_ms - tick_ms + spacing * np.arange(1, sku.shape[0] + 1), ts_ms)
            goods.append(
                GoodsBatch(
                    scan_ts.astype(np.int64),
                    sku,
                    serial,
                    np.full(sku.shape[0], len(self.deliveries), dtype=np.int64),
                )
            )
            self.deliveries.append(delivery)

    def _restock(self) -> I64:
        layout = self.layout
        gaps = restock_gaps(self.stock, layout.capacity, layout.profile.restock_min_gap)
        added = allocate(self.backroom.on_hand, layout.lane_sku, gaps)
        self.backroom.issue(_bincount(layout.lane_sku, added, len(layout.skus)))
        self.stock += added
        self.ledger.restocked += added
        return added

    def _order(self, ts_ms: int) -> None:
        layout, profile = self.layout, self.layout.profile
        cases = standing_order(
            _bincount(layout.lane_sku, self.stock, len(layout.skus)),
            self.sku_capacity,
            self.backroom.on_hand,
            self.backroom.on_order(),
            self.sku_demand,
            profile.backroom_cover_days,
            self.case_pack,
        )
        self._orders += 1
        rng = store_rng(self.seed, layout.store_index, Stream.SUPPLY, 1, self._orders)
        shipped = rng.binomial(cases, profile.dealer_fill_rate) * self.case_pack
        if shipped.sum() > 0:
            arrive = arrival_ms(ts_ms, profile.delivery_lead_days, profile.delivery_hour)
            ref = f"{layout.store_id}-d{self._orders:06d}"
            self.backroom.schedule(Delivery(ref, arrive, shipped.astype(np.int64)))

    def _movement_rows(self, ts: I64) -> tuple[Bool, Bool]:
        profile, tick_ms = self.layout.profile, self.clock.tick_ms
        restock = np.zeros(ts.shape[0], dtype=bool)
        for hour in profile.restock_hours:
            restock |= crosses_hour(ts, tick_ms, hour)
        order = np.zeros(ts.shape[0], dtype=bool)
        if self.config.auto_replenish:
            due_day = (ts // MS_PER_DAY) % profile.order_every_days == 0
            order = crosses_hour(ts, tick_ms, profile.order_hour) & due_day
        return restock, order

    def _misprice(self, sales: SaleBatch, receipts: ReceiptBatch) -> tuple[SaleBatch, ReceiptBatch]:
        """What tills with a price fault charge instead; their receipts add up to it."""
        wrong = self.faults.mispriced(self.layout, sales.till, sales.sku, sales.ts)
        if not wrong.any():
            return sales, receipts
        below = np.array(
            [price_below_minimum(s.min_resale_minor) for s in self.layout.skus], dtype=np.int64
        )
        price = np.where(wrong, below[sales.sku], sales.price_minor)
        # ring_up numbers the receipts consecutively from the first one.
        rank = sales.receipt - receipts.receipt[0]
        total = np.bincount(rank, weights=price, minlength=len(receipts)).astype(np.int64)
        return (
            dataclasses.replace(sales, price_minor=price),
            dataclasses.replace(receipts, total_minor=total),
        )

    # -- one chunk within a day -------------------------------------------------

    def _advance_within_day(self, draws: DayDraws, count: int) -> StoreStep:
        layout, clock = self.layout, self.clock
        lanes = layout.lanes
        first = self.tick - draws.index * clock.ticks_per_day  # row within the day
        ts = clock.ts_range(self.tick, count)
        d = draws.demand
        lo, hi = np.searchsorted(d.ev_tick, [first, first + count])
        ev_tick = d.ev_tick[lo:hi] - first
        ev_lane, ev_units, ev_shrink = d.ev_lane[lo:hi], d.ev_units[lo:hi], d.ev_shrink[lo:hi]
        granted = np.zeros(ev_lane.shape[0], dtype=np.int64)
        restocked = np.zeros((count, lanes), dtype=np.int64)
        restock_rows, order_rows = self._movement_rows(ts)
        boundaries = np.flatnonzero(restock_rows | order_rows).tolist()
        goods: list[GoodsBatch] = []
        start_stock = self.stock.copy()

        row = 0
        while row < count:
            self._book_in(int(ts[row]), goods)
            if restock_rows[row]:
                restocked[row] = self._restock()
            if order_rows[row]:
                self._order(int(ts[row]))
            # Settle picks up to the next tick where stock moves by other means.
            following = [b for b in boundaries if b > row][:1]
            if self.backroom.pending:
                arrival = int(np.searchsorted(ts, self.backroom.pending[0].arrive_ms))
                following.append(max(arrival, row + 1))
            stop = min([count, *following])
            a, z = np.searchsorted(ev_tick, [row, stop])
            taken = allocate(self.stock, ev_lane[a:z], ev_units[a:z])
            granted[a:z] = taken
            self.stock -= _bincount(ev_lane[a:z], taken, lanes)
            row = stop

        taken_matrix = _bincount(ev_tick * lanes + ev_lane, granted, count * lanes)
        delta = restocked - taken_matrix.reshape(count, lanes)
        units = start_stock + np.cumsum(delta, axis=0)
        assert (units[-1] == self.stock).all(), "lane stock out of step with its movements"

        sale = ~ev_shrink
        self.ledger.sold += _bincount(ev_lane[sale], granted[sale], lanes)
        self.ledger.shrink += _bincount(ev_lane[ev_shrink], granted[ev_shrink], lanes)
        self.ledger.lost += _bincount(ev_lane[sale], ev_units[sale] - granted[sale], lanes)
        self.ledger.on_shelf = self.stock.copy()

        # Serial numbers leave per SKU in the order units arrived (first in, first out).
        ev_sku = layout.lane_sku[ev_lane]
        first_serial = self.backroom.next_departure[ev_sku] + group_exclusive_cumsum(
            ev_sku, granted
        )
        self.backroom.next_departure += _bincount(ev_sku, granted, len(layout.skus))
        pick_ts = ts[ev_tick]
        price = np.array([s.price_minor for s in layout.skus], dtype=np.int64)[ev_sku]
        for promo in draws.promotions:
            on = (ev_lane == promo.lane) & (pick_ts >= promo.start_ms) & (pick_ts < promo.end_ms)
            price = np.where(on, np.minimum(price, promo.price_minor), price)
        paid = sale & (granted > 0)
        new_sales, new_receipts = ring_up(
            d.ev_customer[lo:hi][paid],
            ev_lane[paid],
            ev_sku[paid],
            granted[paid],
            first_serial[paid],
            price[paid],
            pick_ts[paid],
            d.customer_dwell_ms,
            d.customer_till,
            self.next_receipt,
        )
        new_sales, new_receipts = self._misprice(new_sales, new_receipts)
        self.next_receipt += len(new_receipts)
        self.till.push(new_sales, new_receipts)
        sales, receipts = self.till.pop_due(int(ts[-1]))

        restock_tick, restock_lane = np.nonzero(restocked)
        restocks = RestockBatch(
            ts[restock_tick], restock_lane.astype(np.int64), restocked[restock_tick, restock_lane]
        )
        rows = slice(first, first + count)
        fridges = self.devices.read_fridges(draws, rows, ts, self.faults)
        shelves = self.devices.read_shelves(
            draws, rows, ts, units, fridges.true_cabinet_c, self.faults
        )
        stockouts = self.tracker.update(units, ts)
        self.tick += count
        return StoreStep(
            first_tick=self.tick - count,
            ts=ts,
            units=units,
            grams=shelves.grams,
            board_c=shelves.board_c,
            shelf_online=shelves.online,
            cabinet_c=fridges.cabinet_c,
            true_cabinet_c=fridges.true_cabinet_c,
            evaporator_c=fridges.evaporator_c,
            door_open=fridges.door_open,
            compressor_on=fridges.compressor_on,
            defrost_on=fridges.defrost_on,
            fridge_online=fridges.online,
            sales=sales,
            receipts=receipts,
            goods=GoodsBatch.concat(goods),
            restocks=restocks,
            stockouts=stockouts,
        )
