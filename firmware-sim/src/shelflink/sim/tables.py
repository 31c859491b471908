"""Simulator output as rows of the data set's tables (see :mod:`shelflink.sim.schema`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shelflink.sim.backroom import Delivery, serial_code
from shelflink.sim.demand import Promotion
from shelflink.sim.faults import FaultSchedule
from shelflink.sim.ground_truth import NO_STOCKOUT, LaneLedger, StockoutIntervals
from shelflink.sim.layout import StoreLayout
from shelflink.sim.schema import SCHEMAS, TS
from shelflink.sim.step import GoodsBatch, RestockBatch, StoreStep
from shelflink.sim.till import ReceiptBatch, SaleBatch

I64 = npt.NDArray[np.int64]


class StoreTables:
    """Builds one store's rows of the event and reading tables."""

    def __init__(self, layout: StoreLayout, currency: str) -> None:
        self.layout = layout
        self.currency = currency
        self._store = pa.array([layout.store_id])
        self._shelf_ids = pa.array([s.device_id for s in layout.shelves])
        self._fridge_ids = pa.array([f.device_id for f in layout.fridges])
        self._till_ids = pa.array(list(layout.tills))
        self._receiving = pa.array([layout.receiving])
        self._gtins = np.array([s.gtin for s in layout.skus], dtype=object)

    def _store_col(self, n: int) -> pa.Array:
        return self._dict(np.zeros(n, dtype=np.int32), self._store)

    def _dict(self, index: npt.NDArray[np.integer], names: pa.Array) -> pa.Array:
        # Taking names by index in Arrow costs no Python string per row.
        return pa.DictionaryArray.from_arrays(index.astype(np.int32), names).dictionary_decode()

    def _lane_cols(self, lane: I64) -> list[pa.Array]:
        layout = self.layout
        return [
            self._store_col(lane.shape[0]),
            self._dict(layout.lane_device[lane], self._shelf_ids),
            pa.array(layout.lane_slot[lane].astype(np.int16)),
        ]

    @staticmethod
    def _ts(values: I64) -> pa.Array:
        return pa.array(values.astype(np.int64), type=TS)

    def readings(self, step: StoreStep) -> pa.Table:
        n, lanes = step.units.shape
        online = step.shelf_online[:, self.layout.lane_device].ravel()
        lane = np.tile(np.arange(lanes, dtype=np.int64), n)[online]
        grams = step.grams.ravel()[online].astype(np.float32)
        board = step.board_c[:, self.layout.lane_device].ravel()[online].astype(np.float32)
        return pa.Table.from_arrays(
            [
                *self._lane_cols(lane),
                self._ts(np.repeat(step.ts, lanes)[online]),
                pa.array(grams, mask=np.isnan(grams)),
                pa.array(board),
                pa.array(step.units.ravel()[online].astype(np.int32)),
            ],
            schema=SCHEMAS["readings"],
        )

    def labels(self, ts: I64, units: I64, to_stockout: I64, tick_s: int) -> pa.Table:
        n, lanes = units.shape
        lane = np.tile(np.arange(lanes, dtype=np.int64), n)
        flat = to_stockout.ravel()
        minutes = (flat * (tick_s / 60.0)).astype(np.float32)
        return pa.Table.from_arrays(
            [
                *self._lane_cols(lane),
                self._ts(np.repeat(ts, lanes)),
                pa.array(units.ravel().astype(np.int32)),
                pa.array(units.ravel() == 0),
                pa.array(minutes, mask=flat == NO_STOCKOUT),
            ],
            schema=SCHEMAS["labels"],
        )

    def fridge_readings(self, step: StoreStep) -> pa.Table:
        n, fridges = step.cabinet_c.shape
        online = step.fridge_online.ravel()
        device = np.tile(np.arange(fridges), n)[online]

        def col(values: npt.NDArray[np.generic], kind: type = np.float32) -> pa.Array:
            return pa.array(values.ravel()[online].astype(kind))

        return pa.Table.from_arrays(
            [
                self._store_col(device.shape[0]),
                self._dict(device, self._fridge_ids),
                self._ts(np.repeat(step.ts, fridges)[online]),
                col(step.cabinet_c),
                col(step.evaporator_c),
                col(step.door_open, bool),
                col(step.compressor_on, bool),
                col(step.defrost_on, bool),
                col(step.true_cabinet_c),
            ],
            schema=SCHEMAS["fridge_readings"],
        )

    def _serials(self, serial: I64) -> pa.Array:
        index = self.layout.store_index
        return pa.array([serial_code(index, int(s)) for s in serial.tolist()], type=pa.string())

    def _receipt_ids(self, receipt: I64) -> pa.Array:
        store = self.layout.store_id
        return pa.array([f"{store}-r{int(r):08d}" for r in receipt.tolist()], type=pa.string())

    def sales(self, sales: SaleBatch) -> pa.Table:
        n = len(sales)
        layout = self.layout
        return pa.Table.from_arrays(
            [
                self._store_col(n),
                self._dict(sales.till, self._till_ids),
                self._ts(sales.ts),
                pa.array(self._gtins[sales.sku], type=pa.string()),
                self._serials(sales.serial),
                pa.array(np.ones(n, dtype=np.int32)),
                pa.array(sales.price_minor),
                pa.array([self.currency] * n, type=pa.string()),
                self._receipt_ids(sales.receipt),
                self._dict(layout.lane_device[sales.lane], self._shelf_ids),
                pa.array(layout.lane_slot[sales.lane].astype(np.int16)),
                self._ts(sales.pick_ts),
            ],
            schema=SCHEMAS["sales"],
        )

    def receipts(self, receipts: ReceiptBatch) -> pa.Table:
        n = len(receipts)
        return pa.Table.from_arrays(
            [
                self._store_col(n),
                self._dict(receipts.till, self._till_ids),
                self._receipt_ids(receipts.receipt),
                self._ts(receipts.ts),
                pa.array(receipts.items.astype(np.int32)),
                pa.array(receipts.total_minor),
                pa.array([self.currency] * n, type=pa.string()),
            ],
            schema=SCHEMAS["receipts"],
        )

    def goods_receipts(self, goods: GoodsBatch, deliveries: Sequence[Delivery]) -> pa.Table:
        n = len(goods)
        which = goods.delivery.tolist()
        return pa.Table.from_arrays(
            [
                self._store_col(n),
                self._dict(np.zeros(n, dtype=np.int64), self._receiving),
                self._ts(goods.ts),
                pa.array(self._gtins[goods.sku], type=pa.string()),
                self._serials(goods.serial),
                pa.array(np.ones(n, dtype=np.int32)),
                pa.array([deliveries[d].ref for d in which], type=pa.string()),
                pa.array([deliveries[d].injected for d in which], type=pa.bool_()),
            ],
            schema=SCHEMAS["goods_receipts"],
        )

    def restocks(self, restocks: RestockBatch) -> pa.Table:
        return pa.Table.from_arrays(
            [
                *self._lane_cols(restocks.lane),
                self._ts(restocks.ts),
                pa.array(restocks.units.astype(np.int32)),
            ],
            schema=SCHEMAS["restocks"],
        )

    def stockouts(self, intervals: StockoutIntervals) -> pa.Table:
        open_ = intervals.end_ms == NO_STOCKOUT
        minutes = (intervals.end_ms - intervals.start_ms) / 60_000.0
        return pa.Table.from_arrays(
            [
                *self._lane_cols(intervals.lane),
                self._ts(intervals.start_ms),
                pa.array(intervals.end_ms, type=TS, mask=open_),
                pa.array(minutes, mask=open_),
            ],
            schema=SCHEMAS["stockouts"],
        )

    def lane_totals(self, ledger: LaneLedger) -> pa.Table:
        lane = np.arange(self.layout.lanes, dtype=np.int64)
        return pa.Table.from_arrays(
            [
                *self._lane_cols(lane),
                *(
                    pa.array(getattr(ledger, name))
                    for name in ("initial", "restocked", "sold", "shrink", "lost", "on_shelf")
                ),
            ],
            schema=SCHEMAS["lane_totals"],
        )

    def promotions(self, promotions: Sequence[Promotion], until_ms: int) -> pa.Table:
        # Promotions drawn for the last day may start after the horizon: not shown.
        shown = [p for p in promotions if p.start_ms <= until_ms]
        lane = np.array([p.lane for p in shown], dtype=np.int64)
        return pa.Table.from_arrays(
            [
                *self._lane_cols(lane),
                pa.array(self._gtins[self.layout.lane_sku[lane]], type=pa.string()),
                self._ts(np.array([p.start_ms for p in shown], dtype=np.int64)),
                self._ts(np.array([p.end_ms for p in shown], dtype=np.int64)),
                pa.array([p.multiplier for p in shown], type=pa.float64()),
                pa.array([p.price_minor for p in shown], type=pa.int64()),
            ],
            schema=SCHEMAS["promotions"],
        )

    def faults(self, schedule: FaultSchedule) -> pa.Table:
        own = {d for d in self.layout.device_ids()}
        faults = [f for f in schedule.faults if f.device_id in own]
        return pa.Table.from_arrays(
            [
                self._store_col(len(faults)),
                pa.array([f.device_id for f in faults], type=pa.string()),
                pa.array([f.kind.value for f in faults], type=pa.string()),
                pa.array([f.lane for f in faults], type=pa.int16()),
                self._ts(np.array([f.start_ms for f in faults], dtype=np.int64)),
                self._ts(np.array([f.end_ms for f in faults], dtype=np.int64)),
            ],
            schema=SCHEMAS["faults"],
        )
