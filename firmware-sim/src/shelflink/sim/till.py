"""The tills: customers' picks become receipts and per-item sale scans.

One item, one code: each unit is scanned on its own, so a sale row is one
unit (qty 1) with its own serial. A customer reaches a till a dwell time after
picking (at least a minute) and items are scanned two seconds apart; the
receipt is stamped with its last scan. Scans are held back until the
simulated clock reaches them, so a live run never publishes a sale before the
reading that showed the units leaving the lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.columns import Columns

I64 = npt.NDArray[np.int64]

SCAN_INTERVAL_MS = 2_000


@dataclass(frozen=True, slots=True, eq=False)
class SaleBatch(Columns):
    ts: I64
    till: I64  # index into the store's tills
    receipt: I64  # the store's running receipt number
    sku: I64  # index into the store's SKUs
    serial: I64  # the unit's serial number (see backroom.serial_code)
    price_minor: I64
    lane: I64  # ground truth: the lane the unit was taken from
    pick_ts: I64  # ground truth: the reading that first showed it gone


@dataclass(frozen=True, slots=True, eq=False)
class ReceiptBatch(Columns):
    receipt: I64
    ts: I64
    till: I64
    items: I64
    total_minor: I64


def ring_up(
    customer: I64,
    lane: I64,
    sku: I64,
    units: I64,
    first_serial: I64,
    price_minor: I64,
    pick_ts: I64,
    dwell_ms: I64,
    till: I64,
    first_receipt: int,
) -> tuple[SaleBatch, ReceiptBatch]:
    """Scans for sold picks given in (customer, lane) order; customers index
    ``dwell_ms`` and ``till``. Receipt numbers count up from ``first_receipt``."""
    row = np.repeat(np.arange(customer.shape[0], dtype=np.int64), units)
    if row.shape[0] == 0:
        return SaleBatch.empty(), ReceiptBatch.empty()
    within_pick = np.arange(row.shape[0], dtype=np.int64) - np.repeat(
        np.cumsum(units) - units, units
    )
    who = customer[row]
    new_customer = np.empty(who.shape[0], dtype=bool)
    new_customer[0] = True
    np.not_equal(who[1:], who[:-1], out=new_customer[1:])
    rank = np.cumsum(new_customer) - 1
    first_row = np.flatnonzero(new_customer)
    item = np.arange(who.shape[0], dtype=np.int64) - first_row[rank]
    ts = pick_ts[row] + dwell_ms[who] + item * SCAN_INTERVAL_MS
    receipt = first_receipt + rank
    sales = SaleBatch(
        ts=ts,
        till=till[who],
        receipt=receipt,
        sku=sku[row],
        serial=first_serial[row] + within_pick,
        price_minor=price_minor[row],
        lane=lane[row],
        pick_ts=pick_ts[row],
    )
    items = np.bincount(rank).astype(np.int64)
    last_row = first_row + items - 1
    receipts = ReceiptBatch(
        receipt=first_receipt + np.arange(first_row.shape[0], dtype=np.int64),
        ts=ts[last_row],
        till=till[who[first_row]],
        items=items,
        total_minor=np.bincount(rank, weights=price_minor[row]).astype(np.int64),
    )
    return sales, receipts


class TillQueue:
    """Scans that have happened in the model but not yet on the simulated clock."""

    def __init__(self) -> None:
        self._sales = SaleBatch.empty()
        self._receipts = ReceiptBatch.empty()

    def push(self, sales: SaleBatch, receipts: ReceiptBatch) -> None:
        # A stable sort by time keeps creation order among equal times, so the
        # order is the same however the run is chunked.
        merged = SaleBatch.concat([self._sales, sales])
        self._sales = merged.take(np.argsort(merged.ts, kind="stable"))
        both = ReceiptBatch.concat([self._receipts, receipts])
        self._receipts = both.take(np.argsort(both.ts, kind="stable"))

    def pop_due(self, until_ms: int) -> tuple[SaleBatch, ReceiptBatch]:
        sales_due = int(np.searchsorted(self._sales.ts, until_ms, side="right"))
        receipts_due = int(np.searchsorted(self._receipts.ts, until_ms, side="right"))
        sales = self._sales.take(slice(0, sales_due))
        receipts = self._receipts.take(slice(0, receipts_due))
        self._sales = self._sales.take(slice(sales_due, None))
        self._receipts = self._receipts.take(slice(receipts_due, None))
        return sales, receipts

    def __len__(self) -> int:
        return len(self._sales)
