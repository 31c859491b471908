"""verify(): a simulator manifest against the rows, on crafted gaps and duplicates."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflink.cloud.database import connect
from shelflink.cloud.verify import verify
from shelflink.cloud.writer import commit_batches
from shelflink.device.proto import batch_pb2 as pb
from shelflink.sim.manifest import DeviceRecord, Manifest

Conn = psycopg.AsyncConnection[Any]
NOW_MS = int(time.time() * 1000)
GTIN = "4006381333931"


def shelf(device: str, seq: int, ts: int | None = None) -> pb.ShelfReading:
    return pb.ShelfReading(
        device=device, seq=seq, ts=NOW_MS + seq if ts is None else ts, grams=[1.0], board_c=20.0
    )


def manifest(*records: DeviceRecord) -> dict[str, Any]:
    return Manifest(
        seed=1, stores=1, speed=1.0, sim_start_ms=0, sim_end_ms=0, ticks=0, devices=records
    ).to_json()


def record(device: str, kind: str, first: int | None, last: int | None, count: int) -> DeviceRecord:
    return DeviceRecord(device, "store-1", kind, first, last, count)


async def test_finds_missing_ranges_and_duplicates(db: Conn) -> None:
    shelf_seqs = [0, 1, 2, 5, 6, 9]  # 3-4 and 7-8 missing; 10-11 missing at the tail
    sale = pb.Sale(device="till", seq=0, ts=NOW_MS, gtin=GTIN, qty=1, currency="EUR")
    receipt = pb.GoodsReceipt(device="till", seq=1, ts=NOW_MS, gtin=GTIN, qty=1)
    rows = pb.Batch(
        version=1,
        store_id="store-1",
        gateway_id="gw-1",
        batch_seq=1,
        shelf=[shelf("sh", s) for s in shelf_seqs]
        + [shelf("sh", 5, ts=NOW_MS - 1)]  # seq 5 again, another time: a duplicate
        + [shelf("sh", 40)],  # beyond the manifest's range
        sales=[sale],
        receipts=[
            receipt,
            pb.GoodsReceipt(device="till", seq=0, ts=NOW_MS, gtin=GTIN, qty=1),  # seq 0 twice
        ],
    )
    await commit_batches(db, [(rows, "gw-1")])
    result = await verify(
        db,
        manifest(
            record("sh", "shelf", 0, 11, 12),
            record("till", "scanner", 0, 1, 2),
            record("fr", "fridge", 3, 4, 2),  # nothing arrived
            record("idle", "shelf", None, None, 0),  # published nothing: not counted
        ),
    )
    assert result == {
        "expected": 16,
        "found": 6 + 2,
        "missing": 6 + 2,
        "duplicates": 2,
        "missing_ranges": [["fr", 3, 4], ["sh", 3, 4], ["sh", 7, 8], ["sh", 10, 11]],
        "outside_range": 1,
        "devices": 3,
    }


async def test_a_complete_run_verifies_clean(db: Conn) -> None:
    batch = pb.Batch(
        version=1,
        store_id="s",
        gateway_id="gw-1",
        batch_seq=1,
        shelf=[shelf("sh", s) for s in range(5)],
    )
    await commit_batches(db, [(batch, "gw-1")])
    await commit_batches(db, [(batch, "gw-1")])  # a replay is not a duplicate
    result = await verify(db, manifest(record("sh", "shelf", 0, 4, 5)))
    assert (result["missing"], result["duplicates"], result["missing_ranges"]) == (0, 0, [])
    assert result["found"] == result["expected"] == 5


@given(
    span=st.integers(1, 60),
    data=st.data(),
)
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_missing_ranges_are_exactly_the_absent_seqs(
    migrated_database_url: str, span: int, data: Any
) -> None:
    first = data.draw(st.integers(0, 1_000))
    present = data.draw(st.sets(st.integers(first, first + span - 1)))
    device = f"d-{uuid.uuid4().hex[:8]}"

    async def scenario() -> dict[str, Any]:
        async with await connect(migrated_database_url) as conn:
            if present:
                batch = pb.Batch(
                    version=1, store_id="s", gateway_id="gw-1", batch_seq=first,
                    shelf=[shelf(device, s) for s in sorted(present)],
                )  # fmt: skip
                await commit_batches(conn, [(batch, f"gw-{device}")])
            return await verify(
                conn, manifest(record(device, "shelf", first, first + span - 1, span))
            )

    result = asyncio.run(scenario())
    absent = sorted(set(range(first, first + span)) - present)
    expected_ranges: list[list[Any]] = []
    for seq in absent:
        if expected_ranges and expected_ranges[-1][2] == seq - 1:
            expected_ranges[-1][2] = seq
        else:
            expected_ranges.append([device, seq, seq])
    assert result["missing_ranges"] == expected_ranges
    assert result["missing"] == len(absent)
    assert result["found"] == len(present)
