"""A store's physical layout: which devices it has and which SKU sits in which lane.

Lanes are numbered store-wide in one order (ambient shelves first, then the
shelves inside fridges), and every per-lane quantity of the simulator is a
numpy array in that order, so a whole store is advanced with array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.catalog import Sku
from shelflink.sim.profiles import StoreProfile
from shelflink.sim.seeds import Stream, store_rng
from shelflink.sim.traffic import expected_customers_per_day

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MAX_CAPACITY = 60
# The planogram's estimate of units per pick; the demand model's own mean may differ.
UNITS_PER_PICK = 1.25


@dataclass(frozen=True, slots=True)
class ShelfDevice:
    """One load-cell board; it reads lanes ``start`` to ``stop - 1`` of the store."""

    device_id: str
    start: int
    stop: int
    fridge: int | None  # index of the fridge it sits in, or None on the shop floor

    @property
    def lanes(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, slots=True)
class FridgeDevice:
    device_id: str
    shelf: int  # index of the shelf device inside it


@dataclass(frozen=True, slots=True, eq=False)
class StoreLayout:
    store_id: str
    store_index: int
    profile: StoreProfile
    skus: tuple[Sku, ...]
    shelves: tuple[ShelfDevice, ...]
    fridges: tuple[FridgeDevice, ...]
    tills: tuple[str, ...]
    receiving: str  # the backroom scanner that scans deliveries in
    lane_sku: I64  # index into skus
    lane_device: I64  # index into shelves
    lane_slot: I64  # index of the lane on its device (its place in ShelfReading.grams)
    lane_fridge: I64  # index into fridges, -1 for ambient lanes
    capacity: I64
    unit_g: F64
    # Expected picks per customer from this lane.
    popularity: F64

    @property
    def lanes(self) -> int:
        return int(self.capacity.shape[0])

    def device_ids(self) -> list[str]:
        return [
            *(s.device_id for s in self.shelves),
            *(f.device_id for f in self.fridges),
            *self.tills,
            self.receiving,
        ]


def store_id_for(store_index: int) -> str:
    return f"s{store_index + 1:04d}"


def _pick_skus(rng: np.random.Generator, pool: list[int], velocity: F64, n: int) -> I64:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    weights = velocity[pool] / velocity[pool].sum()
    # Popular products are more likely to be stocked; a store smaller than the
    # pool carries each at most once, a bigger one repeats its best sellers.
    chosen = rng.choice(len(pool), size=n, replace=n > len(pool), p=weights)
    return np.asarray(pool, dtype=np.int64)[chosen]


def build_layout(
    seed: int, store_index: int, profile: StoreProfile, catalog: tuple[Sku, ...]
) -> StoreLayout:
    rng = store_rng(seed, store_index, Stream.LAYOUT)
    store_id = store_id_for(store_index)
    velocity = np.array([s.velocity for s in catalog], dtype=np.float64)
    ambient_pool = [i for i, s in enumerate(catalog) if not s.cold_chain]
    cold_pool = [i for i, s in enumerate(catalog) if s.cold_chain]
    n_ambient = profile.shelves * profile.lanes_per_shelf
    n_cold = profile.fridges * profile.lanes_per_fridge
    catalog_index = np.concatenate(
        [
            _pick_skus(rng, ambient_pool, velocity, n_ambient),
            _pick_skus(rng, cold_pool, velocity, n_cold),
        ]
    )
    # The store's own SKU list, in first-lane order; lanes point into it.
    unique, first = np.unique(catalog_index, return_index=True)
    order = unique[np.argsort(first)]
    skus = tuple(catalog[int(i)] for i in order)
    position = {int(c): k for k, c in enumerate(order)}
    lane_sku = np.array([position[int(c)] for c in catalog_index], dtype=np.int64)

    shelves: list[ShelfDevice] = []
    fridges: list[FridgeDevice] = []
    start = 0
    for n in range(profile.shelves):
        shelves.append(
            ShelfDevice(
                f"{store_id}-shelf-{n + 1:02d}", start, start + profile.lanes_per_shelf, None
            )
        )
        start += profile.lanes_per_shelf
    for n in range(profile.fridges):
        fridge_id = f"{store_id}-fridge-{n + 1:02d}"
        shelves.append(
            ShelfDevice(f"{fridge_id}-lanes", start, start + profile.lanes_per_fridge, n)
        )
        fridges.append(FridgeDevice(fridge_id, len(shelves) - 1))
        start += profile.lanes_per_fridge

    lane_device = np.concatenate(
        [np.full(s.lanes, k, dtype=np.int64) for k, s in enumerate(shelves)]
    )
    lane_slot = np.concatenate([np.arange(s.lanes, dtype=np.int64) for s in shelves])
    lane_fridge = np.array(
        [-1 if shelves[d].fridge is None else shelves[d].fridge for d in lane_device],
        dtype=np.int64,
    )
    unit_g = np.array([skus[k].unit_g for k in lane_sku], dtype=np.float64)
    n = lane_sku.shape[0]
    # A lane holds what fits in its depth: light items many, bulky ones few.
    capacity = np.clip(np.round(rng.uniform(5000.0, 14000.0, n) / unit_g), 4, MAX_CAPACITY)
    # Shelf space follows sales (a planogram): a full lane lasts about
    # shelf_days of its demand, more for some lanes and less for others, and
    # the short ones are where stock-outs come from.
    days_of_supply = profile.shelf_days * rng.lognormal(0.0, 0.55, n)
    units_per_day = capacity / days_of_supply
    popularity = units_per_day / (expected_customers_per_day(profile) * UNITS_PER_PICK)
    return StoreLayout(
        store_id=store_id,
        store_index=store_index,
        profile=profile,
        skus=skus,
        shelves=tuple(shelves),
        fridges=tuple(fridges),
        tills=tuple(f"{store_id}-till-{n + 1:02d}" for n in range(profile.tills)),
        receiving=f"{store_id}-receiving",
        lane_sku=lane_sku,
        lane_device=lane_device,
        lane_slot=lane_slot,
        lane_fridge=lane_fridge,
        capacity=capacity.astype(np.int64),
        unit_g=unit_g,
        popularity=popularity,
    )
