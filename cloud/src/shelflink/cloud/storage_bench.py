"""How fast the writer stores readings, against a raw COPY and a naive bridge, same run.

Each measurement runs in a database of its own, created on the given server,
migrated, and dropped afterwards, so runs do not see each other's rows. The
workload is a fleet of convenience stores (8 shelves of 8 lanes, 2 fridges
and a till each) read once a simulated minute, packed in 500-row batches the
way gateways send them; the writer takes them in groups, as an ingest worker
does. ``shelflink bench ingest`` reuses these functions; ``python -m
shelflink.cloud.storage_bench`` prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg import sql

from shelflink.cloud.baselines import copy_rows_baseline, naive_insert
from shelflink.cloud.database import Connection, connect, with_database
from shelflink.cloud.migrations import migrate
from shelflink.cloud.staging import KINDS, stage
from shelflink.cloud.writer import commit_batches
from shelflink.device.proto import batch_pb2 as pb

Batches = list[tuple[pb.Batch, str]]
SHELVES, LANES, FRIDGES = 8, 8, 2
ROWS_PER_BATCH = 500
BATCHES_PER_COMMIT = 20


def synthetic_batches(
    readings: int = 100_000, *, stores: int = 10, seed: int = 1, start_ms: int | None = None
) -> Batches:
    """About ``readings`` rows (shelf, fridge, sales) from ``stores`` gateways, in batches."""
    rnd = random.Random(seed)
    start = start_ms if start_ms is not None else int(time.time() * 1000) - 86_400_000
    per_tick = SHELVES + FRIDGES  # plus a sale now and then
    ticks = max(1, readings // (stores * per_tick))
    out: Batches = []
    for store in range(stores):
        gateway, store_id = f"gw-{store:03d}", f"store-{store:03d}"
        batch_seq, seqs = 0, dict[str, int]()
        batch = pb.Batch(version=1, store_id=store_id, gateway_id=gateway)
        for tick in range(ticks):
            ts = start + tick * 60_000
            for shelf in range(SHELVES):
                device = f"{store_id}-shelf-{shelf}"
                seq = seqs[device] = seqs.get(device, -1) + 1
                grams = [rnd.uniform(0.0, 4_000.0) for _ in range(LANES)]
                mask = sum(1 << lane for lane in range(LANES) if rnd.random() < 0.02)
                grams = [0.0 if mask >> lane & 1 else g for lane, g in enumerate(grams)]
                batch.shelf.append(
                    pb.ShelfReading(device=device, seq=seq, ts=ts + shelf, grams=grams,
                                    missing_mask=mask, board_c=21.0 + rnd.random())
                )  # fmt: skip
            for fridge in range(FRIDGES):
                device = f"{store_id}-fridge-{fridge}"
                seq = seqs[device] = seqs.get(device, -1) + 1
                batch.fridge.append(
                    pb.FridgeReading(device=device, seq=seq, ts=ts + fridge,
                                     cabinet_c=rnd.uniform(2.0, 6.0), evaporator_c=-12.0,
                                     door_open=rnd.random() < 0.1, compressor_on=rnd.random() < 0.5)
                )  # fmt: skip
            if rnd.random() < 0.3:
                device = f"{store_id}-till-0"
                seq = seqs[device] = seqs.get(device, -1) + 1
                batch.sales.append(
                    pb.Sale(device=device, seq=seq, ts=ts, gtin="4006381333931", qty=1,
                            unit_price_minor=199, currency="EUR", receipt_id=f"r{seq}")
                )  # fmt: skip
            if len(batch.shelf) + len(batch.fridge) + len(batch.sales) >= ROWS_PER_BATCH:
                batch_seq += 1
                batch.batch_seq = batch_seq
                out.append((batch, gateway))
                batch = pb.Batch(version=1, store_id=store_id, gateway_id=gateway)
        if len(batch.shelf) + len(batch.fridge) + len(batch.sales):
            batch.batch_seq = batch_seq + 1
            out.append((batch, gateway))
    # Gateways send concurrently: interleave them as an ingest worker would see them.
    out.sort(key=lambda item: (item[0].batch_seq, item[1]))
    return out


def rows_in(batches: Batches) -> int:
    return sum(len(b.shelf) + len(b.fridge) + len(b.sales) for b, _ in batches)


@asynccontextmanager
async def scratch_database(url: str) -> AsyncIterator[str]:
    """A migrated database of its own on the server at ``url``, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    async with await connect(url) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            scratch = with_database(url, name)
            async with await connect(scratch) as conn:
                await migrate(conn)
            yield scratch
        finally:
            await admin.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _groups(batches: Batches, size: int) -> list[Batches]:
    return [batches[i : i + size] for i in range(0, len(batches), size)]


async def _timed(
    url: str, batches: Batches, run: Callable[[Connection, Batches], Awaitable[object]], size: int
) -> float:
    """Seconds to push every group through ``run`` in a fresh database."""
    async with scratch_database(url) as scratch, await connect(scratch) as conn:
        began = time.perf_counter()
        for group in _groups(batches, size):
            await run(conn, group)
        return time.perf_counter() - began


async def _copy_format(conn: Connection, batches: Batches, how: str) -> float:
    """Encode the shelf readings and COPY them into a TEMP table, one of three ways."""
    kind = KINDS["shelf"]
    columns = ", ".join(f"{n} {t}" for n, t in kind.columns)
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS copy_probe ({columns}) ON COMMIT DELETE ROWS".encode()
    )
    shelf_only = [(pb.Batch(store_id=b.store_id, shelf=b.shelf), g) for b, g in batches]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    statement = f"COPY copy_probe ({', '.join(kind.names)}) FROM STDIN"
    began = time.perf_counter()
    async with conn.transaction(), conn.cursor() as cur:
        if how == "struct":
            payload = stage(shelf_only, with_index=False).payload("shelf")
            async with cur.copy(f"{statement} (FORMAT binary)".encode()) as copy:
                await copy.write(payload or b"")
        else:
            binary = how == "binary"
            async with cur.copy(
                f"{statement}{' (FORMAT binary)' if binary else ''}".encode()
            ) as copy:
                if binary:
                    copy.set_types(["text", "text", "int8", "timestamptz", "float4[]", "float4"])
                for batch, _gateway in shelf_only:
                    for r in batch.shelf:
                        grams = [
                            None if r.missing_mask >> i & 1 else g for i, g in enumerate(r.grams)
                        ]
                        await copy.write_row(
                            (batch.store_id, r.device, r.seq, epoch + timedelta(milliseconds=r.ts),
                             grams, r.board_c)
                        )  # fmt: skip
    return time.perf_counter() - began


@dataclass(frozen=True, slots=True)
class StorageBenchResult:
    rows: int
    shelf_readings: int
    lane_values: int
    copy_text_s: float
    copy_binary_s: float
    copy_struct_s: float
    writer_rows_per_s: float
    writer_replay_rows_per_s: float  # the same batches again: answered from `batches`
    writer_duplicates_rows_per_s: float  # the same rows under new batch numbers
    baseline_copy_rows_per_s: float
    naive_rows_per_s: float
    naive_rows: int
    server: str


async def run_storage_bench(
    url: str, readings: int = 100_000, *, naive_readings: int = 3_000
) -> StorageBenchResult:
    batches = synthetic_batches(readings)
    rows = rows_in(batches)
    shelf = sum(len(b.shelf) for b, _ in batches)
    lanes = sum(len(r.grams) for b, _ in batches for r in b.shelf)
    async with scratch_database(url) as scratch, await connect(scratch) as conn:
        server = str((await (await conn.execute("SHOW server_version")).fetchall())[0][0])
        formats = {
            how: await _copy_format(conn, batches, how) for how in ("text", "binary", "struct")
        }

    writer_s = await _timed(url, batches, commit_batches, BATCHES_PER_COMMIT)
    async with scratch_database(url) as scratch, await connect(scratch) as conn:
        for group in _groups(batches, BATCHES_PER_COMMIT):
            await commit_batches(conn, group)
        began = time.perf_counter()
        for group in _groups(batches, BATCHES_PER_COMMIT):
            await commit_batches(conn, group)
        replay_s = time.perf_counter() - began
        renumbered = []
        for batch, gateway in batches:
            copy = pb.Batch()
            copy.CopyFrom(batch)
            copy.batch_seq += 1_000_000
            renumbered.append((copy, gateway))
        began = time.perf_counter()
        for group in _groups(renumbered, BATCHES_PER_COMMIT):
            await commit_batches(conn, group)
        duplicates_s = time.perf_counter() - began
    baseline_s = await _timed(url, batches, copy_rows_baseline, BATCHES_PER_COMMIT)
    few = synthetic_batches(naive_readings, stores=2)
    naive_s = await _timed(url, few, naive_insert, 1)
    return StorageBenchResult(
        rows=rows,
        shelf_readings=shelf,
        lane_values=lanes,
        copy_text_s=round(formats["text"], 3),
        copy_binary_s=round(formats["binary"], 3),
        copy_struct_s=round(formats["struct"], 3),
        writer_rows_per_s=round(rows / writer_s),
        writer_replay_rows_per_s=round(rows / replay_s),
        writer_duplicates_rows_per_s=round(rows / duplicates_s),
        baseline_copy_rows_per_s=round(rows / baseline_s),
        naive_rows_per_s=round(rows_in(few) / naive_s),
        naive_rows=rows_in(few),
        server=server,
    )


def format_result(result: StorageBenchResult) -> str:
    r = result
    lines = [
        f"{r.rows:,} rows ({r.shelf_readings:,} shelf readings, {r.lane_values:,} lane values), "
        f"PostgreSQL {r.server}",
        f"COPY of the shelf readings into a TEMP table: psycopg text {r.copy_text_s:.2f} s, "
        f"psycopg binary {r.copy_binary_s:.2f} s, struct-encoded binary {r.copy_struct_s:.2f} s",
        f"writer (commit_batches, rollups): {r.writer_rows_per_s:,} rows/s "
        f"({r.writer_rows_per_s / r.baseline_copy_rows_per_s:.2f}× the raw COPY)",
        f"  replayed batches: {r.writer_replay_rows_per_s:,} rows/s; "
        f"same rows, new batch numbers: {r.writer_duplicates_rows_per_s:,} rows/s",
        f"raw COPY into the tables (ceiling): {r.baseline_copy_rows_per_s:,} rows/s",
        f"naive INSERT per row, autocommit ({r.naive_rows:,} rows): {r.naive_rows_per_s:,} rows/s",
    ]
    return "\n".join(lines)


async def _main(url: str | None, readings: int, workdir: Path) -> None:
    if url:
        result = await run_storage_bench(url, readings)
    else:
        from shelflink.cloud.embedded import EmbeddedPostgres

        async with EmbeddedPostgres(workdir / "pg") as server:
            result = await run_storage_bench(server.url, readings)
    print(format_result(result))
    print(json.dumps(asdict(result)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default=os.environ.get("SHELFLINK_DATABASE_URL"))
    parser.add_argument("--readings", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shelflink-bench-") as workdir:
        Path(workdir).chmod(0o711)  # reachable by the server's user when we are root
        asyncio.run(_main(args.database_url, args.readings, Path(workdir)))


if __name__ == "__main__":
    main()
