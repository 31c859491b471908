"""Master data for simulated stores: the brand, its dealers, stores, SKUs, planograms,
warehouse stock, the serials shipped to each dealer and API keys, all derived from
the simulator's store layouts.

The demo and ``shelflink cloud seed --demo`` use it so that the planner, the
dealer API, channel control and the demo dealer see the same stores the
simulator runs. Seeding is idempotent: every row is an upsert of values that
depend only on the layouts (and the seed, for the serials), so a second run
writes what is already there; a serial keeps the first shipment recorded for
it. API keys are the one exception, because a key's secret is shown once and
never stored: see :func:`issue_demo_keys`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from shelflink.cloud.api_keys import IssuedKey, issue_key, list_keys, revoke_key
from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.master_data import (
    record_serial_shipment,
    replace_planogram,
    set_brand,
    set_dealer_stock,
    upsert_dealer,
    upsert_skus,
    upsert_stores,
)
from shelflink.cloud.master_data_models import (
    Brand,
    DealerChanges,
    PlanogramLane,
    SerialShipment,
    Sku,
    StockLevel,
    StoreUpsert,
)
from shelflink.cloud.writer import register_gateway
from shelflink.sim.backroom import serial_code
from shelflink.sim.catalog import Sku as SimSku
from shelflink.sim.demand import DemandParams, expected_units_per_day
from shelflink.sim.layout import StoreLayout
from shelflink.sim.store import opening_units

BRAND = Brand(name="Shelflink Demo Brand", currency="EUR")
KEY_LABEL = "demo"
LEAD_TIME_DAYS = 1
# What the store pays the dealer, as a share of the shelf price: below the
# brand's minimum resale price (70-90 % of it), so a store keeps a margin.
WHOLESALE_SHARE = 0.6
STOCK_CASES = 100  # "plenty": what a dealer holds of each SKU its stores carry
SHORT_CASES = 2  # the one SKU per dealer the warehouse is short of
# Days a unit keeps, by the simulator's category; None: it does not expire.
SHELF_LIFE_DAYS: dict[str, int | None] = {
    "snacks": 180,
    "confectionery": 365,
    "beverages": 270,
    "grocery": 365,
    "household": None,
    "dairy": 14,
    "chilled-drinks": 45,
    "ready-meals": 5,
}


@dataclass(frozen=True, slots=True)
class DemoDealer:
    """A dealer of the demo: its territory and how it delivers."""

    dealer_id: str
    name: str
    regions: tuple[str, ...]
    delivery_weekdays: tuple[int, ...]  # ISO, 1 = Monday
    auto_approve_below_minor: int


# Two dealers so that the API's scoping and the planner's per-dealer runs show:
# one approves every suggestion by hand and does not deliver on Sundays; the
# other delivers daily and lets the system approve small orders.
DEALERS: tuple[DemoDealer, ...] = (
    DemoDealer("north-drinks", "North Drinks", ("N1", "N2"), (1, 2, 3, 4, 5, 6), 0),
    DemoDealer("south-wholesale", "South Wholesale", ("S1", "S2"), (1, 2, 3, 4, 5, 6, 7), 3000),
)


@dataclass(frozen=True, slots=True)
class DemoSeed:
    """What seeding wrote: each dealer's stores, and the SKU each is short of."""

    stores_by_dealer: dict[str, list[str]]
    skus: int
    lanes: int
    short_sku_by_dealer: dict[str, str] = field(default_factory=dict)

    def dealer_of(self, store_id: str) -> str:
        """The dealer that serves ``store_id``."""
        for dealer_id, stores in self.stores_by_dealer.items():
            if store_id in stores:
                return dealer_id
        raise KeyError(store_id)

    def as_dict(self) -> dict[str, Any]:
        """The summary ``shelflink cloud seed --demo`` prints."""
        return {
            "brand": BRAND.name,
            "dealers": self.stores_by_dealer,
            "stores": sum(len(s) for s in self.stores_by_dealer.values()),
            "skus": self.skus,
            "lanes": self.lanes,
            "short_sku": self.short_sku_by_dealer,
        }


def dealer_for(store_index: int) -> tuple[DemoDealer, str]:
    """The dealer and region of the store at ``store_index``: alternating dealers,
    then alternating regions within each, so any number of stores spreads evenly."""
    dealer = DEALERS[store_index % len(DEALERS)]
    region = dealer.regions[(store_index // len(DEALERS)) % len(dealer.regions)]
    return dealer, region


def catalog_sku(sku: SimSku, currency: str) -> Sku:
    """The cloud catalog's record of a simulated SKU; the minimum order is one case."""
    return Sku(
        gtin=sku.gtin,
        name=sku.name,
        case_pack=sku.case_pack,
        min_order_units=sku.case_pack,
        shelf_life_days=SHELF_LIFE_DAYS.get(sku.category),
        cold_chain="chilled" if sku.cold_chain else "ambient",
        list_price_minor=round(sku.price_minor * WHOLESALE_SHARE),
        min_resale_minor=sku.min_resale_minor,
        currency=currency,
    )


def planogram_lanes(layout: StoreLayout) -> list[PlanogramLane]:
    """Every lane of the store's shelf devices, numbered as the gateway's events number them."""
    return [
        PlanogramLane(
            device=layout.shelves[int(layout.lane_device[lane])].device_id,
            lane=int(layout.lane_slot[lane]),
            gtin=layout.skus[int(layout.lane_sku[lane])].gtin,
            capacity=int(layout.capacity[lane]),
        )
        for lane in range(layout.lanes)
    ]


def short_sku(layouts: Sequence[StoreLayout]) -> str | None:
    """The SKU a dealer is short of: the one most of its stores carry, then the fastest
    seller, then the lowest GTIN, so that the choice is the same on every run."""
    stores: Counter[str] = Counter()
    demand: dict[str, float] = {}
    for layout in layouts:
        for gtin, units in expected_units_by_sku(layout).items():
            stores[gtin] += 1
            demand[gtin] = demand.get(gtin, 0.0) + units
    if not stores:
        return None
    return min(stores, key=lambda gtin: (-stores[gtin], -demand[gtin], gtin))


async def seed_demo(
    conn: Connection, layouts: Sequence[StoreLayout], *, currency: str = "EUR"
) -> DemoSeed:
    """Write the master data for ``layouts`` in one transaction; idempotent."""
    by_dealer: dict[str, list[StoreLayout]] = {d.dealer_id: [] for d in DEALERS}
    stores: list[StoreUpsert] = []
    for layout in layouts:
        dealer, region = dealer_for(layout.store_index)
        by_dealer[dealer.dealer_id].append(layout)
        stores.append(
            StoreUpsert(
                store_id=layout.store_id,
                dealer_id=dealer.dealer_id,
                name=f"{layout.profile.name.title()} {layout.store_id}",
                region=region,
                lead_time_days=LEAD_TIME_DAYS,
                delivery_weekdays=list(dealer.delivery_weekdays),
            )
        )
    skus = {sku.gtin: catalog_sku(sku, currency) for layout in layouts for sku in layout.skus}
    lanes = 0
    short: dict[str, str] = {}
    async with transaction(conn):
        await set_brand(conn, Brand(name=BRAND.name, currency=currency))
        for dealer in DEALERS:
            changes = DealerChanges(
                name=dealer.name,
                territory=list(dealer.regions),
                currency=currency,
                auto_approve_below_minor=dealer.auto_approve_below_minor,
            )
            await upsert_dealer(conn, dealer.dealer_id, changes)
        await upsert_skus(conn, sorted(skus.values(), key=lambda s: s.gtin))
        await upsert_stores(conn, stores)
        for layout in layouts:
            lanes_of_store = planogram_lanes(layout)
            lanes += len(lanes_of_store)
            await replace_planogram(conn, layout.store_id, lanes_of_store)
            await register_gateway(conn, f"gw-{layout.store_id}", layout.store_id)
        for dealer_id, served in by_dealer.items():
            gtin_short = short_sku(served)
            if gtin_short is not None:
                short[dealer_id] = gtin_short
            carried = sorted({sku.gtin for layout in served for sku in layout.skus})
            levels = [
                StockLevel(
                    gtin=gtin,
                    units=skus[gtin].case_pack
                    * (SHORT_CASES if gtin == gtin_short else STOCK_CASES),
                )
                for gtin in carried
            ]
            await set_dealer_stock(conn, dealer_id, levels)
    return DemoSeed(
        stores_by_dealer={d: [x.store_id for x in served] for d, served in by_dealer.items()},
        skus=len(skus),
        lanes=lanes,
        short_sku_by_dealer=short,
    )


def opening_shipment_ref(store_id: str) -> str:
    """The shipment a store's opening stock came in, as channel control's evidence names it."""
    return f"demo-opening-stock-{store_id}"


@dataclass(frozen=True, slots=True)
class StagedDiversion:
    """Units the brand shipped to one dealer that a store of the other dealer sells."""

    store_id: str
    gtin: str
    sold_by: str  # the store's own dealer
    shipped_to: str  # the dealer the brand shipped the units to

    def as_dict(self) -> dict[str, str]:
        return {
            "store_id": self.store_id,
            "gtin": self.gtin,
            "sold_by": self.sold_by,
            "shipped_to": self.shipped_to,
        }


def staged_diversion(layouts: Sequence[StoreLayout]) -> StagedDiversion | None:
    """The store and SKU of the demo's diversion: the fastest seller of any store (by
    expected demand), then the lowest store index and GTIN, so that every seeding of
    the same stores stages the same one and a demo sells it within its first hour."""
    ranked = [
        (-units, layout.store_index, gtin, layout)
        for layout in layouts
        for gtin, units in expected_units_by_sku(layout).items()
    ]
    if not ranked:
        return None
    _, _, gtin, layout = min(ranked, key=lambda r: r[:3])
    dealer, _ = dealer_for(layout.store_index)
    other = next(d for d in DEALERS if d.dealer_id != dealer.dealer_id)
    return StagedDiversion(layout.store_id, gtin, dealer.dealer_id, other.dealer_id)


@dataclass(frozen=True, slots=True)
class SerialSeed:
    """What seeding the serial shipments covered (the same on every run) and added."""

    serials: int  # the opening stock's serials of every store, recorded or already there
    new: int  # rows this seeding added
    diversion: StagedDiversion | None


async def seed_serial_shipments(
    conn: Connection,
    layouts: Sequence[StoreLayout],
    *,
    seed: int,
    shipped_at: datetime,
    demand: DemandParams | None = None,
) -> SerialSeed:
    """Record each store's opening stock as shipped to the store's dealer, except the
    :func:`staged_diversion`, which is recorded as shipped to the other dealer.

    The opening stock is what the simulator's store (same ``seed`` and demand
    parameters) holds when it starts: serials ``[0, n)`` of each SKU, which it
    sells first. Deliveries during a run are not recorded: their serials are
    not judged. One statement per store and SKU; a serial already recorded
    keeps its first shipment, so seeding twice adds nothing.
    """
    diversion = staged_diversion(layouts)
    staged = (diversion.store_id, diversion.gtin) if diversion is not None else None
    serials = new = 0
    async with transaction(conn):
        for layout in layouts:
            dealer, _ = dealer_for(layout.store_index)
            units = opening_units(layout, seed, demand or DemandParams())
            for k, sku in enumerate(layout.skus):
                n = int(units[k])
                if n == 0:
                    continue
                shipped_to = dealer.dealer_id
                if diversion is not None and (layout.store_id, sku.gtin) == staged:
                    shipped_to = diversion.shipped_to
                shipment = SerialShipment(
                    dealer_id=shipped_to,
                    gtin=sku.gtin,
                    serials=[serial_code(layout.store_index, i) for i in range(n)],
                    shipment_ref=opening_shipment_ref(layout.store_id),
                    shipped_at=shipped_at,
                )
                new += await record_serial_shipment(conn, shipment)
                serials += n
    return SerialSeed(serials=serials, new=new, diversion=diversion)


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """API keys issued now: each secret is shown this once."""

    operator: IssuedKey | None
    dealers: dict[str, IssuedKey]

    def as_dict(self) -> dict[str, str]:
        """Holder ("operator" or the dealer id) → the key to send."""
        keys = {dealer_id: key.api_key for dealer_id, key in self.dealers.items()}
        if self.operator is not None:
            keys = {"operator": self.operator.api_key, **keys}
        return keys


async def issue_demo_keys(conn: Connection, *, replace: bool) -> DemoKeys:
    """A demo key for the operator and for each demo dealer.

    ``replace=False`` issues keys only to holders without a live demo key, so
    that seeding twice issues nothing new. ``replace=True`` revokes the earlier
    demo keys first and issues fresh ones: the demo does that on every start,
    since the keys it printed last time are gone with its terminal.
    """
    holders: list[str | None] = [None, *(d.dealer_id for d in DEALERS)]
    async with transaction(conn):
        live = [k for k in await list_keys(conn) if k.label == KEY_LABEL and k.revoked_at is None]
        if replace:
            for key in live:
                await revoke_key(conn, key.key_id)
            live = []
        have = {key.dealer_id for key in live}
        issued = {
            holder: await issue_key(conn, holder, label=KEY_LABEL)
            for holder in holders
            if holder not in have
        }
    return DemoKeys(
        operator=issued.get(None),
        dealers={holder: key for holder, key in issued.items() if holder is not None},
    )


def expected_units_by_sku(layout: StoreLayout) -> dict[str, float]:
    """Mean demand per day of each SKU the store carries, summed over its lanes."""
    per_lane = expected_units_per_day(layout, DemandParams())
    per_sku = np.bincount(layout.lane_sku, weights=per_lane, minlength=len(layout.skus))
    return {sku.gtin: float(per_sku[k]) for k, sku in enumerate(layout.skus)}
