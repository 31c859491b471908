"""DurableBuffer against real SQLite files: accept, lease, ack, survive reopen, fill up, alarm."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.buffer import DEFAULT_MAX_BYTES, DurableBuffer
from shelflink.gateway.buffer_batch import framed_size
from shelflink.gateway.buffer_bench import bench_buffer
from shelflink.gateway.buffer_errors import (
    BufferClosedError,
    BufferFullError,
    BufferReentrantError,
    BufferStorageError,
)
from shelflink.gateway.buffer_policy import row_bytes
from shelflink.gateway.buffer_record import (
    FIELD_FRIDGE,
    FIELD_SHELF,
    DropReport,
    Priority,
    Record,
    record_of,
)

T0 = 1_764_150_000_000


def shelf(device: str, seq: int) -> Record:
    # Fixed ts and grams: readings with seq 1..127 all have the same size (proto3
    # leaves a zero out, so seq 0 is smaller; size-sensitive tests start at 1).
    return record_of(
        pb.ShelfReading(device=device, seq=seq, ts=T0, grams=[1250.5] * 8, board_c=21.5)
    )


def fridge(device: str, seq: int) -> Record:
    return record_of(pb.FridgeReading(device=device, seq=seq, ts=T0, cabinet_c=4.0))


def event(seq: int) -> Record:
    return record_of(pb.Event(source="gw-1", seq=seq, ts=T0, type="gap"))


def sale(seq: int) -> Record:
    return record_of(
        pb.Sale(device="pos-1", seq=seq, ts=T0, gtin="4006381333931", qty=1, currency="EUR")
    )


def status(seq: int) -> Record:
    return record_of(pb.DeviceStatus(device="shelf-a", seq=seq, ts=T0, online=True, cause="birth"))


def size(record: Record) -> int:
    return row_bytes(record.device, record.body)


S = size(shelf("shelf-a", 1))  # one telemetry row, accounted


def buffer_at(
    path: Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_high_water: Callable[[bool], None] | None = None,
) -> DurableBuffer:
    # No group-commit window unless a test is about it: each append commits at once.
    return DurableBuffer(
        path, max_bytes=max_bytes, on_high_water=on_high_water, commit_interval_s=0.0
    )


async def lease_all(buffer: DurableBuffer) -> list[Record]:
    lease = await buffer.lease(1_000_000, 1 << 40)
    return [] if lease is None else list(lease.records)


async def test_append_lease_ack_cycle(tmp_path: Path) -> None:
    records = [shelf("shelf-a", s) for s in range(1, 6)]
    async with buffer_at(tmp_path / "b.db") as buffer:
        assert await buffer.append(records) == 5
        stats = buffer.stats()
        assert (stats.records, stats.bytes, stats.oldest_ts_ms) == (5, 5 * S, T0)

        lease = await buffer.lease(100, 1 << 20)
        assert lease is not None
        assert lease.batch_seq == 1
        assert lease.records == tuple(records)
        assert await buffer.lease(100, 1 << 20) is None, "leased records are not handed out twice"
        assert (buffer.stats().leased_batches, buffer.stats().leased_records) == (1, 5)
        assert await buffer.leased() == [lease]

        assert await buffer.ack(lease.batch_seq) == 5
        stats = buffer.stats()
        assert (stats.records, stats.bytes, stats.oldest_ts_ms, stats.leased_batches) == (
            0,
            0,
            None,
            0,
        )
        assert await buffer.leased() == []


async def test_ack_is_idempotent(tmp_path: Path) -> None:
    async with buffer_at(tmp_path / "b.db") as buffer:
        await buffer.append([shelf("shelf-a", 0)])
        lease = await buffer.lease(10, 1 << 20)
        assert lease is not None
        assert await buffer.ack(lease.batch_seq) == 1
        assert await buffer.ack(lease.batch_seq) == 0
        assert await buffer.ack(12345) == 0
        assert buffer.stats().records == 0


async def test_events_go_first_then_oldest_first(tmp_path: Path) -> None:
    async with buffer_at(tmp_path / "b.db") as buffer:
        await buffer.append([shelf("shelf-a", 0), shelf("shelf-b", 0)])
        await buffer.append([sale(0), fridge("fridge-1", 0)])
        await buffer.append([event(0), status(1), shelf("shelf-a", 1)])
        await buffer.append([event(1), sale(1)])

        first = await buffer.lease(2, 1 << 20)
        rest = await buffer.lease(100, 1 << 20)
        assert first is not None and rest is not None
        assert first.records == (event(0), event(1))
        assert rest.records == (
            status(1),
            sale(0),
            sale(1),
            shelf("shelf-a", 0),
            shelf("shelf-b", 0),
            fridge("fridge-1", 0),
            shelf("shelf-a", 1),
        )
        assert [r.priority for r in rest.records] == sorted(r.priority for r in rest.records)
        assert rest.batch_seq == first.batch_seq + 1


async def test_lease_respects_max_bytes_but_always_takes_one(tmp_path: Path) -> None:
    records = [shelf("shelf-a", s) for s in range(5)]
    framed = framed_size(len(records[0].body))
    async with buffer_at(tmp_path / "b.db") as buffer:
        await buffer.append(records)
        two = await buffer.lease(100, 2 * framed + framed // 2)
        one = await buffer.lease(100, 1)
        assert two is not None and one is not None
        assert two.records == tuple(records[:2])
        assert one.records == (records[2],), "a record bigger than max_bytes still goes alone"


async def test_appending_what_is_buffered_is_a_no_op(tmp_path: Path) -> None:
    a1, a2, a3 = (shelf("shelf-a", s) for s in range(1, 4))
    async with buffer_at(tmp_path / "b.db") as buffer:
        assert await buffer.append([a1, a2]) == 2
        assert await buffer.append([a1, a2]) == 0
        assert await buffer.append([a2, a3, a3]) == 1
        # Same device and seq under another field is another fact.
        same_seq_fridge = Record(Priority.TELEMETRY, FIELD_FRIDGE, "shelf-a", 0, T0, b"\x08\x01")
        assert await buffer.append([same_seq_fridge]) == 1
        # Concurrent appenders of the same record, committed in one transaction.
        counts = await asyncio.gather(*(buffer.append([shelf("shelf-b", 7)]) for _ in range(5)))
        assert sum(counts) == 1
        stats = buffer.stats()
        assert stats.records == 5
        assert stats.bytes == 3 * S + size(same_seq_fridge) + size(shelf("shelf-b", 7))
        assert await lease_all(buffer) == [a1, a2, a3, same_seq_fridge, shelf("shelf-b", 7)]
        # A leased record is still buffered: not stored twice.
        assert await buffer.append([a1]) == 0


async def test_duplicates_near_full_are_counted_exactly(tmp_path: Path) -> None:
    a = [shelf("shelf-a", s) for s in range(1, 5)]
    async with buffer_at(tmp_path / "b.db", max_bytes=4 * S) as buffer:
        assert await buffer.append(a) == 4
        # Full: re-appending needs no room, so nothing is dropped and nothing refused.
        assert await buffer.append(a[1:]) == 0
        assert (buffer.stats().records, buffer.stats().dropped_total) == (4, 0)


async def test_leases_survive_reopen_with_the_same_batch_seq_and_content(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with buffer_at(path) as buffer:
        await buffer.append([shelf("shelf-a", s) for s in range(1, 7)] + [event(0), sale(0)])
        first = await buffer.lease(3, 1 << 20)
        second = await buffer.lease(2, 1 << 20)
        before = buffer.stats()
    async with buffer_at(path) as buffer:
        assert await buffer.leased() == [first, second]
        after = buffer.stats()
        assert (after.records, after.bytes, after.leased_batches, after.leased_records) == (
            before.records,
            before.bytes,
            2,
            5,
        )
        rest = await buffer.lease(100, 1 << 20)
        assert rest is not None and second is not None
        assert rest.batch_seq == second.batch_seq + 1
        assert rest.records == tuple(shelf("shelf-a", s) for s in range(4, 7))


async def test_batch_seq_is_never_reused_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    seen: list[int] = []
    for round_ in range(3):
        async with buffer_at(path) as buffer:
            await buffer.append([shelf("shelf-a", round_)])
            lease = await buffer.lease(10, 1 << 20)
            assert lease is not None
            seen.append(lease.batch_seq)
            # Acked: no lease row is left to remember the number by.
            await buffer.ack(lease.batch_seq)
    assert seen == [1, 2, 3]


async def test_release_puts_records_back_in_their_places(tmp_path: Path) -> None:
    async with buffer_at(tmp_path / "b.db") as buffer:
        await buffer.append([shelf("shelf-a", s) for s in range(3)])
        lease = await buffer.lease(2, 1 << 20)
        assert lease is not None
        await buffer.append([shelf("shelf-a", 3)])
        assert await buffer.release(lease.batch_seq) == 2
        assert await buffer.release(lease.batch_seq) == 0
        assert await buffer.leased() == []
        again = await buffer.lease(100, 1 << 20)
        assert again is not None
        assert again.batch_seq > lease.batch_seq
        assert again.records == tuple(shelf("shelf-a", s) for s in range(4))


async def test_full_buffer_drops_oldest_unleased_telemetry_and_never_events(
    tmp_path: Path,
) -> None:
    assert size(event(0)) <= S  # the arithmetic below relies on it
    async with buffer_at(tmp_path / "b.db", max_bytes=10 * S) as buffer:
        await buffer.append([shelf("shelf-a", s) for s in range(1, 7)])
        await buffer.append([shelf("shelf-b", s) for s in range(1, 5)])
        assert buffer.stats().bytes == 10 * S  # exactly full
        in_flight = await buffer.lease(2, 1 << 20)  # shelf-a 1 and 2: leased, not droppable
        assert in_flight is not None

        assert await buffer.append([shelf("shelf-a", 7)]) == 1  # drops shelf-a 3
        assert await buffer.append([shelf("shelf-b", 5), shelf("shelf-b", 6)]) == 2  # a 4, a 5
        assert await buffer.append([event(0)]) == 1  # drops shelf-a 6
        assert buffer.stats().bytes <= 10 * S
        assert buffer.drain_drop_reports() == [
            DropReport(device="shelf-a", records=4, seq_ranges=((3, 6),))
        ]
        assert buffer.drain_drop_reports() == []

        # Events keep coming: telemetry makes way for them until none is left to drop.
        events = [event(0)]
        while buffer.stats().bytes + size(event(len(events))) <= buffer.capacity.hard_ceiling:
            events.append(event(len(events)))
            assert await buffer.append([events[-1]]) == 1
        assert buffer.stats().bytes > 10 * S, "precious records use the headroom"

        # Nothing droppable is left: telemetry is refused, whole and with a reason ...
        before = buffer.stats()
        with pytest.raises(BufferFullError, match="telemetry refused"):
            await buffer.append([event(10_000), shelf("shelf-c", 1)])
        # ... and so are events beyond the hard ceiling.
        with pytest.raises(BufferFullError, match="events, statuses and scans refused"):
            await buffer.append([event(len(events))])
        assert buffer.stats().records == before.records, "a refused append stores nothing"

        (report,) = [r for r in buffer.drain_drop_reports() if r.device == "shelf-b"]
        assert report == DropReport(device="shelf-b", records=6, seq_ranges=((1, 6),))
        stats = buffer.stats()
        assert stats.dropped_total == 4 + 1 + 6  # shelf-a 3..6 and 7, shelf-b 1..6
        assert dict(stats.dropped_by_device) == {"shelf-a": 5, "shelf-b": 6}

        assert await buffer.leased() == [in_flight], "leased telemetry is never dropped"
        kept = await lease_all(buffer)
        assert kept == events, "every event is still there, in order"


async def test_drop_reports_survive_a_restart_until_drained(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with buffer_at(path, max_bytes=2 * S) as buffer:
        await buffer.append([shelf("shelf-a", 1), shelf("shelf-a", 2)])
        await buffer.append([shelf("shelf-a", 3)])  # drops shelf-a 1
    expected = [DropReport(device="shelf-a", records=1, seq_ranges=((1, 1),))]
    # max_bytes is a setting, not stored: the gateway may change it between runs.
    async with buffer_at(path, max_bytes=10 * S) as buffer:
        assert buffer.drain_drop_reports() == expected
        # The gateway's buffer_dropped event commits with the forgetting of the report.
        await buffer.append([event(0)])
    async with buffer_at(path, max_bytes=2 * S) as buffer:
        assert buffer.drain_drop_reports() == []
        assert buffer.stats().dropped_total == 0, "counters are per run, for Prometheus"


async def test_high_water_alarm_has_hysteresis(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    alarms: list[bool] = []
    # Marks at 8 S - 4 and 7 S - 3.5: no row count sits exactly on one.
    max_bytes = 10 * S - 5
    async with buffer_at(path, max_bytes, alarms.append) as buffer:
        await buffer.append([shelf("shelf-a", s) for s in range(1, 8)])
        assert (alarms, buffer.stats().high_water) == ([], False)
        await buffer.append([shelf("shelf-a", 8)])  # 8 rows: high water
        assert (alarms, buffer.stats().high_water) == ([True], True)
        lease = await buffer.lease(1, 1 << 20)
        assert lease is not None
        await buffer.ack(lease.batch_seq)  # 7 rows: between the marks, still raised
        assert (alarms, buffer.stats().high_water) == ([True], True)
        await buffer.append([shelf("shelf-a", 9)])  # 8 again: no second alarm
        for _ in range(2):
            lease = await buffer.lease(1, 1 << 20)
            assert lease is not None
            await buffer.ack(lease.batch_seq)  # 6 rows: below low water
        assert (alarms, buffer.stats().high_water) == ([True, False], False)
        await buffer.append([shelf("shelf-a", 10), shelf("shelf-a", 11)])
    assert alarms == [True, False, True]
    async with buffer_at(path, max_bytes, alarms.append) as buffer:
        assert alarms == [True, False, True, True], "a buffer opened above high water says so"
        assert buffer.stats().high_water


async def test_concurrent_appends_share_one_commit(tmp_path: Path) -> None:
    # A long window, closed by the record count: the grouping does not depend on timing.
    async with DurableBuffer(
        tmp_path / "b.db", commit_interval_s=60.0, commit_max_records=50
    ) as buffer:
        counts = await asyncio.gather(*(buffer.append([shelf(f"shelf-{i}", 0)]) for i in range(50)))
        assert counts == [1] * 50
        assert buffer.stats().commits == 1


async def test_close_commits_pending_appends(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with DurableBuffer(path, commit_interval_s=60.0) as buffer:
        appends = [asyncio.create_task(buffer.append([shelf("shelf-a", s)])) for s in range(10)]
        await asyncio.sleep(0)  # they are queued, waiting for the window
        assert buffer.stats().pending_records == 10
    assert [await a for a in appends] == [1] * 10
    async with buffer_at(path) as buffer:
        assert buffer.stats().records == 10


async def test_one_named_thread_does_all_sqlite_work(tmp_path: Path) -> None:
    def sqlite_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("buffer-sqlite")]

    async with buffer_at(tmp_path / "b.db") as buffer:
        await asyncio.gather(*(buffer.append([shelf("shelf-a", s)]) for s in range(20)))
        await buffer.lease(5, 1 << 20)
        assert len(sqlite_threads()) == 1
    assert sqlite_threads() == []


async def test_lifecycle_is_reusable_but_not_reentrant(tmp_path: Path) -> None:
    buffer = buffer_at(tmp_path / "b.db")
    with pytest.raises(BufferClosedError):
        await buffer.append([shelf("shelf-a", 0)])
    async with buffer:
        with pytest.raises(BufferReentrantError):
            async with buffer:
                pass
        await buffer.append([shelf("shelf-a", 0)])
    with pytest.raises(BufferClosedError):
        await buffer.append([shelf("shelf-a", 1)])
    with pytest.raises(BufferClosedError):
        await buffer.lease(1, 1)
    async with buffer:
        assert buffer.stats().records == 1


async def test_a_second_owner_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with buffer_at(path):
        with pytest.raises(BufferStorageError, match="locked"):
            async with buffer_at(path):
                pass


async def test_foreign_and_newer_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(BufferStorageError, match="not a Shelflink buffer"):
        async with buffer_at(foreign):
            pass

    newer = tmp_path / "newer.db"
    async with buffer_at(newer):
        pass
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(BufferStorageError, match="newer"):
        async with buffer_at(newer):
            pass


async def test_accounted_bytes_track_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with buffer_at(path) as buffer:
        for start in range(0, 20_000, 1_000):
            await buffer.append(
                [
                    record_of(
                        pb.ShelfReading(
                            device=f"shelf-{(start + i) % 97:04d}",
                            seq=start + i,
                            ts=T0 + start + i,
                            grams=[float(i % 13) * 97.3 + lane for lane in range(8)],
                            board_c=22.0,
                        )
                    )
                    for i in range(1_000)
                ]
            )
        accounted = buffer.stats().bytes
    conn = sqlite3.connect(path)
    pages, free, page_size = (
        conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("page_count", "freelist_count", "page_size")
    )
    conn.close()
    on_disk = (pages - free) * page_size
    assert 0.85 <= accounted / on_disk <= 1.15, (accounted, on_disk)


def test_records_refuse_what_a_batch_cannot_carry() -> None:
    with pytest.raises(ValueError, match="field 5"):
        Record(Priority.EVENT, 5, "gw", 0, T0, b"")
    with pytest.raises(ValueError, match="seq"):
        Record(Priority.TELEMETRY, FIELD_SHELF, "d", -1, T0, b"")
    assert Record(3, FIELD_SHELF, "d", 0, T0, b"").priority is Priority.TELEMETRY  # type: ignore[arg-type]


DISK_FILLER = """
import asyncio, json, os, resource, signal, sys
from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_errors import BufferStorageError
from shelflink.gateway.buffer_record import record_of

# Past the file size limit, write() fails with EFBIG, as on a full disk, instead of a signal.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

def chunk(start):
    return [
        record_of(pb.ShelfReading(device="shelf-a", seq=s, ts=s, grams=[1.0] * 8))
        for s in range(start, start + 100)
    ]

async def main(path):
    out = {}
    async with DurableBuffer(path, commit_interval_s=0) as buffer:
        await buffer.append(chunk(0))
        biggest = max(os.path.getsize(path), os.path.getsize(path + "-wal"))
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 200_000, hard))
        seq = 100
        try:
            while seq < 1_000_000:
                await buffer.append(chunk(seq))
                seq += 100
        except BufferStorageError as error:
            out["error"] = str(error)
        out["records_after_failure"] = buffer.stats().records
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
        out["retry_new"] = await buffer.append(chunk(seq))
    async with DurableBuffer(path) as buffer:
        lease = await buffer.lease(10**9, 2**62)
        out["stored"] = [r.seq for r in lease.records]
    out["appended"] = seq + 100
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


def test_a_full_disk_fails_the_append_and_the_buffer_recovers(tmp_path: Path) -> None:
    # A file size limit is per process, so the disk fills up in a child process.
    done = subprocess.run(
        [sys.executable, "-c", DISK_FILLER, str(tmp_path / "b.db")],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    )
    out = json.loads(done.stdout)
    assert "error" in out, "the file size limit was never reached"
    assert "append not stored" in out["error"]
    failed_at = out["appended"] - 100
    assert out["records_after_failure"] == failed_at, "the failed append left nothing behind"
    assert out["retry_new"] == 100, "the same records go in once the disk has room"
    assert out["stored"] == list(range(out["appended"]))


def test_the_benchmark_runs_and_loses_nothing(tmp_path: Path) -> None:
    result = bench_buffer(
        2_000,
        producers=20,
        chunk=5,
        commit_interval_s=0.001,
        directory=tmp_path,
        commit_samples=20,
    )
    for mode in ("full", "normal"):
        assert result[f"append_{mode}"]["rows_per_s"] > 0
        assert result[f"raw_executemany_{mode}"]["rows_per_s"] > 0
        assert result[f"raw_executemany_grouped_{mode}"]["rows_per_s"] > 0
        assert result[f"single_row_commits_{mode}"]["commits_per_s"] > 0
    assert list(tmp_path.iterdir()) == [], "the bench cleans up after itself"
