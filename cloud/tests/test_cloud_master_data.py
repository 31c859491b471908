"""Master data: territories hold, planograms are replaced whole, references exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from cloud.tests.test_cloud_api_harness import GTIN_MILK, GTIN_WATER, build_world
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import (
    MasterDataError,
    OutsideTerritory,
    UnknownReference,
    dealer_stock,
    get_brand,
    get_store,
    list_stores,
    planogram,
    record_serial_shipment,
    replace_planogram,
    set_dealer_stock,
    shipped_serial,
    upsert_dealer,
    upsert_stores,
)
from shelflink.cloud.master_data_models import (
    DealerChanges,
    PlanogramLane,
    SerialShipment,
    SkuChanges,
    StockLevel,
    StoreUpsert,
)


def store(store_id: str, dealer_id: str, region: str) -> StoreUpsert:
    return StoreUpsert(
        store_id=store_id, dealer_id=dealer_id, name=store_id, region=region,
        lead_time_days=1, delivery_weekdays=[5, 1, 1],
    )  # fmt: skip


async def test_stores_are_read_by_dealer_and_in_keyset_pages(db: Connection) -> None:
    await build_world(db)
    await upsert_stores(db, [store("s0003", "north", "N2")])
    assert (await get_store(db, "s0003")) is not None
    assert (await get_store(db, "s0003", dealer_id="south")) is None
    stored = await get_store(db, "s0003", dealer_id="north")
    assert stored is not None and stored.delivery_weekdays == [1, 5]
    first = await list_stores(db, dealer_id="north", limit=1)
    rest = await list_stores(db, dealer_id="north", after=first[-1].store_id)
    assert [s.store_id for s in first + rest] == ["s0001", "s0003"]
    assert await get_brand(db) is not None


async def test_a_store_outside_its_dealers_territory_is_refused(db: Connection) -> None:
    await build_world(db)
    with pytest.raises(OutsideTerritory, match="S1 is outside dealer north"):
        await upsert_stores(db, [store("s0003", "north", "N1"), store("s0004", "north", "S1")])
    assert await get_store(db, "s0003") is None  # all or none
    with pytest.raises(UnknownReference, match="no dealer west"):
        await upsert_stores(db, [store("s0005", "west", "W1")])


async def test_a_territory_cannot_shrink_under_a_store(db: Connection) -> None:
    await build_world(db)
    with pytest.raises(OutsideTerritory):
        await upsert_dealer(db, "north", DealerChanges(name="North", territory=["N2"]))
    dealer = await upsert_dealer(db, "north", DealerChanges(name="N", territory=["N1", "N9"]))
    assert dealer.territory == ["N1", "N9"]


async def test_a_planogram_is_replaced_whole(db: Connection) -> None:
    await build_world(db)
    lanes = [
        PlanogramLane(device="s0001-shelf-01", lane=1, gtin=GTIN_MILK, capacity=8),
        PlanogramLane(device="s0001-shelf-01", lane=0, gtin=GTIN_WATER, capacity=12),
    ]
    await replace_planogram(db, "s0001", lanes)
    await replace_planogram(db, "s0001", lanes[:1])
    assert await planogram(db, "s0001") == lanes[:1]
    with pytest.raises(MasterDataError, match="twice"):
        await replace_planogram(db, "s0001", [lanes[0], lanes[0]])
    unknown = PlanogramLane(device="d", lane=0, gtin="4000000000009", capacity=1)
    with pytest.raises(UnknownReference, match="4000000000009"):
        await replace_planogram(db, "s0001", [unknown])
    assert await planogram(db, "s0001") == lanes[:1]


async def test_dealer_stock_keeps_unlisted_levels(db: Connection) -> None:
    await build_world(db)
    await set_dealer_stock(db, "north", [StockLevel(gtin=GTIN_WATER, units=120)])
    levels = await set_dealer_stock(db, "north", [StockLevel(gtin=GTIN_MILK, units=30)])
    assert [(x.gtin, x.units) for x in levels] == [(GTIN_WATER, 120), (GTIN_MILK, 30)]
    assert await dealer_stock(db, "south") == []


async def test_a_serial_is_shipped_once(db: Connection) -> None:
    await build_world(db)
    at = datetime(2024, 1, 2, tzinfo=UTC)
    first = SerialShipment(
        dealer_id="north", gtin=GTIN_WATER, serials=["A1", "A2", "A2"], shipment_ref="sh-1",
        shipped_at=at,
    )  # fmt: skip
    assert await record_serial_shipment(db, first) == 2
    again = first.model_copy(update={"dealer_id": "south", "serials": ["A2", "A3"]})
    assert await record_serial_shipment(db, again) == 1
    found = await shipped_serial(db, GTIN_WATER, "A2")
    assert found is not None and (found.dealer_id, found.shipment_ref) == ("north", "sh-1")
    assert await shipped_serial(db, GTIN_WATER, "A2", dealer_id="south") is None


def test_a_minimum_order_is_whole_cases() -> None:
    with pytest.raises(ValidationError, match="multiple of case_pack"):
        SkuChanges(
            name="x", case_pack=6, min_order_units=8, list_price_minor=1, min_resale_minor=1,
            currency="EUR",
        )  # fmt: skip
