"""How fast the durable buffer accepts records, against what SQLite itself can do.

``bench_buffer`` runs, on fresh files in one folder, in the same process:

* ``DurableBuffer.append`` from many concurrent producers, synchronous=FULL
  (the product setting) and NORMAL (what FULL costs);
* the ceiling: one raw ``executemany`` INSERT of the same rows into a fresh
  file with the same schema and settings, in one transaction, FULL and NORMAL,
  and again in transactions as big as the buffer's group commits were;
* the price of one commit alone: one-row transactions, FULL and NORMAL.

Bodies are real serialized ``pb.ShelfReading`` messages with 8 lanes. Run it
with ``python -m shelflink.gateway.buffer_bench [--producers N --chunk N]``
(prints JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.buffer import (
    DEFAULT_COMMIT_INTERVAL_S,
    DEFAULT_COMMIT_MAX_RECORDS,
    DurableBuffer,
)
from shelflink.gateway.buffer_record import Record, record_of
from shelflink.gateway.buffer_schema import Synchronous, connect
from shelflink.gateway.buffer_store import INSERT_RECORD, row_params

LANES = 8
START_MS = 1_764_150_000_000


def shelf_records(count: int, devices: int, seed: int = 1) -> list[list[Record]]:
    """``count`` shelf readings spread over ``devices`` shelves, one list per shelf, seq order."""
    rng = random.Random(seed)
    per_device: list[list[Record]] = [[] for _ in range(devices)]
    for i in range(count):
        d = i % devices
        seq = len(per_device[d])
        reading = pb.ShelfReading(
            device=f"shelf-{d:04d}",
            seq=seq,
            ts=START_MS + seq * 1000,
            grams=[round(rng.uniform(0.0, 12_000.0), 2) for _ in range(LANES)],
            missing_mask=0,
            board_c=round(rng.uniform(18.0, 30.0), 2),
        )
        per_device[d].append(record_of(reading))
    return per_device


async def _through_buffer(
    path: Path,
    producers: Sequence[Sequence[Record]],
    chunk: int,
    synchronous: Synchronous,
    commit_interval_s: float,
    commit_max_records: int,
) -> dict[str, Any]:
    latencies: list[float] = []
    total = sum(len(p) for p in producers)

    async def produce(records: Sequence[Record]) -> None:
        for start in range(0, len(records), chunk):
            began = time.perf_counter()
            await buffer.append(records[start : start + chunk])
            latencies.append(time.perf_counter() - began)

    async with DurableBuffer(
        path,
        max_bytes=1 << 40,  # the bench measures accepting, not dropping
        synchronous=synchronous,
        commit_interval_s=commit_interval_s,
        commit_max_records=commit_max_records,
    ) as buffer:
        began = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for records in producers:
                group.create_task(produce(records))
        elapsed = time.perf_counter() - began
        stats = buffer.stats()
    assert stats.records == total, "the bench lost records"
    latencies.sort()
    return {
        "rows_per_s": round(total / elapsed),
        "seconds": round(elapsed, 3),
        "commits": stats.commits,
        "rows_per_commit": round(total / stats.commits, 1),
        "commit_ms_avg": round(stats.commit_seconds / stats.commits * 1000, 2),
        "append_latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
        "append_latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "accounted_bytes": stats.bytes,
    }


def raw_executemany(
    path: Path, rows: Sequence[Record], synchronous: Synchronous, per_transaction: int
) -> dict[str, Any]:
    conn = connect(path, synchronous)  # same schema, WAL, locking and sync as the buffer
    try:
        params = [row_params(r) for r in rows]
        began = time.perf_counter()
        for start in range(0, len(params), per_transaction):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_RECORD, params[start : start + per_transaction])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
    return {"rows_per_s": round(len(rows) / elapsed), "seconds": round(elapsed, 3)}


def _commit_cost(path: Path, rows: Sequence[Record], synchronous: Synchronous) -> dict[str, Any]:
    """One row per transaction: what a commit costs alone, fsync included (or not)."""
    conn = connect(path, synchronous)
    try:
        began = time.perf_counter()
        for r in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_RECORD, row_params(r))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
    return {
        "commits_per_s": round(len(rows) / elapsed),
        "ms_per_commit": round(elapsed / len(rows) * 1000, 3),
    }


def bench_buffer(
    records: int = 200_000,
    *,
    producers: int = 200,
    chunk: int = 10,
    commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S,
    commit_max_records: int = DEFAULT_COMMIT_MAX_RECORDS,
    directory: Path | str | None = None,
    commit_samples: int = 500,
) -> dict[str, Any]:
    """Rows/s through ``DurableBuffer.append`` vs raw executemany, synchronous FULL vs NORMAL.

    ``producers`` coroutines (one per shelf) each append their readings
    ``chunk`` at a time, awaiting each append, as a southbound adapter would.
    Files go to a temporary folder inside ``directory`` (the disk the buffer
    will live on matters: fsync cost is the disk's). ``commit_samples``
    one-row transactions measure what a single commit costs in each mode.
    """
    if records < producers or chunk < 1:
        raise ValueError("need records >= producers >= 1 and chunk >= 1")
    per_device = shelf_records(records, producers)
    # The raw insert gets the rows in the order the producers deliver them
    # (round-robin by chunk), so both sides build the same B-trees.
    flat = [
        r
        for start in range(0, max(map(len, per_device)), chunk)
        for device in per_device
        for r in device[start : start + chunk]
    ]
    result: dict[str, Any] = {
        "records": records,
        "producers": producers,
        "chunk": chunk,
        "commit_interval_s": commit_interval_s,
        "commit_max_records": commit_max_records,
        "body_bytes_avg": round(sum(len(r.body) for r in flat) / len(flat), 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    with tempfile.TemporaryDirectory(prefix="buffer-bench-", dir=directory) as folder:
        root = Path(folder)
        for mode in ("FULL", "NORMAL"):
            synchronous: Synchronous = "FULL" if mode == "FULL" else "NORMAL"
            path = root / f"append-{mode}.db"
            appended = asyncio.run(
                _through_buffer(
                    path, per_device, chunk, synchronous, commit_interval_s, commit_max_records
                )
            )
            # After close: the WAL is checkpointed, the file holds everything.
            appended["file_bytes"] = path.stat().st_size
            result[f"append_{mode.lower()}"] = appended
            result[f"raw_executemany_{mode.lower()}"] = raw_executemany(
                root / f"raw-{mode}.db", flat, synchronous, len(flat)
            )
            # The same rows in transactions as big as the buffer's group commits:
            # what is left between this and the buffer is the buffer's own cost.
            result[f"raw_executemany_grouped_{mode.lower()}"] = raw_executemany(
                root / f"grouped-{mode}.db",
                flat,
                synchronous,
                max(1, round(appended["rows_per_commit"])),
            )
            result[f"single_row_commits_{mode.lower()}"] = _commit_cost(
                root / f"single-{mode}.db", flat[:commit_samples], synchronous
            )
    full, normal = result["append_full"]["rows_per_s"], result["append_normal"]["rows_per_s"]
    result["append_vs_ceiling_full"] = round(full / result["raw_executemany_full"]["rows_per_s"], 3)
    result["full_vs_normal"] = round(full / normal, 3)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: temp)")
    args = parser.parse_args(argv)
    result = bench_buffer(
        args.records, producers=args.producers, chunk=args.chunk, directory=args.dir
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
