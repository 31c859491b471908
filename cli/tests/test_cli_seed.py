"""``shelflink cloud seed --demo`` against a real database: the simulated stores' master
data, written once however often it runs, in the numbering the gateways use, with
keys that open the dealer API to each dealer's own stores only."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from shelflink.cli import seed_commands
from shelflink.cli.demo_api import dealer_api
from shelflink.cli.demo_history import history_days, history_rows, import_sales_history
from shelflink.cli.demo_seed import (
    DEALERS,
    SHORT_CASES,
    expected_units_by_sku,
    issue_demo_keys,
    planogram_lanes,
    seed_demo,
)
from shelflink.cli.store_configs import gateway_config, sim_layouts
from shelflink.cloud.database import connect

SEED = 5
SNAPSHOT = {
    "brand": "SELECT name, currency FROM brand",
    "dealers": "SELECT dealer_id, name, territory, currency, auto_approve_below_minor"
    " FROM dealers ORDER BY 1",
    "stores": "SELECT store_id, dealer_id, name, region, lead_time_days, delivery_weekdays"
    " FROM stores ORDER BY 1",
    "skus": "SELECT gtin, name, case_pack, min_order_units, shelf_life_days, cold_chain,"
    " list_price_minor, min_resale_minor, currency FROM skus ORDER BY 1",
    "planograms": "SELECT * FROM planograms ORDER BY 1, 2, 3",
    "dealer_stock": "SELECT dealer_id, gtin, units FROM dealer_stock ORDER BY 1, 2",
    "gateways": "SELECT gateway_id, store_id FROM gateways ORDER BY 1",
    "sales": "SELECT store_id, device, seq, ts, gtin, qty FROM sales ORDER BY 2, 4, 3",
    "keys": "SELECT key_id, dealer_id, label FROM api_keys WHERE revoked_at IS NULL ORDER BY 1",
    "serial_shipments": "SELECT gtin, dealer_id, shipment_ref, shipped_at, count(*),"
    " min(serial), max(serial) FROM serial_shipments GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3",
}


def seed(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """Run the command as ``shelflink cloud`` would, through its own subparser."""
    parser = argparse.ArgumentParser(prog="shelflink cloud")
    seed_commands.register(parser.add_subparsers())
    namespace = parser.parse_args(["seed", *args])
    code: int = namespace.handler(namespace)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT.items()}


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, migrated_database_url: str) -> str:
    monkeypatch.setenv("SHELFLINK_DATABASE_URL", migrated_database_url)
    return migrated_database_url


def test_seeding_twice_changes_nothing(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--demo", "--stores", "3", "--seed", str(SEED), "--history-days", "7")
    code, first = seed(capsys, *args)
    assert code == 0, first
    assert first["dealers"] == {"north-drinks": ["s0001", "s0003"], "south-wholesale": ["s0002"]}
    assert first["stores"] == 3 and first["skus"] > 0 and first["history_rows_new"] > 0
    assert set(first["api_keys"]) == {"operator", "north-drinks", "south-wholesale"}
    assert all(key.startswith("slk_") for key in first["api_keys"].values())
    before = snapshot(database)
    assert len(before["keys"]) == 3 and len(before["gateways"]) == 3
    assert len({row[2] for row in before["serial_shipments"]}) == 3  # each store's opening stock

    code, second = seed(capsys, *args)
    assert code == 0, second
    # Nothing new: no key (the first ones are still valid) and no history row.
    assert second["api_keys"] == {} and second["history_rows_new"] == 0
    assert {k: v for k, v in second.items() if k not in ("api_keys", "history_rows_new")} == {
        k: v for k, v in first.items() if k not in ("api_keys", "history_rows_new")
    }
    assert snapshot(database) == before


def test_seed_refuses_a_database_without_the_tables(
    monkeypatch: pytest.MonkeyPatch, empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHELFLINK_DATABASE_URL", empty_database_url)
    code, err = seed(capsys, "--demo", "--stores", "1")
    assert code == 2 and "shelflink cloud migrate" in err


async def test_planograms_number_lanes_as_the_gateways_do(
    migrated_database_url: str, tmp_path: Path
) -> None:
    layouts = sim_layouts(3, SEED)
    async with await connect(migrated_database_url) as conn:
        seeded = await seed_demo(conn, layouts)
        for layout in layouts:
            cur = await conn.execute(
                "SELECT device, lane, gtin, capacity FROM planograms WHERE store_id = %s",
                (layout.store_id,),
            )
            stored = set(await cur.fetchall())
            # The gateway's shelf_units and lane alerts name (device, lane index, gtin).
            config = gateway_config(layout, "mqtt://127.0.0.1:1883", tmp_path)
            gateway_lanes = {
                (device.id, i, lane.gtin, lane.capacity)
                for device in config.devices
                for i, lane in enumerate(device.lanes)
            }
            assert (
                stored
                == gateway_lanes
                == {(x.device, x.lane, x.gtin, x.capacity) for x in planogram_lanes(layout)}
            )
            cur = await conn.execute(
                "SELECT s.region = ANY(d.territory) FROM stores s JOIN dealers d USING (dealer_id)"
                " WHERE s.store_id = %s",
                (layout.store_id,),
            )
            assert await cur.fetchone() == (True,)
        # Each dealer is short of one SKU its stores carry, and holds plenty of the rest.
        for dealer in DEALERS:
            gtin = seeded.short_sku_by_dealer[dealer.dealer_id]
            cur = await conn.execute(
                "SELECT ds.gtin = %s, ds.units / k.case_pack FROM dealer_stock ds"
                " JOIN skus k USING (gtin) WHERE ds.dealer_id = %s",
                (gtin, dealer.dealer_id),
            )
            cases = {short: cases for short, cases in await cur.fetchall()}
            assert cases[True] == SHORT_CASES and cases[False] > SHORT_CASES


async def test_each_dealer_key_sees_its_own_stores_only(migrated_database_url: str) -> None:
    layouts = sim_layouts(3, SEED)
    async with await connect(migrated_database_url) as conn:
        seeded = await seed_demo(conn, layouts)
        keys = await issue_demo_keys(conn, replace=False)
        again = await issue_demo_keys(conn, replace=False)
        renewed = await issue_demo_keys(conn, replace=True)
    assert again.as_dict() == {}
    assert set(renewed.as_dict()) == set(keys.as_dict())
    async with dealer_api(migrated_database_url) as url, httpx.AsyncClient(base_url=url) as http:
        for dealer in DEALERS:
            old = keys.dealers[dealer.dealer_id].api_key
            response = await http.get("/api/v1/stores", headers={"X-API-Key": old})
            assert response.status_code == 401, "a replaced demo key still works"
            new = renewed.dealers[dealer.dealer_id].api_key
            response = await http.get("/api/v1/stores", headers={"X-API-Key": new})
            assert response.status_code == 200, response.text
            stores = [s["store_id"] for s in response.json()["items"]]
            assert stores == seeded.stores_by_dealer[dealer.dealer_id]
        assert renewed.operator is not None
        response = await http.get(
            "/api/v1/stores", headers={"Authorization": f"Bearer {renewed.operator.api_key}"}
        )
        assert [s["store_id"] for s in response.json()["items"]] == ["s0001", "s0002", "s0003"]
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_history_follows_the_simulated_demand() -> None:
    (layout,) = sim_layouts(1, SEED)
    days = history_days(datetime(2024, 3, 1, 9, 30, tzinfo=UTC), 28)
    assert (days[0].isoformat(), days[-1].isoformat()) == ("2024-02-02", "2024-02-29")
    rows = history_rows(layout, SEED, days, "EUR")
    assert rows == history_rows(layout, SEED, days, "EUR"), "the same days drew other sales"
    expected = expected_units_by_sku(layout)
    sold: dict[str, int] = {}
    for row in rows:
        sold[row[4]] = sold.get(row[4], 0) + row[5]
    mean = np.array([expected[g] for g in expected]) * len(days)
    got = np.array([sold.get(g, 0) for g in expected])
    # Poisson totals: the store's total is within 5 sigma of its expectation.
    assert abs(got.sum() - mean.sum()) < 5 * np.sqrt(mean.sum())
    assert all(row[3].hour == 12 and row[8].startswith("history-") for row in rows)


async def test_history_is_imported_once(migrated_database_url: str) -> None:
    layouts = sim_layouts(2, SEED)
    until = datetime(2024, 3, 1, tzinfo=UTC)
    async with await connect(migrated_database_url) as conn:
        await seed_demo(conn, layouts)
        first = await import_sales_history(conn, layouts, seed=SEED, until=until, days=3)
        again = await import_sales_history(conn, layouts[:1], seed=SEED, until=until, days=3)
        assert first > 0 and again == 0
        cur = await conn.execute("SELECT count(*), count(DISTINCT device) FROM sales")
        assert await cur.fetchone() == (first, 2)
