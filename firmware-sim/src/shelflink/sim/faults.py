"""Fault injection: which device misbehaves, how, and from when to when.

A fault changes what devices report, never what happens in the store: the
true units on a stuck lane still change, the fridge still warms whether or
not its controller is online, a till with a wrong price still sells the same
units to the same customers. That keeps the ground truth and the random
draws identical with and without faults, so a test can compare both runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from shelflink.sim.clock import MS_PER_DAY
from shelflink.sim.layout import StoreLayout

I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


class FaultKind(StrEnum):
    STUCK = "stuck"  # shelf: a lane (or all) repeats the last value it produced
    DROPOUT = "dropout"  # shelf: a lane (or all) reads null
    OFFLINE = "offline"  # shelf or fridge device: publishes nothing at all
    COMPRESSOR_FAILURE = "compressor_failure"  # fridge: the compressor never starts
    DOOR_AJAR = "door_ajar"  # fridge: the door is left partly open
    # till: rings one SKU up below the brand's minimum resale price (a wrong
    # price file, or a store dumping goods), as channel control should notice
    PRICE_BELOW_MINIMUM = "price_below_minimum"


SHELF_FAULTS = frozenset({FaultKind.STUCK, FaultKind.DROPOUT, FaultKind.OFFLINE})
FRIDGE_FAULTS = frozenset({FaultKind.COMPRESSOR_FAILURE, FaultKind.DOOR_AJAR, FaultKind.OFFLINE})
TILL_FAULTS = frozenset({FaultKind.PRICE_BELOW_MINIMUM})
# What a till with a price fault charges, as a share of the SKU's minimum resale price.
BELOW_MINIMUM_SHARE = 0.8


def price_below_minimum(min_resale_minor: int) -> int:
    """The price a till with a price fault charges: clearly, never just, below the minimum."""
    return max(0, min(round(min_resale_minor * BELOW_MINIMUM_SHARE), min_resale_minor - 1))


@dataclass(frozen=True, slots=True)
class Fault:
    device_id: str
    kind: FaultKind
    start_ms: int
    end_ms: int
    lane: int | None = None  # shelf faults: the lane's index on the device, None = all lanes
    gtin: str | None = None  # till price faults: the SKU rung up below its minimum

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError("a fault ends after it starts")
        if self.lane is not None and self.kind not in (FaultKind.STUCK, FaultKind.DROPOUT):
            raise ValueError(f"{self.kind} applies to a whole device, not a lane")
        if (self.gtin is not None) != (self.kind is FaultKind.PRICE_BELOW_MINIMUM):
            raise ValueError(f"{FaultKind.PRICE_BELOW_MINIMUM} and only it names one GTIN")

    def active(self, ts_ms: I64) -> Bool:
        return (ts_ms >= self.start_ms) & (ts_ms < self.end_ms)


@dataclass(frozen=True, slots=True)
class FaultSchedule:
    faults: tuple[Fault, ...] = ()

    def with_fault(self, fault: Fault) -> FaultSchedule:
        return FaultSchedule((*self.faults, fault))

    def validate(self, layout: StoreLayout) -> None:
        """Refuse faults that name another store's devices or do not fit the device."""
        shelves = {s.device_id: s.lanes for s in layout.shelves}
        fridges = {f.device_id for f in layout.fridges}
        gtins = {sku.gtin for sku in layout.skus}
        for fault in self.faults:
            if fault.device_id in shelves:
                allowed = SHELF_FAULTS
                lanes = shelves[fault.device_id]
                if fault.lane is not None and not 0 <= fault.lane < lanes:
                    raise ValueError(f"{fault.device_id} has no lane {fault.lane}")
            elif fault.device_id in fridges:
                allowed = FRIDGE_FAULTS
            elif fault.device_id in layout.tills:
                allowed = TILL_FAULTS
                if fault.gtin is not None and fault.gtin not in gtins:
                    raise ValueError(f"{layout.store_id} does not stock {fault.gtin}")
            elif fault.device_id == layout.receiving:
                allowed = frozenset()  # it scans deliveries in and sells nothing
            else:
                continue  # another store's fault: each store picks its own
            if fault.kind not in allowed:
                raise ValueError(f"{fault.kind} does not apply to {fault.device_id}")

    def device_mask(self, device_id: str, kind: FaultKind, ts_ms: I64) -> Bool:
        mask = np.zeros(ts_ms.shape[0], dtype=bool)
        for fault in self.faults:
            if fault.device_id == device_id and fault.kind is kind and fault.lane is None:
                mask |= fault.active(ts_ms)
        return mask

    def mispriced(self, layout: StoreLayout, till: I64, sku: I64, ts_ms: I64) -> Bool:
        """Sales (by till index, store SKU index and scan time) that a till with a
        price fault rang up below the SKU's minimum resale price."""
        mask = np.zeros(ts_ms.shape[0], dtype=bool)
        for fault in self.faults:
            if (
                fault.kind is not FaultKind.PRICE_BELOW_MINIMUM
                or fault.device_id not in layout.tills
            ):
                continue
            position = [s.gtin for s in layout.skus].index(str(fault.gtin))
            at_till = till == layout.tills.index(fault.device_id)
            mask |= at_till & (sku == position) & fault.active(ts_ms)
        return mask

    def lane_mask(self, device_id: str, kind: FaultKind, ts_ms: I64, lanes: int) -> Bool:
        mask = np.zeros((ts_ms.shape[0], lanes), dtype=bool)
        for fault in self.faults:
            if fault.device_id != device_id or fault.kind is not kind:
                continue
            active = fault.active(ts_ms)
            if fault.lane is None:
                mask |= active[:, None]
            else:
                mask[:, fault.lane] |= active
        return mask


def random_faults(
    rng: np.random.Generator,
    layout: StoreLayout,
    start_ms: int,
    end_ms: int,
    per_device_day: float,
) -> FaultSchedule:
    """A plausible fault history for a data set: each shelf or fridge device has
    Poisson(per_device_day * days) faults of a random fitting kind, lasting an
    exponential time of mean two hours."""
    days = (end_ms - start_ms) / MS_PER_DAY
    faults: list[Fault] = []
    devices = [(s.device_id, s.lanes, sorted(SHELF_FAULTS)) for s in layout.shelves] + [
        (f.device_id, 0, sorted(FRIDGE_FAULTS)) for f in layout.fridges
    ]
    for device_id, lanes, kinds in devices:
        for _ in range(int(rng.poisson(per_device_day * days))):
            kind = FaultKind(kinds[int(rng.integers(len(kinds)))])
            start = start_ms + int(rng.integers(0, max(1, end_ms - start_ms)))
            length = 60_000 + int(rng.exponential(2 * 3_600_000))
            lane: int | None = None
            if kind in (FaultKind.STUCK, FaultKind.DROPOUT) and rng.random() < 0.8:
                lane = int(rng.integers(lanes))
            faults.append(Fault(device_id, kind, start, start + length, lane))
    return FaultSchedule(tuple(faults))
