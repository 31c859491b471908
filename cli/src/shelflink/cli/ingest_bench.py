"""``shelflink bench ingest``: the cloud's ingest against COPY and a naive consumer.

All four runs use the same synthetic rows (shelf and fridge readings, sales)
and a fresh migrated database each, in one process, one after the other:

* ingest alone: the batches published to the cloud broker, one ingest worker
  committing them; timed from the first publish to the last committed ack;
* the whole path: the same rows in gateway buffers, drained by the gateways'
  uplinks through the broker and the worker until every buffer is empty;
* a raw COPY of the same rows into the same tables (the ceiling);
* a naive consumer: one INSERT and one commit per reading, on a sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt

from shelflink.cloud.baselines import copy_rows_baseline, naive_insert
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.ingest import IngestOptions, IngestWorker, running
from shelflink.cloud.storage_bench import Batches, rows_in, scratch_database, synthetic_batches
from shelflink.cloud.writer import register_gateway
from shelflink.device.batch import iter_messages, to_batch_item
from shelflink.device.identity import BrokerAddress
from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import UPLINK, batch_topic, frame_batch
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_record import record_of
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.uplink import Uplink

TIMEOUT_S = 600.0


async def _register(conn: Connection, batches: Batches) -> None:
    for store in {(b.gateway_id, b.store_id) for b, _ in batches}:
        await register_gateway(conn, *store)


@contextlib.asynccontextmanager
async def _worker(broker_url: str, database_url: str) -> AsyncIterator[IngestWorker]:
    # No retention round: dropping partitions mid-run would be measured as ingest.
    worker = IngestWorker(
        broker_url, database_url, IngestOptions(worker_id="bench-ingest", retention_every_s=0)
    )
    async with running(worker):
        yield worker


async def ingest_alone(broker_url: str, database_url: str, batches: Batches) -> float:
    address = BrokerAddress.parse(broker_url)
    async with (
        scratch_database(database_url) as scratch,
        _worker(broker_url, scratch) as worker,
        aiomqtt.Client(address.host, address.port, identifier="bench-publisher") as client,
    ):
        conn = await connect(scratch)
        await _register(conn, batches)
        await conn.close()
        await client.subscribe(f"{UPLINK}/+/ack", qos=1)
        payloads = [(batch_topic(g), frame_batch(b.SerializeToString())) for b, g in batches]
        expected = {(b.gateway_id, b.batch_seq) for b, _ in batches}
        began = time.perf_counter()
        for topic, payload in payloads:
            await client.publish(topic, payload, qos=1)
        async with asyncio.timeout(TIMEOUT_S):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                ack = pb.BatchAck.FromString(message.payload)
                expected.discard((ack.gateway_id, ack.batch_seq))
                if not expected:
                    break
        elapsed = time.perf_counter() - began
        assert worker.counters.rows_new == rows_in(batches), worker.counters
        return elapsed


def _gateway_config(root: Path, gateway: str, store: str, broker_url: str) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "store_id": store,
            "gateway_id": gateway,
            "buffer": {"path": root / gateway / "buffer.sqlite", "max_bytes": 4 << 30},
            "uplink": {"url": broker_url, "linger_s": 0.05, "window": 16},
        }
    )


async def whole_path(broker_url: str, database_url: str, batches: Batches) -> float:
    by_gateway: dict[tuple[str, str], list[Any]] = {}
    for batch, gateway in batches:
        items = by_gateway.setdefault((gateway, batch.store_id), [])
        for message in iter_messages(batch):
            item = to_batch_item(message)
            if item is not None:
                items.append(record_of(item))
    with tempfile.TemporaryDirectory(prefix="shelflink-bench-path-") as tmp:
        root = Path(tmp)
        configs = [_gateway_config(root, g, s, broker_url) for g, s in by_gateway]
        buffers = [DurableBuffer(c.buffer.path, max_bytes=c.buffer.max_bytes) for c in configs]
        async with contextlib.AsyncExitStack() as stack:
            for buffer, records in zip(buffers, by_gateway.values(), strict=True):
                await stack.enter_async_context(buffer)
                await buffer.append(records)
            scratch = await stack.enter_async_context(scratch_database(database_url))
            conn = await connect(scratch)
            await _register(conn, batches)
            await conn.close()
            await stack.enter_async_context(_worker(broker_url, scratch))
            uplinks = [Uplink(c, b) for c, b in zip(configs, buffers, strict=True)]
            began = time.perf_counter()
            tasks = [asyncio.create_task(u.run()) for u in uplinks]
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    # The buffer has no "empty" event to await; its stats are in memory.
                    while any(b.stats().records for b in buffers):  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                return time.perf_counter() - began
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


async def raw_copy(database_url: str, batches: Batches) -> float:
    async with scratch_database(database_url) as scratch:
        conn = await connect(scratch)
        try:
            began = time.perf_counter()
            await copy_rows_baseline(conn, batches)
            return time.perf_counter() - began
        finally:
            await conn.close()


async def naive(database_url: str, batches: Batches) -> tuple[float, int]:
    async with scratch_database(database_url) as scratch:
        conn = await connect(scratch)
        try:
            began = time.perf_counter()
            rows = await naive_insert(conn, batches)
            return time.perf_counter() - began, rows
        finally:
            await conn.close()


async def run_ingest_bench(
    broker_url: str, database_url: str, readings: int, naive_readings: int
) -> dict[str, Any]:
    batches = synthetic_batches(readings)
    rows = rows_in(batches)
    sample = synthetic_batches(naive_readings, seed=2)
    sample_rows = rows_in(sample)
    ingest_s = await ingest_alone(broker_url, database_url, batches)
    path_s = await whole_path(broker_url, database_url, batches)
    copy_s = await raw_copy(database_url, batches)
    naive_s, naive_rows = await naive(database_url, sample)
    assert naive_rows == sample_rows
    return {
        "rows": rows,
        "batches": len(batches),
        "naive_sample_rows": sample_rows,
        "ingest_rows_per_s": round(rows / ingest_s),
        "path_rows_per_s": round(rows / path_s),
        "copy_rows_per_s": round(rows / copy_s),
        "naive_rows_per_s": round(sample_rows / naive_s),
    }
