"""Store profiles: how big a store is, how busy, how it is restocked and supplied.

Profiles differ enough in size and traffic that a stock-out model trained on
some of them can be validated on a held-out one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from shelflink.sim.seeds import profile_offset


@dataclass(frozen=True, slots=True)
class StoreProfile:
    name: str
    shelves: int
    lanes_per_shelf: int
    fridges: int
    lanes_per_fridge: int
    tills: int
    # Customers per hour at the busiest time of an average day.
    peak_customers_per_h: float
    open_hour: float
    close_hour: float
    # The planogram: a full lane holds about this many days of its expected
    # demand (varied per lane), unless the product is too bulky for that.
    shelf_days: float
    # Staff rounds that refill lanes from the backroom.
    restock_hours: tuple[float, ...]
    # A lane is refilled in a round only when at least this share of it is empty;
    # staff do not walk to a lane that is missing one item.
    restock_min_gap: float
    # The store's standing order to its dealer: every n days at order_hour,
    # delivered lead days later at delivery_hour.
    order_every_days: int
    order_hour: float
    delivery_lead_days: int
    delivery_hour: float
    # Order-up-to target for the backroom, in days of expected demand.
    backroom_cover_days: float
    # Share of ordered cases the dealer actually delivers (the rest is short).
    dealer_fill_rate: float
    # Share of picks that leave the store without a sale (theft, damage).
    shrink_rate: float
    promotions_per_day: float

    def __post_init__(self) -> None:
        if not 1 <= self.lanes_per_shelf <= 64 or not 1 <= self.lanes_per_fridge <= 64:
            raise ValueError("a shelf device reads 1 to 64 lanes")
        if self.shelves < 1 or self.fridges < 0 or self.tills < 1:
            raise ValueError("a store has at least one shelf and one till")
        if not 0.0 <= self.open_hour < self.close_hour <= 24.0:
            raise ValueError("open_hour must be before close_hour within a day")
        if not 0.0 <= self.shrink_rate < 1.0 or not 0.0 < self.dealer_fill_rate <= 1.0:
            raise ValueError("shrink_rate is in [0, 1) and dealer_fill_rate in (0, 1]")
        if self.order_every_days < 1 or self.delivery_lead_days < 0:
            raise ValueError("orders are at least a day apart and cannot arrive before sent")

    @property
    def lanes(self) -> int:
        return self.shelves * self.lanes_per_shelf + self.fridges * self.lanes_per_fridge


KIOSK = StoreProfile(
    name="kiosk",
    shelves=2,
    lanes_per_shelf=6,
    fridges=1,
    lanes_per_fridge=4,
    tills=1,
    peak_customers_per_h=40.0,
    open_hour=6.0,
    close_hour=20.0,
    shelf_days=1.6,
    restock_hours=(5.5, 13.0),
    restock_min_gap=0.3,
    order_every_days=3,
    order_hour=19.0,
    delivery_lead_days=2,
    delivery_hour=5.0,
    backroom_cover_days=3.0,
    dealer_fill_rate=0.92,
    shrink_rate=0.01,
    promotions_per_day=0.2,
)

CONVENIENCE = StoreProfile(
    name="convenience",
    shelves=6,
    lanes_per_shelf=8,
    fridges=2,
    lanes_per_fridge=8,
    tills=2,
    peak_customers_per_h=90.0,
    open_hour=7.0,
    close_hour=23.0,
    shelf_days=1.25,
    restock_hours=(6.5, 14.0),
    restock_min_gap=0.25,
    order_every_days=2,
    order_hour=21.0,
    delivery_lead_days=1,
    delivery_hour=5.5,
    backroom_cover_days=2.5,
    dealer_fill_rate=0.95,
    shrink_rate=0.015,
    promotions_per_day=0.5,
)

SUPERMARKET = StoreProfile(
    name="supermarket",
    shelves=18,
    lanes_per_shelf=12,
    fridges=4,
    lanes_per_fridge=12,
    tills=6,
    peak_customers_per_h=400.0,
    open_hour=8.0,
    close_hour=21.0,
    shelf_days=1.0,
    restock_hours=(7.0, 12.0, 17.0),
    restock_min_gap=0.2,
    order_every_days=1,
    order_hour=22.0,
    delivery_lead_days=1,
    delivery_hour=6.0,
    backroom_cover_days=2.0,
    dealer_fill_rate=0.97,
    shrink_rate=0.02,
    promotions_per_day=1.5,
)

PROFILES: Mapping[str, StoreProfile] = {p.name: p for p in (KIOSK, CONVENIENCE, SUPERMARKET)}
DEFAULT_MIX: Mapping[str, float] = {"kiosk": 0.25, "convenience": 0.5, "supermarket": 0.25}

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def profile_for(seed: int, store_index: int, mix: Mapping[str, float] | None = None) -> str:
    """The profile of store ``store_index`` under a mix of weights.

    A golden-ratio sequence (shifted by the seed) instead of independent draws:
    even a handful of stores then covers the profiles in proportion, which a
    held-out-profile evaluation needs, and store i's profile still depends only
    on i, the seed and the mix, never on how many stores there are.
    """
    weights = dict(sorted((mix or DEFAULT_MIX).items()))
    unknown = set(weights) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown store profiles: {sorted(unknown)}; known: {sorted(PROFILES)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("profile weights are non-negative and not all zero")
    total = sum(weights.values())
    u = (profile_offset(seed) + _GOLDEN * (store_index + 1)) % 1.0
    acc = 0.0
    chosen = ""
    for name, weight in weights.items():
        if weight <= 0:
            continue
        chosen = name
        acc += weight / total
        if u < acc:
            return name
    return chosen  # u within rounding of 1.0
