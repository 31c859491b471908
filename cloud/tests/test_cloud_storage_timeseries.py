"""Day partitions on demand, rollups that match the raw rows exactly, retention by partition."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflink.cloud.database import connect
from shelflink.cloud.partitions import (
    DAY_MS,
    apply_retention,
    day_start,
    ensure_partitions,
    partition_name,
)
from shelflink.cloud.rollups import fold_all_rollups, fold_rollups
from shelflink.cloud.writer import commit_batches
from shelflink.device.proto import batch_pb2 as pb

Conn = psycopg.AsyncConnection[Any]
NOW_MS = int(time.time() * 1000)
TODAY = NOW_MS // DAY_MS
HOUR_MS = 3_600_000


def shelf(device: str, seq: int, ts: int, grams: list[float | None]) -> pb.ShelfReading:
    return pb.ShelfReading(
        device=device,
        seq=seq,
        ts=ts,
        grams=[0.0 if g is None else g for g in grams],
        missing_mask=sum(1 << lane for lane, g in enumerate(grams) if g is None),
        board_c=20.0,
    )


def fridge(device: str, seq: int, ts: int, cabinet_c: float = 4.0) -> pb.FridgeReading:
    return pb.FridgeReading(
        device=device, seq=seq, ts=ts, cabinet_c=cabinet_c, evaporator_c=-10.0,
        door_open=seq % 3 == 0, compressor_on=seq % 2 == 0,
    )  # fmt: skip


def batch(seq: int, **rows: Any) -> pb.Batch:
    return pb.Batch(version=1, store_id="store-1", gateway_id="gw-1", batch_seq=seq, **rows)


async def partition_of(conn: Conn, table: str, device: str, seq: int) -> str:
    cur = await conn.execute(
        f"SELECT tableoid::regclass::text FROM {table} WHERE device = %s AND seq = %s".encode(),
        (device, seq),
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


# -- partitions ----------------------------------------------------------------------------


async def test_partitions_are_created_for_the_days_a_batch_touches(db: Conn) -> None:
    three_days_ago = (TODAY - 3) * DAY_MS + 1_000
    await commit_batches(
        db,
        [(batch(1, shelf=[shelf("s", 1, three_days_ago, [1.0]), shelf("s", 2, NOW_MS, [2.0])],
                fridge=[fridge("f", 1, three_days_ago)]), "gw-1")],
    )  # fmt: skip
    assert await fold_rollups(db) == 1  # the commit made the rollups' partitions too
    assert await partition_of(db, "shelf_readings", "s", 1) == partition_name(
        "shelf_readings", TODAY - 3
    )
    assert await partition_of(db, "shelf_readings", "s", 2) == partition_name(
        "shelf_readings", TODAY
    )
    assert await partition_of(db, "fridge_readings", "f", 1) == partition_name(
        "fridge_readings", TODAY - 3
    )
    cur = await db.execute(
        "SELECT tableoid::regclass::text FROM shelf_lane_minute WHERE device = 's' ORDER BY bucket"
    )
    assert [r[0] for r in await cur.fetchall()] == [
        partition_name("shelf_lane_minute", TODAY - 3),
        partition_name("shelf_lane_minute", TODAY),
    ]
    # Tomorrow's partition is made ahead, so midnight is not a race between workers.
    cur = await db.execute("SELECT to_regclass(%s)", (partition_name("shelf_readings", TODAY + 1),))
    assert (await cur.fetchone()) == (partition_name("shelf_readings", TODAY + 1),)


async def test_broken_clocks_land_in_the_default_partition(db: Conn) -> None:
    far_future = (TODAY + 40) * DAY_MS
    await commit_batches(
        db,
        [(batch(1, shelf=[shelf("s", 1, 5_000, [1.0]), shelf("s", 2, far_future, [1.0])]), "gw-1")],
    )
    assert await partition_of(db, "shelf_readings", "s", 1) == "shelf_readings_default"
    assert await partition_of(db, "shelf_readings", "s", 2) == "shelf_readings_default"
    cur = await db.execute(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'shelf_readings_p1970%'"
    )
    assert await cur.fetchone() == (0,)


async def test_a_new_partition_takes_its_days_rows_out_of_default(db: Conn) -> None:
    day = TODAY - 5
    await db.execute(
        "INSERT INTO shelf_readings_default (store_id, device, seq, ts, grams, board_c)"
        " VALUES ('store-1', 's', 1, %s, '{1}', 20)",
        (day_start(day),),
    )
    created = await ensure_partitions(db, {"shelf_readings": [day]})
    assert partition_name("shelf_readings", day) in created
    assert await partition_of(db, "shelf_readings", "s", 1) == partition_name("shelf_readings", day)
    assert await ensure_partitions(db, {"shelf_readings": [day]}) == []


# -- rollups -------------------------------------------------------------------------------

LANE_ROLLUP = """
SELECT store_id, device, lane, bucket, n, sum_grams, min_grams, max_grams,
       last_ts, last_seq, last_grams
FROM {table} WHERE device LIKE %(prefix)s ORDER BY device, lane, bucket
"""

# An independent formulation: buckets from epoch arithmetic, "last" by sorting.
LANE_RECOMPUTED = """
WITH lanes AS (
    SELECT store_id, device, (u.i - 1)::smallint AS lane, ts, seq, u.g,
           to_timestamp(floor(extract(epoch FROM ts) / {seconds}) * {seconds}) AS bucket
    FROM shelf_readings, unnest(grams) WITH ORDINALITY AS u(g, i)
    WHERE device LIKE %(prefix)s AND u.g IS NOT NULL
), agg AS (
    SELECT device, lane, bucket, min(store_id) AS store_id, count(*)::integer AS n,
           sum(g::float8::numeric) AS s, min(g) AS lo, max(g) AS hi
    FROM lanes GROUP BY device, lane, bucket
), latest AS (
    SELECT DISTINCT ON (device, lane, bucket) device, lane, bucket, ts, seq, g
    FROM lanes ORDER BY device, lane, bucket, ts DESC, seq DESC
)
SELECT agg.store_id, device, lane, bucket, n, s, lo, hi, latest.ts, latest.seq, latest.g
FROM agg JOIN latest USING (device, lane, bucket) ORDER BY device, lane, bucket
"""

FRIDGE_ROLLUP = """
SELECT store_id, device, bucket, n, sum_cabinet_c, min_cabinet_c, max_cabinet_c, door_open_n,
       compressor_on_n, avg_cabinet_c, compressor_on_share
FROM {table} WHERE device LIKE %(prefix)s ORDER BY device, bucket
"""

FRIDGE_RECOMPUTED = """
SELECT min(store_id), device,
       to_timestamp(floor(extract(epoch FROM ts) / {seconds}) * {seconds}) AS bucket,
       count(*)::integer, sum(cabinet_c::float8::numeric), min(cabinet_c), max(cabinet_c),
       (count(*) FILTER (WHERE door_open))::integer,
       (count(*) FILTER (WHERE compressor_on))::integer,
       (sum(cabinet_c::float8::numeric) / count(*))::float8,
       (count(*) FILTER (WHERE compressor_on))::float8 / count(*)
FROM fridge_readings WHERE device LIKE %(prefix)s
GROUP BY device, bucket ORDER BY device, bucket
"""


async def assert_rollups_match_raw_rows(conn: Conn, prefix: str) -> None:
    params = {"prefix": f"{prefix}%"}
    checks = [
        (LANE_ROLLUP, LANE_RECOMPUTED, "shelf_lane_minute", 60),
        (LANE_ROLLUP, LANE_RECOMPUTED, "shelf_lane_hour", 3600),
        (FRIDGE_ROLLUP, FRIDGE_RECOMPUTED, "fridge_minute", 60),
        (FRIDGE_ROLLUP, FRIDGE_RECOMPUTED, "fridge_hour", 3600),
    ]
    for stored_sql, recomputed_sql, table, seconds in checks:
        cur = await conn.execute(stored_sql.format(table=table).encode(), params)
        stored = await cur.fetchall()
        cur = await conn.execute(recomputed_sql.format(seconds=seconds).encode(), params)
        assert stored == await cur.fetchall(), table
        assert stored, f"{table} is empty: the example tests nothing"


readings_st = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),  # device
        st.integers(0, 50),  # seq
        st.integers(0, 3 * 3_600),  # seconds after a start, across hours
        st.lists(
            st.one_of(st.none(), st.floats(-1_000, 100_000, width=32)), min_size=3, max_size=3
        ),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda r: (r[0], r[1]),
)


@given(
    readings=readings_st,
    fridge_temps=st.lists(st.floats(-5, 15, width=32), min_size=1, max_size=20),
    data=st.data(),
)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_rollups_equal_a_recomputation_after_replays(
    migrated_database_url: str,
    readings: list[tuple[str, int, int, list[float | None]]],
    fridge_temps: list[float],
    data: Any,
) -> None:
    prefix = uuid.uuid4().hex[:8]
    start = (TODAY - 1) * DAY_MS + 22 * HOUR_MS  # crosses midnight into today
    shelf_rows = [
        shelf(f"{prefix}-{d}", seq, start + s * 1000, grams) for d, seq, s, grams in readings
    ]
    # Same timestamp, different seq: the greater seq is the last.
    shelf_rows.append(shelf(f"{prefix}-a", 1000, start, [1.0, 2.0, 3.0]))
    shelf_rows.append(shelf(f"{prefix}-a", 1001, start, [4.0, None, 6.0]))
    fridge_rows = [
        fridge(f"{prefix}-f", i, start + i * 20_000, t) for i, t in enumerate(fridge_temps)
    ]
    batches = [batch(1, shelf=shelf_rows, fridge=fridge_rows)]
    for n in range(2, data.draw(st.integers(2, 5))):
        batches.append(
            batch(n, shelf=data.draw(st.lists(st.sampled_from(shelf_rows), max_size=10)),
                  fridge=data.draw(st.lists(st.sampled_from(fridge_rows), max_size=5)))
        )  # fmt: skip
    order = data.draw(st.permutations(batches + data.draw(st.lists(st.sampled_from(batches)))))
    # Fold now and then between commits (a replay may come after its batch was folded).
    folds = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))

    async def scenario() -> None:
        async with await connect(migrated_database_url) as conn:
            # Buckets are UTC whatever the session's zone (Nepal is +05:45).
            await conn.execute("SET TIME ZONE 'Asia/Kathmandu'")
            gateway = f"gw-{prefix}"
            for item, fold in zip(order, folds, strict=True):
                await commit_batches(conn, [(item, gateway)])
                if fold:
                    await fold_rollups(conn, limit_batches=1)
            await fold_all_rollups(conn)
            await conn.execute("SET TIME ZONE 'UTC'")
            await assert_rollups_match_raw_rows(conn, prefix)

    asyncio.run(scenario())


async def test_missing_lanes_are_not_counted(db: Conn) -> None:
    minute = (NOW_MS // 60_000) * 60_000
    rows = [
        shelf("s", 1, minute + 1_000, [10.0, None]),
        shelf("s", 2, minute + 2_000, [20.0, None]),
    ]
    await commit_batches(db, [(batch(1, shelf=rows), "gw-1")])
    assert await fold_rollups(db) == 1
    cur = await db.execute(
        "SELECT lane, n, sum_grams, min_grams, max_grams, last_seq, last_grams"
        " FROM shelf_lane_minute ORDER BY lane"
    )
    assert await cur.fetchall() == [(0, 2, 30, 10.0, 20.0, 2, 20.0)]


# -- retention -----------------------------------------------------------------------------


async def test_retention_drops_old_day_partitions_only(db: Conn) -> None:
    days = {"old": TODAY - 10, "kept": TODAY - 5, "today": TODAY}
    rows = [shelf("s", i, d * DAY_MS + HOUR_MS, [float(i)]) for i, d in enumerate(days.values())]
    rows.append(shelf("s", 10, 5_000, [1.0]))  # 1970: in DEFAULT, and older than anything
    rows.append(shelf("s", 11, (TODAY + 40) * DAY_MS, [1.0]))  # the future: in DEFAULT, kept
    fridges = [fridge("f", i, d * DAY_MS + HOUR_MS) for i, d in enumerate(days.values())]
    await commit_batches(db, [(batch(1, shelf=rows, fridge=fridges), "gw-1")])
    await fold_all_rollups(db)

    dropped = await apply_retention(db, 7)
    assert sorted(dropped) == sorted(
        partition_name(table, days["old"])
        for table in ("shelf_readings", "shelf_lane_minute", "fridge_readings", "fridge_minute")
    )
    cur = await db.execute("SELECT seq FROM shelf_readings ORDER BY seq")
    assert [r[0] for r in await cur.fetchall()] == [1, 2, 11]
    cur = await db.execute("SELECT seq FROM fridge_readings ORDER BY seq")
    assert [r[0] for r in await cur.fetchall()] == [1, 2]
    # Hourly rollups outlive the raw rows.
    cur = await db.execute(
        "SELECT count(*) FROM shelf_lane_hour WHERE bucket < %s", (day_start(TODAY - 7),)
    )
    assert await cur.fetchone() == (2,)  # 1970 and ten days ago
    assert await apply_retention(db, 7) == []


async def test_retention_refuses_to_run_inside_a_transaction(db: Conn) -> None:
    with pytest.raises(ValueError):
        await apply_retention(db, 0)
    async with db.transaction():
        with pytest.raises(RuntimeError, match="outside a transaction"):
            await apply_retention(db, 7)
