"""The backroom: stock behind the scenes, deliveries on the way, and serial numbers.

One item, one code: every unit in a store carries a serial number. Per SKU the
store's units are numbered in the order they arrived (the opening stock
first, then each delivery's units), and leave the store in the same order
(first in, first out), so every sold serial is one that this store received.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.clock import MS_PER_DAY
from shelflink.sim.ground_truth import BackroomLedger

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Delivery:
    ref: str  # the delivery note's reference, as scanned with each unit
    arrive_ms: int
    units: I64  # per store SKU
    injected: bool = False  # placed by a caller (e.g. the cloud's order), not the standing order


def serial_code(store_index: int, number: int) -> str:
    """The printed serial: store and running number, unique per GTIN across stores."""
    return f"{store_index + 1:04d}{number:010d}"


class Backroom:
    def __init__(self, on_hand: I64, opening_units: I64) -> None:
        self.ledger = BackroomLedger.opening(on_hand)
        self.pending: list[Delivery] = []
        # Serial numbers [0, opening_units) belong to the opening stock (on the
        # shelves and in the backroom), received before the simulation began.
        self.next_serial = opening_units.copy()
        self.next_departure = np.zeros_like(opening_units)

    @property
    def on_hand(self) -> I64:
        return self.ledger.on_hand

    def on_order(self) -> I64:
        total = np.zeros_like(self.on_hand)
        for delivery in self.pending:
            total += delivery.units
        return total

    def schedule(self, delivery: Delivery) -> None:
        self.pending.append(delivery)
        # Ties arrive in the order they were scheduled (sort is stable).
        self.pending.sort(key=lambda d: d.arrive_ms)

    def take_due(self, ts_ms: int) -> list[Delivery]:
        due = [d for d in self.pending if d.arrive_ms <= ts_ms]
        self.pending = [d for d in self.pending if d.arrive_ms > ts_ms]
        return due

    def receive(self, delivery: Delivery) -> tuple[I64, I64]:
        """Book a delivery in; returns (sku, serial number) of each unit scanned."""
        sku = np.repeat(np.arange(delivery.units.shape[0], dtype=np.int64), delivery.units)
        within = np.arange(sku.shape[0], dtype=np.int64) - np.repeat(
            np.cumsum(delivery.units) - delivery.units, delivery.units
        )
        serial = self.next_serial[sku] + within
        self.next_serial += delivery.units
        self.ledger.received += delivery.units
        self.ledger.on_hand += delivery.units
        return sku, serial

    def issue(self, units: I64) -> None:
        """Units per SKU carried out to the lanes."""
        self.ledger.issued += units
        self.ledger.on_hand -= units


def standing_order(
    shelf_units: I64,
    shelf_capacity: I64,
    backroom: I64,
    on_order: I64,
    daily_demand: F64,
    cover_days: float,
    case_pack: I64,
) -> I64:
    """Cases per SKU that bring the store's position up to full shelves plus
    ``cover_days`` of expected demand (an order-up-to policy)."""
    target = shelf_capacity + cover_days * daily_demand
    position = shelf_units + backroom + on_order
    short = np.maximum(0.0, target - position)
    return np.ceil(short / case_pack).astype(np.int64)


def arrival_ms(order_ms: int, lead_days: int, delivery_hour: float) -> int:
    day_start = (order_ms // MS_PER_DAY) * MS_PER_DAY
    arrive = day_start + lead_days * MS_PER_DAY + round(delivery_hour * 3_600_000)
    # A delivery never arrives before (or at) the moment it was ordered.
    return (
        arrive
        if arrive > order_ms
        else arrive + MS_PER_DAY * max(1, math.ceil((order_ms - arrive + 1) / MS_PER_DAY))
    )
