"""Migrations: applied once, in order, by one of several workers starting together."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from shelflink.cloud import migrations
from shelflink.cloud.database import connect
from shelflink.cloud.migrations import Migration, MigrationError, migrate, plan, storage_flavour

EXPECTED = [
    "0001_core",
    "0002_timeseries.plain",
    "0003_rollup_pending",
    "0004_dealers_orders",
    "0005_replenishment",
    "0006_webhooks",
    "0007_rate_limits",
]


async def test_migrate_applies_everything_once_and_then_nothing(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        assert await migrate(conn) == EXPECTED
        assert await migrate(conn) == []
        assert await storage_flavour(conn) == "plain"
        cur = await conn.execute("SELECT version, flavour FROM schema_migrations ORDER BY 1")
        assert await cur.fetchall() == [(v, "plain") for v in range(1, 8)]


async def test_workers_migrating_at_once_apply_each_migration_once(
    empty_database_url: str,
) -> None:
    conns = [await connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    applied = sorted(label for result in results for label in result)
    assert applied == EXPECTED
    async with await connect(empty_database_url) as conn:
        assert await migrate(conn) == []


async def test_an_edited_migration_is_refused(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await connect(empty_database_url) as conn:
        await migrate(conn)
        shipped = migrations.available_migrations()
        edited = [
            dataclasses.replace(m, sql=m.sql + "\n-- edited\n") if m.version == 1 else m
            for m in shipped
        ]
        monkeypatch.setattr(migrations, "available_migrations", lambda: edited)
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)


async def test_a_database_keeps_its_flavour(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        await migrate(conn, flavour="plain")
        with pytest.raises(MigrationError, match="migrated for plain"):
            await migrate(conn, flavour="timescale")


async def test_an_unmigrated_database_says_so(empty_database_url: str) -> None:
    async with await connect(empty_database_url) as conn:
        with pytest.raises(MigrationError, match="no schema"):
            await storage_flavour(conn)


def _m(version: int, flavour: str | None) -> Migration:
    return Migration(version, f"m{version}", flavour, "SELECT 1")  # type: ignore[arg-type]


def test_plan_picks_the_common_file_or_the_flavours_own() -> None:
    shipped = [_m(1, None), _m(2, "plain"), _m(2, "timescale"), _m(3, None)]
    assert [m.label for m in plan(shipped, "plain")] == ["0001_m1", "0002_m2.plain", "0003_m3"]
    assert [m.label for m in plan(shipped, "timescale")][1] == "0002_m2.timescale"


@pytest.mark.parametrize(
    "shipped",
    [
        [_m(1, None), _m(1, "plain")],  # a common file and a variant
        [_m(1, "timescale")],  # no plain variant
    ],
)
def test_plan_refuses_an_inconsistent_set(shipped: list[Migration]) -> None:
    with pytest.raises(MigrationError):
        plan(shipped, "plain")


def test_every_shipped_version_has_a_file_for_both_paths() -> None:
    shipped = migrations.available_migrations()
    for flavour in migrations.FLAVOURS:
        assert [m.version for m in plan(shipped, flavour)] == [1, 2, 3, 4, 5, 6, 7]
