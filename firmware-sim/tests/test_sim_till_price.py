"""A till with a price fault: one SKU rung up below the brand's minimum resale price,
inside the fault's window and at that till only; everything else stays as it was."""

from __future__ import annotations

import numpy as np
import pytest

from shelflink.sim import (
    DEFAULT_START,
    PROFILES,
    Fault,
    FaultKind,
    FaultSchedule,
    SimClock,
    StoreSim,
    build_catalog,
    build_layout,
)
from shelflink.sim.faults import price_below_minimum
from shelflink.sim.till import ReceiptBatch, SaleBatch

CLOCK = SimClock.starting(DEFAULT_START)
HOUR = 3_600_000
START, END = CLOCK.start_ms + 10 * HOUR, CLOCK.start_ms + 14 * HOUR  # the middle of a day


def test_a_price_fault_undercuts_one_sku_at_one_till_in_its_window() -> None:
    layout = build_layout(1, 0, PROFILES["convenience"], build_catalog(1))
    assert len(layout.tills) == 2
    clean = StoreSim(layout, seed=1, clock=CLOCK)
    day = clean.advance(CLOCK.ticks_per_day)
    # The SKU the store sells most of during the window, at the first till.
    window = (day.sales.ts >= START) & (day.sales.ts < END) & (day.sales.till == 0)
    sku = int(np.bincount(day.sales.sku[window]).argmax())
    gtin = layout.skus[sku].gtin
    fault = Fault(layout.tills[0], FaultKind.PRICE_BELOW_MINIMUM, START, END, gtin=gtin)
    faulty = StoreSim(layout, seed=1, clock=CLOCK, faults=FaultSchedule((fault,)))
    # Chunked differently from the clean run: the result must not depend on it.
    steps = [faulty.advance(n) for n in (7, 600, CLOCK.ticks_per_day - 607)]
    sales = SaleBatch.concat([s.sales for s in steps])
    receipts = ReceiptBatch.concat([s.receipts for s in steps])

    # The same customers bought the same units at the same times.
    for column in ("ts", "till", "receipt", "sku", "serial", "lane"):
        assert np.array_equal(getattr(sales, column), getattr(day.sales, column)), column
    changed = sales.price_minor != day.sales.price_minor
    hit = window & (day.sales.sku == sku)
    assert hit.sum() >= 3
    assert np.array_equal(changed, hit), "a sale outside the fault was repriced"
    minimum = layout.skus[sku].min_resale_minor
    assert np.all(sales.price_minor[hit] == price_below_minimum(minimum))
    assert price_below_minimum(minimum) < minimum
    # Without the fault no sale is below the minimum (promotions stop at it).
    floor = np.array([s.min_resale_minor for s in layout.skus])[day.sales.sku]
    assert np.all(day.sales.price_minor >= floor)
    # Each receipt adds up to what its till charged.
    totals = np.bincount(sales.receipt, weights=sales.price_minor).astype(np.int64)
    assert np.array_equal(receipts.total_minor, totals[receipts.receipt])
    assert receipts.total_minor.sum() < day.receipts.total_minor.sum()


def test_a_price_fault_names_a_till_and_a_sku_the_store_has() -> None:
    layout = build_layout(1, 0, PROFILES["kiosk"], build_catalog(1))
    gtin = layout.skus[0].gtin
    till = layout.tills[0]
    with pytest.raises(ValueError, match="GTIN"):
        Fault(till, FaultKind.PRICE_BELOW_MINIMUM, 0, 1)
    with pytest.raises(ValueError, match="GTIN"):
        Fault(layout.shelves[0].device_id, FaultKind.STUCK, 0, 1, gtin=gtin)
    refused = [
        Fault(layout.shelves[0].device_id, FaultKind.PRICE_BELOW_MINIMUM, 0, 1, gtin=gtin),
        Fault(layout.receiving, FaultKind.PRICE_BELOW_MINIMUM, 0, 1, gtin=gtin),
        Fault(till, FaultKind.PRICE_BELOW_MINIMUM, 0, 1, gtin="0000000000000"),
    ]
    for fault in refused:
        with pytest.raises(ValueError):
            FaultSchedule((fault,)).validate(layout)
