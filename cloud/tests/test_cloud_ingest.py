"""An ingest worker on a real broker and database: garbage is dead-lettered with its
reason while good batches keep landing, and a replayed batch changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from conftest import MQTT_URL_ENV
from shelflink.cloud.database import connect
from shelflink.cloud.ingest import IngestOptions, IngestWorker, running
from shelflink.cloud.writer import register_gateway
from shelflink.device.identity import BrokerAddress
from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import UPLINK, batch_topic, frame_batch

NOW_MS = 1_764_150_000_000


def good_batch(gateway: str, store: str, batch_seq: int, readings: int = 5) -> pb.Batch:
    batch = pb.Batch(
        version=1, store_id=store, gateway_id=gateway, batch_seq=batch_seq, created_ms=NOW_MS
    )
    for i in range(readings):
        batch.shelf.add(
            device=f"{store}-shelf-01", seq=batch_seq * 100 + i, ts=NOW_MS + i * 1000,
            grams=[100.0, 200.0], board_c=21.0,
        )  # fmt: skip
    return batch


@contextlib.asynccontextmanager
async def worker(mqtt_url: str, database_url: str) -> AsyncIterator[IngestWorker]:
    # Without a configured broker the fixture runs the embedded one, which speaks
    # MQTT 3.1.1 only (an MQTT 5 attempt would wait for a timeout).
    shared = None if os.environ.get(MQTT_URL_ENV) else False
    ingest = IngestWorker(
        mqtt_url,
        database_url,
        IngestOptions(
            worker_id=f"t-{uuid.uuid4().hex[:8]}",
            shared=shared,
            # The readings carry a fixed date that ages past any retention.
            retention_every_s=0,
        ),
    )
    async with running(ingest):
        yield ingest


async def eventually(check: object, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_garbage_is_dead_lettered_while_good_batches_land(
    mqtt_url: str, migrated_database_url: str
) -> None:
    gateway, other = f"gw-{uuid.uuid4().hex[:8]}", f"gw-{uuid.uuid4().hex[:8]}"
    store = f"s-{gateway}"
    conn = await connect(migrated_database_url)
    await register_gateway(conn, gateway, store)
    await register_gateway(conn, other, f"s-{other}")
    address = BrokerAddress.parse(mqtt_url)
    async with (
        worker(mqtt_url, migrated_database_url) as ingest,
        aiomqtt.Client(address.host, address.port, identifier=f"pub-{gateway}") as client,
    ):
        await client.subscribe(f"{UPLINK}/{gateway}/ack", qos=1)
        bad = [
            (batch_topic(gateway), b"\x01not zlib at all"),  # undecodable
            (batch_topic(f"gw-unknown-{gateway}"),
             frame_batch(good_batch(f"gw-unknown-{gateway}", store, 1).SerializeToString())),
            # A registered gateway sending for another gateway's store.
            (batch_topic(other), frame_batch(good_batch(other, store, 1).SerializeToString())),
            # The topic's gateway and the batch's disagree.
            (batch_topic(gateway), frame_batch(good_batch(other, store, 2).SerializeToString())),
        ]  # fmt: skip
        good = [good_batch(gateway, store, n) for n in (1, 2, 3)]
        for (topic, payload), batch in zip(bad + bad[:0], good, strict=False):
            await client.publish(topic, payload, qos=1)
            await client.publish(
                batch_topic(gateway), frame_batch(batch.SerializeToString()), qos=1
            )
        await client.publish(*bad[3], qos=1)
        # The same batch again: acked again, nothing written twice.
        await client.publish(batch_topic(gateway), frame_batch(good[0].SerializeToString()), qos=1)
        acks: list[pb.BatchAck] = []
        async with asyncio.timeout(30):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                acks.append(pb.BatchAck.FromString(message.payload))
                if len(acks) == 4:
                    break
        await eventually(lambda: sum(ingest.counters.dead_letters.values()) == 4)
    assert sorted(a.batch_seq for a in acks) == [1, 1, 2, 3]
    assert all(a.outcome == pb.BatchAck.OUTCOME_COMMITTED for a in acks)
    assert ingest.counters.rows_new == 15
    assert ingest.counters.batches_replayed == 1
    cur = await conn.execute("SELECT reason, gateway_id, length(raw) FROM dead_letters ORDER BY id")
    rows = await cur.fetchall()
    assert sorted(r[0] for r in rows) == [
        "gateway_mismatch", "undecodable", "unknown_gateway", "wrong_store",
    ]  # fmt: skip
    assert all(r[2] > 0 for r in rows), "raw bytes are kept"
    cur = await conn.execute("SELECT count(*) FROM shelf_readings WHERE store_id = %s", (store,))
    assert (await cur.fetchone()) == (15,)
    await conn.close()
