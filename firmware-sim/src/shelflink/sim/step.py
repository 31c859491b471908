"""What one call to :meth:`StoreSim.advance` returns: readings, scans and truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from shelflink.sim.columns import Columns
from shelflink.sim.ground_truth import StockoutIntervals
from shelflink.sim.till import ReceiptBatch, SaleBatch

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class GoodsBatch(Columns):
    """Units scanned into the backroom, one row per unit (one item, one code)."""

    ts: I64
    sku: I64
    serial: I64
    delivery: I64  # index into StoreSim.deliveries


@dataclass(frozen=True, slots=True, eq=False)
class RestockBatch(Columns):
    ts: I64
    lane: I64
    units: I64


@dataclass(frozen=True, slots=True, eq=False)
class StoreStep:
    """Ticks ``first_tick .. first_tick + len(ts) - 1`` of one store.

    Per-tick arrays have one row per tick; lane columns follow the layout's
    store-wide lane order, device columns the order of ``layout.shelves`` and
    ``layout.fridges``. Measured values come with what is true beside them.
    """

    first_tick: int
    ts: I64
    units: I64  # (ticks, lanes) true units
    grams: F64  # (ticks, lanes) as measured; NaN where the lane dropped out
    board_c: F64  # (ticks, shelves)
    shelf_online: Bool  # (ticks, shelves) False while a device is offline
    cabinet_c: F64  # (ticks, fridges) as measured
    true_cabinet_c: F64
    evaporator_c: F64
    door_open: Bool
    compressor_on: Bool
    defrost_on: Bool
    fridge_online: Bool
    sales: SaleBatch
    receipts: ReceiptBatch
    goods: GoodsBatch
    restocks: RestockBatch
    stockouts: StockoutIntervals  # intervals that ended during these ticks

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def concat(steps: Sequence[StoreStep]) -> StoreStep:
        if len(steps) == 1:
            return steps[0]

        # Every per-tick array stacks along its first axis.
        arrays: dict[str, Any] = {
            f.name: np.concatenate([getattr(s, f.name) for s in steps], axis=0)
            for f in fields(StoreStep)
            if f.type in ("I64", "F64", "Bool")
        }
        return StoreStep(
            first_tick=steps[0].first_tick,
            **arrays,
            sales=SaleBatch.concat([s.sales for s in steps]),
            receipts=ReceiptBatch.concat([s.receipts for s in steps]),
            goods=GoodsBatch.concat([s.goods for s in steps]),
            restocks=RestockBatch.concat([s.restocks for s in steps]),
            stockouts=StockoutIntervals(
                lane=np.concatenate([s.stockouts.lane for s in steps]),
                start_ms=np.concatenate([s.stockouts.start_ms for s in steps]),
                end_ms=np.concatenate([s.stockouts.end_ms for s in steps]),
            ),
        )
