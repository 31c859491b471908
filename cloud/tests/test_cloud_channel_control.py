"""Channel control against a real database: diversion and price alerts with their
evidence, visible to the right dealers, and rescans that add nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.tests.test_cloud_api_harness import api_client, auth
from cloud.tests.test_cloud_replenishment_world import (
    MILK,
    WATER,
    add_sales,
    build_world,
    scalar,
)
from shelflink.cloud.api_keys import issue_key
from shelflink.cloud.channel_control import OVERLAP, scan_channel
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import record_serial_shipment
from shelflink.cloud.master_data_models import SerialShipment

SHIPPED_AT = datetime(2024, 5, 1, tzinfo=UTC)


async def _ship(db: Connection, dealer: str, gtin: str, serials: list[str]) -> None:
    await record_serial_shipment(
        db,
        SerialShipment(
            dealer_id=dealer, gtin=gtin, serials=serials, shipment_ref=f"ship-{dealer}",
            shipped_at=SHIPPED_AT,
        ),
    )  # fmt: skip


async def test_a_serial_sold_outside_its_dealer_alerts_both_dealers(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    await _ship(db, "south", WATER, ["W-1", "W-2"])
    await _ship(db, "north", WATER, ["W-3"])
    sold_at = datetime.now(UTC) - timedelta(hours=1)
    # W-1 went to south and sells in north's n1: diverted. W-3 sells at home.
    # W-9 was never shipped by the brand: not a diversion of ours to judge.
    await add_sales(db, "n1", [(sold_at, WATER, "W-1", 99), (sold_at, WATER, "W-3", 99),
                               (sold_at, WATER, "W-9", 99)])  # fmt: skip

    scan = await scan_channel(db)
    assert (scan.sales_scanned, scan.diversion_alerts, scan.price_alerts) == (3, 2, 0)
    cur = await db.execute(
        "SELECT dealer_id, store_id, severity, evidence FROM alerts WHERE kind = 'diversion'"
        " ORDER BY dealer_id"
    )
    rows = await cur.fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("north", "n1", "warning"),
        ("south", "n1", "warning"),
    ]
    evidence = rows[0][3]
    assert evidence["sale"]["serial"] == "W-1" and evidence["sale"]["gtin"] == WATER
    assert evidence["sale"]["store_id"] == "n1" and evidence["sale"]["device"] == "till-n1"
    assert datetime.fromisoformat(evidence["sale"]["ts"]) == sold_at
    assert (evidence["sold_by_dealer"], evidence["shipped_to_dealer"]) == ("north", "south")
    assert evidence["shipment_ref"] == "ship-south"
    assert {r[3]["this_dealer_is"] for r in rows} == {"sold_by", "shipped_to"}

    # Each dealer sees its alert through the API; the operator sees both.
    south_key = (await issue_key(db, "south")).api_key
    operator_key = (await issue_key(db, None)).api_key
    async with api_client(migrated_database_url) as (client, _):
        south = (await client.get("/api/v1/alerts", headers=auth(south_key))).json()
        everyone = (await client.get("/api/v1/alerts", headers=auth(operator_key))).json()
        # Filters: by kind and by store, and an unknown kind is a clear 422.
        diversions = await client.get(
            "/api/v1/alerts", params={"kind": "diversion", "store_id": "n1"},
            headers=auth(operator_key),
        )  # fmt: skip
        prices = await client.get("/api/v1/alerts?kind=price", headers=auth(operator_key))
        elsewhere = await client.get("/api/v1/alerts?store_id=s1", headers=auth(operator_key))
        unknown = await client.get("/api/v1/alerts?kind=theft", headers=auth(operator_key))
    assert [(a["kind"], a["dealer_id"]) for a in south["items"]] == [("diversion", "south")]
    assert len(everyone["items"]) == 2
    assert len(diversions.json()["items"]) == 2
    assert prices.json()["items"] == [] and elsewhere.json()["items"] == []
    assert unknown.status_code == 422


async def test_a_sale_below_the_minimum_resale_price_alerts_the_stores_dealer(
    db: Connection,
) -> None:
    await build_world(db)
    sold_at = datetime.now(UTC) - timedelta(minutes=30)
    # Water's minimum is 59, milk's 119.
    await add_sales(db, "s1", [(sold_at, WATER, None, 50), (sold_at, WATER, None, 59),
                               (sold_at, MILK, None, 118)])  # fmt: skip
    scan = await scan_channel(db)
    assert (scan.diversion_alerts, scan.price_alerts) == (0, 2)
    cur = await db.execute(
        "SELECT dealer_id, store_id, evidence FROM alerts WHERE kind = 'price'"
        " ORDER BY evidence -> 'sale' ->> 'gtin'"
    )
    rows = await cur.fetchall()
    assert [(r[0], r[1]) for r in rows] == [("south", "s1"), ("south", "s1")]
    water, milk = rows[0][2], rows[1][2]
    assert (water["sale"]["unit_price_minor"], water["min_resale_minor"]) == (50, 59)
    assert water["below_by_minor"] == 9 and water["sale"]["receipt_id"].startswith("r")
    assert (milk["sale"]["gtin"], milk["below_by_minor"]) == (MILK, 1)


async def test_rescans_create_no_duplicates_and_scans_are_incremental(db: Connection) -> None:
    await build_world(db)
    await _ship(db, "north", WATER, ["W-1"])
    sold_at = datetime.now(UTC) - timedelta(hours=1)
    await add_sales(db, "s1", [(sold_at, WATER, "W-1", 10)])

    first = await scan_channel(db)
    assert first.scanned_from is None  # the first scan reads every sale
    assert (first.diversion_alerts, first.price_alerts) == (2, 1)

    second = await scan_channel(db)
    assert second.scanned_from == first.scanned_to - OVERLAP
    # The overlap reads the same sale again: no new alert.
    assert (second.sales_scanned, second.diversion_alerts, second.price_alerts) == (1, 0, 0)
    # So does a full rescan from the beginning of time.
    full = await scan_channel(db, since=datetime(2000, 1, 1, tzinfo=UTC))
    assert (full.sales_scanned, full.diversion_alerts, full.price_alerts) == (1, 0, 0)
    assert await scalar(db, "SELECT count(*) FROM alerts") == 3

    # A sale that arrives later, with an old event time (a replayed outage), is
    # found by its arrival.
    await add_sales(db, "s1", [(sold_at - timedelta(days=5), WATER, None, 20)])
    later = await scan_channel(db)
    assert (later.sales_scanned, later.price_alerts) == (2, 1)
    assert await scalar(db, "SELECT count(*) FROM channel_scans") == 4
