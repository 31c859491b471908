"""Retention keeps itself: an ingest worker drops old day partitions with no command run,
two rounds at once apply it once, and an interval of 0 schedules nothing."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import psycopg
import pytest

from conftest import MQTT_URL_ENV
from shelflink.cloud.ingest import IngestOptions, IngestWorker, running
from shelflink.cloud.partitions import DAY_MS, ensure_partitions, partition_name
from shelflink.cloud.retention_schedule import (
    RETENTION_LOCK,
    TASK_NAME,
    RetentionStatus,
    retention_round,
    scheduled_retention,
)

Conn = psycopg.AsyncConnection[Any]
TODAY = int(time.time() * 1000) // DAY_MS
KEEP_DAYS = 7


async def exists(conn: Conn, name: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = await cur.fetchone()
    return row is not None and bool(row[0])


async def until(check: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - the database has no event to wait on
            await asyncio.sleep(0.05)


async def old_day(db: Conn, days_ago: int) -> str:
    """A day partition of shelf readings ``days_ago`` days back (and today's)."""
    name = partition_name("shelf_readings", TODAY - days_ago)
    assert name in await ensure_partitions(db, {"shelf_readings": [TODAY - days_ago]})
    return name


async def test_an_ingest_worker_drops_old_days_by_itself(
    mqtt_url: str, migrated_database_url: str, db: Conn
) -> None:
    first, kept = await old_day(db, 10), await old_day(db, KEEP_DAYS - 1)
    # Without a configured broker the fixture runs the embedded one (MQTT 3.1.1 only).
    shared = None if os.environ.get(MQTT_URL_ENV) else False
    options = IngestOptions(
        worker_id=f"t-{uuid.uuid4().hex[:8]}", shared=shared, retention_every_s=0.2,
        retention_first_after_s=0.0, retention_days=KEEP_DAYS,
    )  # fmt: skip
    worker = IngestWorker(mqtt_url, migrated_database_url, options)
    status = worker.counters.retention
    async with running(worker):
        await until(lambda: _gone(db, first))
        # Periodic, not once: a day that turns up later goes at a later round.
        applied = status.rounds_applied
        second = await old_day(db, 12)
        await until(lambda: _gone(db, second))
        assert status.rounds_applied > applied
        assert status.next_round_at is not None
    assert status.next_round_at is None, "the schedule stops with the worker"
    assert await exists(db, kept)
    assert await exists(db, partition_name("shelf_readings", TODAY))
    assert status.partitions_dropped == 2
    assert status.rounds_failed == 0 and status.last_error is None
    assert status.last_applied_at is not None


async def _gone(db: Conn, name: str) -> bool:
    return not await exists(db, name)


async def test_two_rounds_at_once_apply_retention_once(
    migrated_database_url: str, db: Conn
) -> None:
    old = await old_day(db, 10)
    status = RetentionStatus()

    async def round_() -> list[str] | None:
        return await retention_round(
            migrated_database_url, KEEP_DAYS, status, application_name="t-retention"
        )

    async def lock_held() -> bool:
        cur = await db.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 2"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            RETENTION_LOCK,
        )
        row = await cur.fetchone()
        return row == (1,)

    # A reader of the old day holds the first round inside its drop, lock taken.
    async with db.transaction():
        await db.execute(f'LOCK TABLE "{old}" IN ACCESS SHARE MODE')
        first = asyncio.create_task(round_())
        await until(lock_held)
        assert await round_() is None, "the second round skips while the first holds the lock"
        assert status.rounds_skipped == 1 and status.rounds_applied == 0
    assert old in (await first or [])
    assert status.rounds_applied == 1 and status.rounds_skipped == 1
    assert not await exists(db, old)
    assert not await lock_held(), "the lock goes with the round's connection"


async def test_an_interval_of_zero_schedules_nothing(migrated_database_url: str, db: Conn) -> None:
    old = await old_day(db, 10)
    status = RetentionStatus()
    async with scheduled_retention(
        migrated_database_url, status, every_s=0, first_after_s=0, days=KEEP_DAYS,
        application_name="t-retention",
    ):  # fmt: skip
        await asyncio.sleep(0)
        assert not any(t.get_name() == TASK_NAME for t in asyncio.all_tasks())
    assert status == RetentionStatus()
    assert await exists(db, old)
    with pytest.raises(ValueError):
        IngestOptions(retention_every_s=-1)
