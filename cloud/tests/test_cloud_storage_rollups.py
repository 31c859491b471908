"""Rollups folded after the commit: every reading exactly once, replays and concurrent folders."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from shelflink.cloud.database import connect
from shelflink.cloud.rollups import fold_all_rollups, fold_rollups
from shelflink.cloud.writer import commit_batches
from shelflink.device.proto import batch_pb2 as pb

Conn = psycopg.AsyncConnection[Any]
HOUR_MS = 3_600_000
HOUR = (int(time.time() * 1000) // HOUR_MS - 2) * HOUR_MS  # a whole UTC hour, two hours ago


def shelf(device: str, seq: int, grams: list[float]) -> pb.ShelfReading:
    return pb.ShelfReading(device=device, seq=seq, ts=HOUR + seq * 60_000, grams=grams, board_c=20)


def fridge(device: str, seq: int, cabinet_c: float) -> pb.FridgeReading:
    return pb.FridgeReading(
        device=device, seq=seq, ts=HOUR + seq * 60_000, cabinet_c=cabinet_c, evaporator_c=-10,
        door_open=seq % 2 == 0,
    )  # fmt: skip


def batch(seq: int, **rows: Any) -> pb.Batch:
    return pb.Batch(version=1, store_id="store-1", gateway_id="gw-1", batch_seq=seq, **rows)


async def rows(conn: Conn, sql: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql.encode())
    return await cur.fetchall()


LANE_HOUR = "SELECT device, lane, n, sum_grams, last_seq FROM shelf_lane_hour ORDER BY 1, 2"
FRIDGE_HOUR = "SELECT device, n, sum_cabinet_c, door_open_n FROM fridge_hour ORDER BY 1"
PENDING = "SELECT gateway_id, batch_seq FROM rollup_pending ORDER BY 1, 2"


async def test_the_commit_leaves_the_rollups_to_the_fold(db: Conn) -> None:
    [outcome] = await commit_batches(
        db, [(batch(1, shelf=[shelf("s", 1, [1.0, 2.0])], fridge=[fridge("f", 1, 4.0)]), "gw-1")]
    )
    assert (outcome.rows_new, outcome.rows_duplicate) == (2, 0)
    assert await rows(db, LANE_HOUR) == []
    assert await rows(db, PENDING) == [("gw-1", 1)]
    assert await fold_rollups(db) == 1
    assert await rows(db, PENDING) == []
    assert await rows(db, LANE_HOUR) == [("s", 0, 1, 1, 1), ("s", 1, 1, 2, 1)]
    assert await rows(db, FRIDGE_HOUR) == [("f", 1, 4, 0)]
    assert await fold_rollups(db) == 0


async def test_a_batch_replayed_after_folding_never_counts_twice(db: Conn) -> None:
    readings = [shelf("s", seq, [float(seq)]) for seq in range(1, 4)]
    fridges = [fridge("f", seq, 3.5) for seq in range(1, 4)]
    await commit_batches(db, [(batch(1, shelf=readings, fridge=fridges), "gw-1")])
    assert await fold_all_rollups(db) == 1
    lanes, fridge_hour = await rows(db, LANE_HOUR), await rows(db, FRIDGE_HOUR)
    assert lanes == [("s", 0, 3, 6, 3)]
    assert fridge_hour == [("f", 3, 10.5, 1)]

    # The same batch again (answered from `batches`), then its rows under new
    # batch numbers (all duplicates), then a batch with one new reading among them.
    [again] = await commit_batches(db, [(batch(1, shelf=readings, fridge=fridges), "gw-1")])
    assert again.already_committed
    [renumbered] = await commit_batches(db, [(batch(2, shelf=readings, fridge=fridges), "gw-1")])
    assert (renumbered.rows_new, renumbered.rows_duplicate) == (0, 6)
    assert await rows(db, PENDING) == []  # no new readings: nothing to fold
    [mixed] = await commit_batches(
        db, [(batch(3, shelf=[*readings, shelf("s", 4, [4.0])], fridge=fridges), "gw-1")]
    )
    assert (mixed.rows_new, mixed.rows_duplicate) == (1, 6)
    assert await fold_all_rollups(db) == 1
    assert await fold_all_rollups(db) == 0
    assert await rows(db, LANE_HOUR) == [("s", 0, 4, 10, 4)]
    assert await rows(db, FRIDGE_HOUR) == fridge_hour


async def test_a_fold_that_fails_leaves_its_batches_pending(db: Conn) -> None:
    await commit_batches(db, [(batch(1, shelf=[shelf("s", 1, [5.0])]), "gw-1")])
    try:
        async with db.transaction():
            assert await fold_rollups(db) == 1
            raise RuntimeError("the worker dies mid-fold")
    except RuntimeError:
        pass
    assert await rows(db, LANE_HOUR) == []
    assert await rows(db, PENDING) == [("gw-1", 1)]
    assert await fold_all_rollups(db) == 1
    assert await rows(db, LANE_HOUR) == [("s", 0, 1, 5, 1)]


async def commit_one(url: str, seqs: range, device: str | None = None) -> None:
    """One batch per seq with a shelf and a fridge reading (devices per batch unless named)."""
    async with await connect(url) as conn:
        for n in seqs:
            s, f = (device, device) if device else (f"s{n}", f"f{n}")
            await commit_batches(
                conn,
                [(batch(n, shelf=[shelf(s, n, [float(n), 1.0])],
                        fridge=[fridge(f, n, float(n))]), "gw-1")],
            )  # fmt: skip


async def test_a_batch_being_folded_is_skipped_not_waited_for(migrated_database_url: str) -> None:
    await commit_one(migrated_database_url, range(1, 11))
    async with (
        await connect(migrated_database_url) as holder,
        await connect(migrated_database_url) as other,
    ):
        async with holder.transaction():
            assert await fold_rollups(holder, limit_batches=1) == 1
            # Each batch has devices of its own: no rollup row is shared, no wait.
            assert await fold_rollups(other, limit_batches=100) == 9
            assert await fold_rollups(other, limit_batches=100) == 0
        assert await fold_rollups(other) == 0
        cur = await other.execute("SELECT count(*), sum(n) FROM shelf_lane_minute")
        assert await cur.fetchone() == (20, 20)


async def test_concurrent_folders_fold_each_batch_once(migrated_database_url: str) -> None:
    # All batches feed the same hour buckets, so the folders contend for rows.
    await commit_one(migrated_database_url, range(1, 41), device="d")
    conns = [await connect(migrated_database_url) for _ in range(3)]
    try:
        folded = await asyncio.gather(*(fold_all_rollups(c, limit_batches=1) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sum(folded) == 40
    async with await connect(migrated_database_url) as conn:
        assert await rows(conn, PENDING) == []
        assert await rows(conn, LANE_HOUR) == [
            ("d", 0, 40, sum(range(1, 41)), 40),
            ("d", 1, 40, 40, 40),
        ]
        cur = await conn.execute(
            "SELECT sum(n), sum(sum_cabinet_c) FROM fridge_minute WHERE device = 'd'"
        )
        assert await cur.fetchone() == (40, sum(range(1, 41)))
