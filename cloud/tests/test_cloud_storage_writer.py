"""The writer: every row once, whatever is replayed, re-batched or sent twice at once."""

from __future__ import annotations

import asyncio
import math
import struct
import time
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflink.cloud.database import connect
from shelflink.cloud.staging import check_batch
from shelflink.cloud.writer import (
    BatchOutcome,
    InvalidBatch,
    commit_batches,
    dead_letter,
    gateway_stores,
    register_gateway,
)
from shelflink.device.proto import batch_pb2 as pb

Conn = psycopg.AsyncConnection[Any]
NOW_MS = int(time.time() * 1000)
GTIN = "4006381333931"


def shelf(
    device: str, seq: int, grams: list[float | None], ts: int | None = None
) -> pb.ShelfReading:
    mask = sum(1 << lane for lane, g in enumerate(grams) if g is None)
    return pb.ShelfReading(
        device=device,
        seq=seq,
        ts=NOW_MS + seq * 60_000 if ts is None else ts,
        grams=[0.0 if g is None else g for g in grams],
        missing_mask=mask,
        board_c=21.5,
    )


def batch(seq: int, *, gateway: str = "gw-1", store: str = "store-1", **rows: Any) -> pb.Batch:
    return pb.Batch(version=1, store_id=store, gateway_id=gateway, batch_seq=seq, **rows)


def full_batch(seq: int) -> pb.Batch:
    """One row of every kind."""
    return batch(
        seq,
        events=[pb.Event(source="sh-1", seq=seq, ts=NOW_MS, type="gap",
                         severity=pb.SEVERITY_WARNING, body_json='{"missing": 2}')],
        statuses=[pb.DeviceStatus(device="sh-1", seq=0, ts=NOW_MS, online=True, cause="birth",
                                  kind="shelf", firmware="1.2.0", boot_id="b1",
                                  interval_ms=60_000, lanes=3)],
        sales=[pb.Sale(device="till-1", seq=0, ts=NOW_MS, gtin=GTIN, qty=2,
                       unit_price_minor=199, currency="EUR", receipt_id="r1")],
        receipts=[pb.GoodsReceipt(device="till-1", seq=1, ts=NOW_MS, gtin=GTIN, serial="SN1",
                                  qty=1, delivery_ref="d1")],
        shelf=[shelf("sh-1", 0, [120.5, None, 3.25])],
        fridge=[pb.FridgeReading(device="fr-1", seq=0, ts=NOW_MS, cabinet_c=4.5,
                                 evaporator_c=-12.0, door_open=True, compressor_on=False)],
    )  # fmt: skip


async def count(conn: Conn, table: str) -> int:
    cur = await conn.execute(f"SELECT count(*) FROM {table}".encode())
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


DATA = ("events", "device_status", "sales", "goods_receipts", "shelf_readings", "fridge_readings")


async def counts(conn: Conn) -> dict[str, int]:
    return {table: await count(conn, table) for table in DATA}


async def test_every_kind_is_stored_and_read_back(db: Conn) -> None:
    [outcome] = await commit_batches(db, [(full_batch(1), "gw-1")])
    assert (outcome.rows_new, outcome.rows_duplicate, outcome.already_committed) == (6, 0, False)
    assert await counts(db) == dict.fromkeys(DATA, 1)
    cur = await db.execute("SELECT grams, board_c FROM shelf_readings")
    assert await cur.fetchall() == [([120.5, None, 3.25], 21.5)]
    cur = await db.execute("SELECT gateway_id, severity, body FROM events")
    assert await cur.fetchall() == [("gw-1", "warning", {"missing": 2})]
    cur = await db.execute("SELECT serial, qty FROM goods_receipts")
    assert await cur.fetchall() == [("SN1", 1)]
    cur = await db.execute("SELECT serial FROM sales")
    assert await cur.fetchall() == [(None,)]
    cur = await db.execute("SELECT lanes, extract(epoch FROM ts) * 1000 FROM device_status")
    assert await cur.fetchall() == [(3, NOW_MS)]
    cur = await db.execute("SELECT gateway_id, batch_seq, store_id, rows_new FROM batches")
    assert await cur.fetchall() == [("gw-1", 1, "store-1", 6)]


async def test_a_replayed_batch_changes_nothing(db: Conn) -> None:
    [first] = await commit_batches(db, [(full_batch(1), "gw-1")])
    before = await counts(db)
    [again] = await commit_batches(db, [(full_batch(1), "gw-1")])
    assert again.already_committed
    assert (again.rows_new, again.rows_duplicate) == (first.rows_new, first.rows_duplicate)
    assert await counts(db) == before


async def test_the_same_reading_in_two_batches_is_stored_once(db: Conn) -> None:
    reading = shelf("sh-1", 7, [10.0, 20.0])
    other = shelf("sh-1", 8, [11.0, 21.0])
    first, second = await commit_batches(
        db,
        [(batch(1, shelf=[reading]), "gw-1"), (batch(2, shelf=[reading, other]), "gw-1")],
    )
    assert (first.rows_new, first.rows_duplicate) == (1, 0)
    assert (second.rows_new, second.rows_duplicate) == (1, 1)
    [third] = await commit_batches(db, [(batch(3, shelf=[other, reading]), "gw-1")])
    assert (third.rows_new, third.rows_duplicate, third.already_committed) == (0, 2, False)
    assert await count(db, "shelf_readings") == 2


async def test_a_batch_twice_in_one_call_is_committed_once(db: Conn) -> None:
    one, two = await commit_batches(db, [(full_batch(5), "gw-1"), (full_batch(5), "gw-1")])
    assert not one.already_committed and two.already_committed
    assert (two.rows_new, two.rows_duplicate) == (one.rows_new, one.rows_duplicate) == (6, 0)
    assert await count(db, "batches") == 1


async def test_batches_are_keyed_by_the_gateway_they_arrived_from(db: Conn) -> None:
    a, b = await commit_batches(db, [(full_batch(1), "gw-1"), (full_batch(1), "gw-2")])
    assert not a.already_committed and not b.already_committed
    assert (b.rows_new, b.rows_duplicate) == (1, 5)  # only the event is gw-2's own


async def test_two_workers_committing_the_same_batch_store_it_once(
    migrated_database_url: str,
) -> None:
    conns = [await connect(migrated_database_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(commit_batches(c, [(full_batch(9), "gw-1")]) for c in conns)
        )
    finally:
        for conn in conns:
            await conn.close()
    outcomes = sorted((r[0] for r in results), key=lambda o: o.already_committed)
    assert [o.already_committed for o in outcomes] == [False, True]
    assert all((o.rows_new, o.rows_duplicate) == (6, 0) for o in outcomes)
    async with await connect(migrated_database_url) as conn:
        assert await counts(conn) == dict.fromkeys(DATA, 1)


async def test_the_callers_transaction_is_used_when_open(db: Conn) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await commit_batches(db, [(full_batch(1), "gw-1")])
            await dead_letter(db, "t", "gw-1", "x", "y", b"")
            raise RuntimeError("rolled back")
    assert await count(db, "shelf_readings") == 0
    assert await count(db, "batches") == 0
    # The staging tables went with the rollback; the next commit recreates them.
    [outcome] = await commit_batches(db, [(full_batch(1), "gw-1")])
    assert outcome.rows_new == 6


BAD = {
    "nan grams": batch(1, shelf=[shelf("sh-1", 0, [math.nan])]),
    "inf fridge": batch(1, fridge=[pb.FridgeReading(device="f", ts=NOW_MS, cabinet_c=math.inf)]),
    "seq beyond bigint": batch(1, shelf=[shelf("sh-1", 2**63, [1.0], ts=NOW_MS)]),
    "no lanes": batch(1, shelf=[shelf("sh-1", 0, [])]),
    "65 lanes": batch(1, shelf=[shelf("sh-1", 0, [1.0] * 65)]),
    "negative time": batch(1, sales=[pb.Sale(device="t", ts=-1, gtin=GTIN, qty=1)]),
    "NUL in a device id": batch(1, fridge=[pb.FridgeReading(device="f\x00", ts=NOW_MS)]),
    "body not JSON": batch(1, events=[pb.Event(source="s", ts=NOW_MS, body_json="{nope")]),
    "body with NaN": batch(1, events=[pb.Event(source="s", ts=NOW_MS, body_json='{"a": NaN}')]),
    "body with NUL": batch(1, events=[pb.Event(source="s", ts=NOW_MS, body_json='"\\u0000"')]),
    "qty beyond integer": batch(1, sales=[pb.Sale(device="t", ts=NOW_MS, gtin=GTIN, qty=2**31)]),
    "batch_seq beyond bigint": batch(2**63),
}


@pytest.mark.parametrize("name", list(BAD))
async def test_a_batch_that_cannot_be_stored_is_named_before_any_sql(db: Conn, name: str) -> None:
    bad = pb.Batch()
    bad.CopyFrom(BAD[name])
    bad.batch_seq = bad.batch_seq if bad.batch_seq > 1 else 2  # not a repeat of batch 1
    assert check_batch(bad, "gw-1") is not None
    with pytest.raises(InvalidBatch) as caught:
        await commit_batches(db, [(full_batch(1), "gw-1"), (bad, "gw-1")])
    assert caught.value.index == 1
    assert await count(db, "batches") == 0
    # The caller sets it aside and commits the rest.
    [good] = await commit_batches(db, [(full_batch(1), "gw-1")])
    assert good.rows_new == 6


async def test_dead_letters_keep_the_raw_payload_and_the_reason(db: Conn) -> None:
    await dead_letter(
        db, "shelflink/v1/uplink/gw-1/batch", "gw-1", "undecodable", "bad", b"\x01\xff"
    )
    await dead_letter(db, "elsewhere", None, "bad_topic", "not ours", b"")
    cur = await db.execute(
        "SELECT topic, gateway_id, reason, detail, raw FROM dead_letters ORDER BY id"
    )
    assert await cur.fetchall() == [
        ("shelflink/v1/uplink/gw-1/batch", "gw-1", "undecodable", "bad", b"\x01\xff"),
        ("elsewhere", None, "bad_topic", "not ours", b""),
    ]


async def test_gateway_registry(db: Conn) -> None:
    assert await gateway_stores(db) == {}
    await register_gateway(db, "gw-1", "store-1")
    await register_gateway(db, "gw-2", "store-2")
    await register_gateway(db, "gw-2", "store-3")  # moved
    assert await gateway_stores(db) == {"gw-1": "store-1", "gw-2": "store-3"}


# -- property: any mix of replays and re-batching stores each reading once ----------------


def f32(values: list[float | None]) -> list[float | None]:
    # PostgreSQL prints a real in its shortest form, which Python reads as a double
    # that is not the float32 itself: compare as float32.
    return [None if v is None else struct.unpack("f", struct.pack("f", v))[0] for v in values]


readings_st = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # device
        st.integers(0, 30),  # seq
        st.lists(st.one_of(st.none(), st.floats(0, 5_000, width=32)), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: (r[0], r[1]),
)


@given(
    readings=readings_st,
    data=st.data(),
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_replays_and_rebatching_store_each_reading_once(
    migrated_database_url: str, readings: list[tuple[str, int, list[float | None]]], data: Any
) -> None:
    prefix = uuid.uuid4().hex[:8]  # each example's devices are its own
    gateway = f"gw-{prefix}"
    rows = [shelf(f"{prefix}-{d}", seq, grams) for d, seq, grams in readings]
    # Batches are random slices of the readings; some are sent twice, some overlap.
    batches: list[pb.Batch] = []
    for n in range(data.draw(st.integers(1, 6))):
        picked = data.draw(st.lists(st.sampled_from(rows), max_size=len(rows)))
        batches.append(batch(n + 1, gateway=gateway, shelf=picked))
    batches.append(batch(99, gateway=gateway, shelf=rows))  # everything, at least once
    order = data.draw(st.permutations(batches + data.draw(st.lists(st.sampled_from(batches)))))
    groups = data.draw(st.integers(1, 3))

    async def scenario() -> None:
        async with await connect(migrated_database_url) as conn:
            outcomes = []
            for g in range(groups):
                part = [(b, gateway) for b in order[g::groups]]
                outcomes += await commit_batches(conn, part)
            cur = await conn.execute(
                "SELECT device, seq, grams FROM shelf_readings WHERE device LIKE %s",
                (f"{prefix}-%",),
            )
            stored = await cur.fetchall()
        assert len(stored) == len(rows)
        expected = {(f"{prefix}-{d}", seq): f32(grams) for d, seq, grams in readings}
        assert {(d, s): f32(g) for d, s, g in stored} == expected
        first_time: dict[int, BatchOutcome] = {}
        for o in outcomes:
            first_time.setdefault(o.batch_seq, o)
            assert o == first_time[o.batch_seq] or o.already_committed
        assert sum(o.rows_new for o in first_time.values()) == len(rows)
        for b in batches:
            o = first_time[b.batch_seq]
            assert o.rows_new + o.rows_duplicate == len(b.shelf)

    asyncio.run(scenario())
