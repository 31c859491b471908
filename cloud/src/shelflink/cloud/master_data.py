"""Master data in PostgreSQL: typed reads and upserts of the brand, dealers, stores,
SKUs, planograms, dealer stock and serial shipments.

Every function takes an autocommit connection and runs in ``transaction(conn)``,
so a caller may group several into one commit. A ``dealer_id`` argument, where
there is one, restricts the read to that dealer's objects: the API passes the
caller's dealer, and an operator passes None.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg.errors
from psycopg.rows import class_row

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.master_data_models import (
    Brand,
    Dealer,
    DealerChanges,
    PlanogramLane,
    SerialShipment,
    ShippedSerial,
    Sku,
    SkuChanges,
    StockLevel,
    Store,
    StoreChanges,
    StoreUpsert,
)


class MasterDataError(ValueError):
    """A change the master data refuses; the message says why, in the user's terms."""


class UnknownReference(MasterDataError):
    """The change names a dealer, store or SKU that does not exist."""


class OutsideTerritory(MasterDataError):
    """A store's region is not in its dealer's territory."""


_DEALER = "dealer_id, name, territory, currency, auto_approve_below_minor, created_at"
_STORE = "store_id, dealer_id, name, region, lead_time_days, delivery_weekdays"
_SKU = (
    "gtin, name, case_pack, min_order_units, shelf_life_days, cold_chain,"
    " list_price_minor, min_resale_minor, currency"
)


async def get_brand(conn: Connection) -> Brand | None:
    """The brand, or None before an operator set it."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Brand)) as cur:
        await cur.execute("SELECT name, currency FROM brand")
        return await cur.fetchone()


async def set_brand(conn: Connection, brand: Brand) -> Brand:
    """Create or change the brand."""
    async with transaction(conn):
        await conn.execute(
            "INSERT INTO brand (name, currency) VALUES (%s, %s)"
            " ON CONFLICT (singleton) DO UPDATE SET name = excluded.name,"
            " currency = excluded.currency, updated_at = now()",
            (brand.name, brand.currency),
        )
    return brand


async def upsert_dealer(conn: Connection, dealer_id: str, changes: DealerChanges) -> Dealer:
    """Create a dealer or change one; its stores must stay inside its territory."""
    async with transaction(conn):
        await conn.execute(
            "INSERT INTO dealers (dealer_id, name, territory, currency, auto_approve_below_minor)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (dealer_id) DO UPDATE SET"
            " name = excluded.name, territory = excluded.territory,"
            " currency = excluded.currency,"
            " auto_approve_below_minor = excluded.auto_approve_below_minor, updated_at = now()",
            (
                dealer_id,
                changes.name,
                changes.territory,
                changes.currency,
                changes.auto_approve_below_minor,
            ),
        )
        cur = await conn.execute(
            "SELECT count(*) FROM stores WHERE dealer_id = %s AND NOT region = ANY(%s)",
            (dealer_id, changes.territory),
        )
        row = await cur.fetchone()
        if row is not None and row[0]:
            raise OutsideTerritory(
                f"{row[0]} of dealer {dealer_id}'s stores lie outside the new territory"
            )
        dealer = await get_dealer(conn, dealer_id)
    assert dealer is not None
    return dealer


async def get_dealer(conn: Connection, dealer_id: str) -> Dealer | None:
    """One dealer, or None."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Dealer)) as cur:
        await cur.execute(f"SELECT {_DEALER} FROM dealers WHERE dealer_id = %s", (dealer_id,))
        return await cur.fetchone()


async def list_dealers(conn: Connection, *, dealer_id: str | None = None) -> list[Dealer]:
    """Every dealer by id (only ``dealer_id`` itself when given)."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Dealer)) as cur:
        await cur.execute(
            f"SELECT {_DEALER} FROM dealers"
            " WHERE %(dealer)s::text IS NULL OR dealer_id = %(dealer)s ORDER BY dealer_id",
            {"dealer": dealer_id},
        )
        return await cur.fetchall()


async def upsert_stores(conn: Connection, stores: Sequence[StoreUpsert]) -> list[Store]:
    """Create or change stores, all or none; each must lie in its dealer's territory."""
    async with transaction(conn):
        for store in stores:
            await _check_territory(conn, store.store_id, store)
        try:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO stores (store_id, dealer_id, name, region, lead_time_days,"
                    " delivery_weekdays) VALUES (%s, %s, %s, %s, %s, %s::smallint[])"
                    " ON CONFLICT (store_id) DO UPDATE SET dealer_id = excluded.dealer_id,"
                    " name = excluded.name, region = excluded.region,"
                    " lead_time_days = excluded.lead_time_days,"
                    " delivery_weekdays = excluded.delivery_weekdays, updated_at = now()",
                    [
                        (
                            s.store_id,
                            s.dealer_id,
                            s.name,
                            s.region,
                            s.lead_time_days,
                            sorted(set(s.delivery_weekdays)),
                        )
                        for s in stores
                    ],
                )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise UnknownReference(_fk_detail(exc)) from exc
    return [Store(**s.model_dump()) for s in stores]


async def _check_territory(conn: Connection, store_id: str, store: StoreChanges) -> None:
    cur = await conn.execute(
        "SELECT territory FROM dealers WHERE dealer_id = %s", (store.dealer_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise UnknownReference(f"store {store_id}: no dealer {store.dealer_id}")
    if store.region not in row[0]:
        raise OutsideTerritory(
            f"store {store_id}: region {store.region} is outside dealer "
            f"{store.dealer_id}'s territory {row[0]}"
        )


async def get_store(
    conn: Connection, store_id: str, *, dealer_id: str | None = None
) -> Store | None:
    """One store, or None (also when it belongs to another dealer than ``dealer_id``)."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Store)) as cur:
        await cur.execute(
            f"SELECT {_STORE} FROM stores WHERE store_id = %(store)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"store": store_id, "dealer": dealer_id},
        )
        return await cur.fetchone()


async def list_stores(
    conn: Connection, *, dealer_id: str | None = None, after: str | None = None, limit: int = 100
) -> list[Store]:
    """Stores by id, after ``after`` (keyset), at most ``limit``."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Store)) as cur:
        await cur.execute(
            f"SELECT {_STORE} FROM stores"
            " WHERE (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)"
            " AND (%(after)s::text IS NULL OR store_id > %(after)s)"
            " ORDER BY store_id LIMIT %(limit)s",
            {"dealer": dealer_id, "after": after, "limit": limit},
        )
        return await cur.fetchall()


async def upsert_skus(conn: Connection, skus: Sequence[Sku]) -> list[Sku]:
    """Create or change SKUs of the catalog, all or none."""
    async with transaction(conn), conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO skus ({_SKU}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (gtin) DO UPDATE SET name = excluded.name,"
            " case_pack = excluded.case_pack, min_order_units = excluded.min_order_units,"
            " shelf_life_days = excluded.shelf_life_days, cold_chain = excluded.cold_chain,"
            " list_price_minor = excluded.list_price_minor,"
            " min_resale_minor = excluded.min_resale_minor, currency = excluded.currency,"
            " updated_at = now()",
            [
                (
                    s.gtin,
                    s.name,
                    s.case_pack,
                    s.min_order_units,
                    s.shelf_life_days,
                    s.cold_chain,
                    s.list_price_minor,
                    s.min_resale_minor,
                    s.currency,
                )
                for s in skus
            ],
        )
    return list(skus)


def sku_from_changes(gtin: str, changes: SkuChanges) -> Sku:
    """The SKU that a PUT on ``gtin`` describes."""
    return Sku(gtin=gtin, **changes.model_dump())


async def get_sku(conn: Connection, gtin: str) -> Sku | None:
    """One SKU, or None."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Sku)) as cur:
        await cur.execute(f"SELECT {_SKU} FROM skus WHERE gtin = %s", (gtin,))
        return await cur.fetchone()


async def get_skus(conn: Connection, gtins: Sequence[str]) -> dict[str, Sku]:
    """The SKUs among ``gtins`` that exist, by GTIN."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Sku)) as cur:
        await cur.execute(f"SELECT {_SKU} FROM skus WHERE gtin = ANY(%s)", (list(gtins),))
        return {sku.gtin: sku for sku in await cur.fetchall()}


async def list_skus(conn: Connection, *, after: str | None = None, limit: int = 100) -> list[Sku]:
    """The catalog by GTIN, after ``after`` (keyset), at most ``limit``."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Sku)) as cur:
        await cur.execute(
            f"SELECT {_SKU} FROM skus WHERE %(after)s::text IS NULL OR gtin > %(after)s"
            " ORDER BY gtin LIMIT %(limit)s",
            {"after": after, "limit": limit},
        )
        return await cur.fetchall()


async def replace_planogram(
    conn: Connection, store_id: str, lanes: Sequence[PlanogramLane]
) -> list[PlanogramLane]:
    """Make ``lanes`` the store's whole planogram (lanes not listed are removed)."""
    keys = {(lane.device, lane.lane) for lane in lanes}
    if len(keys) != len(lanes):
        raise MasterDataError("a (device, lane) appears twice in the planogram")
    async with transaction(conn):
        await conn.execute("DELETE FROM planograms WHERE store_id = %s", (store_id,))
        try:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO planograms (store_id, device, lane, gtin, capacity)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(store_id, x.device, x.lane, x.gtin, x.capacity) for x in lanes],
                )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise UnknownReference(_fk_detail(exc)) from exc
    return sorted(lanes, key=lambda x: (x.device, x.lane))


async def planogram(conn: Connection, store_id: str) -> list[PlanogramLane]:
    """The store's lanes by device and lane."""
    async with transaction(conn), conn.cursor(row_factory=class_row(PlanogramLane)) as cur:
        await cur.execute(
            "SELECT device, lane, gtin, capacity FROM planograms WHERE store_id = %s"
            " ORDER BY device, lane",
            (store_id,),
        )
        return await cur.fetchall()


async def set_dealer_stock(
    conn: Connection, dealer_id: str, levels: Sequence[StockLevel]
) -> list[StockLevel]:
    """Record what the dealer holds of the SKUs listed (others keep their level)."""
    async with transaction(conn):
        try:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO dealer_stock (dealer_id, gtin, units) VALUES (%s, %s, %s)"
                    " ON CONFLICT (dealer_id, gtin) DO UPDATE SET units = excluded.units,"
                    " updated_at = now()",
                    [(dealer_id, x.gtin, x.units) for x in levels],
                )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise UnknownReference(_fk_detail(exc)) from exc
        return await dealer_stock(conn, dealer_id)


async def dealer_stock(conn: Connection, dealer_id: str) -> list[StockLevel]:
    """The dealer's warehouse stock by GTIN."""
    async with transaction(conn), conn.cursor(row_factory=class_row(StockLevel)) as cur:
        await cur.execute(
            "SELECT gtin, units FROM dealer_stock WHERE dealer_id = %s ORDER BY gtin",
            (dealer_id,),
        )
        return await cur.fetchall()


async def record_serial_shipment(conn: Connection, shipment: SerialShipment) -> int:
    """Record which serials went to which dealer; returns how many were new.

    A serial recorded before keeps its first shipment: a repeated load is
    harmless, and a unit cannot be shipped twice.
    """
    async with transaction(conn):
        try:
            cur = await conn.execute(
                "INSERT INTO serial_shipments (gtin, serial, dealer_id, shipment_ref, shipped_at)"
                " SELECT %s, serial, %s, %s, %s FROM unnest(%s::text[]) AS serial"
                " ON CONFLICT (gtin, serial) DO NOTHING",
                (
                    shipment.gtin,
                    shipment.dealer_id,
                    shipment.shipment_ref,
                    shipment.shipped_at,
                    list(dict.fromkeys(shipment.serials)),
                ),
            )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise UnknownReference(_fk_detail(exc)) from exc
        return cur.rowcount


async def shipped_serial(
    conn: Connection, gtin: str, serial: str, *, dealer_id: str | None = None
) -> ShippedSerial | None:
    """Where a serialised unit was shipped, or None (also when to another dealer)."""
    async with transaction(conn), conn.cursor(row_factory=class_row(ShippedSerial)) as cur:
        await cur.execute(
            "SELECT gtin, serial, dealer_id, shipment_ref, shipped_at FROM serial_shipments"
            " WHERE gtin = %(gtin)s AND serial = %(serial)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"gtin": gtin, "serial": serial, "dealer": dealer_id},
        )
        return await cur.fetchone()


def _fk_detail(exc: psycopg.errors.ForeignKeyViolation) -> str:
    # PostgreSQL's detail names the key: 'Key (gtin)=(123) is not present in table "skus".'
    detail = exc.diag.message_detail
    return detail or "a referenced dealer, store or SKU does not exist"
