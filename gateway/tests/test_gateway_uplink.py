"""The uplink against real brokers, with the cloud played by a real MQTT client.

The "cloud" here is a peer, not a mock: an aiomqtt client on the batch topic
that unframes every batch, keeps it, and answers on the ack topic as the
test says (commit, reject, or stay silent). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from shelflink.device.identity import BrokerAddress
from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import ack_topic, batch_topic, unframe_batch
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_record import Record, record_of
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.uplink import Uplink

GATEWAY = "gw-up1"
STORE = "s-up1"
HOUR_MS = 3_600_000

Answer = Callable[[pb.Batch, int], pb.BatchAck | None]  # (batch, times seen) -> ack or silence


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def shelf(seq: int, ts: int | None = None) -> Record:
    ts = now_ms() if ts is None else ts
    return record_of(pb.ShelfReading(device="shelf-a", seq=seq, ts=ts, grams=[500.0] * 4))


def event(seq: int, ts: int | None = None) -> Record:
    ts = now_ms() if ts is None else ts
    return record_of(pb.Event(source=GATEWAY, seq=seq, ts=ts, type="gap"))


def committed(batch: pb.Batch, seen: int) -> pb.BatchAck:
    return pb.BatchAck(
        gateway_id=batch.gateway_id,
        batch_seq=batch.batch_seq,
        outcome=pb.BatchAck.OUTCOME_COMMITTED,
        rows_new=len(batch.shelf) + len(batch.events) if seen == 1 else 0,
        committed_ms=now_ms(),
    )


def silent(batch: pb.Batch, seen: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Received:
    payload: bytes
    batch: pb.Batch

    @property
    def seq(self) -> int:
        return self.batch.batch_seq


class Cloud:
    """The cloud's side of the uplink: receives batches and answers them; reconnects on its own."""

    def __init__(self, url: str, answer: Answer = committed) -> None:
        self.address = BrokerAddress.parse(url)
        self.answer = answer
        self.received: list[Received] = []
        self.connected = asyncio.Event()

    async def run(self) -> None:
        self.connected.clear()
        while True:
            try:
                async with aiomqtt.Client(
                    self.address.host, self.address.port, identifier=f"cloud-{uuid.uuid4().hex[:8]}"
                ) as client:
                    await client.subscribe(batch_topic(GATEWAY), qos=1, timeout=10)
                    self.connected.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        await self._answer(client, message.payload)
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    async def _answer(self, client: aiomqtt.Client, payload: bytes) -> None:
        batch = unframe_batch(payload)
        self.received.append(Received(payload, batch))
        seen = sum(1 for r in self.received if r.seq == batch.batch_seq)
        ack = self.answer(batch, seen)
        if ack is not None:
            await client.publish(ack_topic(GATEWAY), ack.SerializeToString(), qos=1, timeout=10)

    def firsts(self) -> list[Received]:
        """Each batch as first received, in arrival order."""
        seen: set[int] = set()
        out = []
        for r in self.received:
            if r.seq not in seen:
                seen.add(r.seq)
                out.append(r)
        return out

    def sends_of(self, seq: int) -> list[bytes]:
        return [r.payload for r in self.received if r.seq == seq]


async def until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {predicate.__name__}"
        await asyncio.sleep(0.02)


def config(tmp_path: Path, url: str, **uplink: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "url": url,
        "linger_s": 0.05,
        "ack_timeout_s": 0.4,
        "ack_timeout_max_s": 1.0,
        "reconnect_max_s": 0.3,
        "replay_max_batches_per_s": None,
    }
    settings.update(uplink)
    return GatewayConfig.model_validate(
        {
            "store_id": STORE,
            "gateway_id": GATEWAY,
            "buffer": {"path": str(tmp_path / "buffer.sqlite")},
            "uplink": settings,
        }
    )


def open_buffer(cfg: GatewayConfig) -> DurableBuffer:
    return DurableBuffer(cfg.buffer.path, commit_interval_s=0.0)


@contextlib.asynccontextmanager
async def running(*jobs: Any) -> AsyncIterator[None]:
    """Run clouds and uplinks as tasks, each connected before the next starts; cancel after.

    The cloud goes first: a batch published before it subscribed would be lost
    to it (and only resent after the ack timeout), which muddles arrival order.
    """
    tasks: list[asyncio.Task[None]] = []
    try:
        for job in jobs:
            tasks.append(asyncio.create_task(job.run()))
            async with asyncio.timeout(15):
                await job.connected.wait()
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def shelf_seqs(batches: list[Received]) -> list[int]:
    return [r.seq for b in batches for r in b.batch.shelf]


async def test_a_batch_is_deleted_only_on_the_committed_ack_and_resent_identically_until_then(
    tmp_path: Path, mqtt_url: str
) -> None:
    cfg = config(tmp_path, mqtt_url)
    cloud = Cloud(mqtt_url, answer=silent)
    async with open_buffer(cfg) as buffer:
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await buffer.append([shelf(seq) for seq in range(1, 11)])
            # The broker PUBACKed it and the cloud has it twice; no ack, so it stays.
            await until(lambda: len(cloud.received) >= 2)
            first = cloud.received[0]
            assert cloud.sends_of(first.seq) == [first.payload] * len(cloud.sends_of(first.seq))
            assert buffer.stats().records == 10
            assert buffer.stats().leased_batches == 1
            assert uplink.stats().resends >= 1

            cloud.answer = committed
            await until(lambda: buffer.stats().records == 0)
            stats = uplink.stats()
    assert shelf_seqs([first]) == list(range(1, 11))
    assert (stats.acked, stats.acked_records, stats.in_flight_batches) == (1, 10, 0)
    assert stats.ack_latency_count == 1 and stats.ack_latency_buckets[-1][1] == 1
    assert first.batch.store_id == STORE and first.batch.gateway_id == GATEWAY


async def test_a_rejected_batch_is_logged_counted_and_leaves_the_buffer(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def reject(batch: pb.Batch, seen: int) -> pb.BatchAck:
        return pb.BatchAck(
            gateway_id=GATEWAY,
            batch_seq=batch.batch_seq,
            outcome=pb.BatchAck.OUTCOME_REJECTED,
            reason="unknown store s-up1",
        )

    cfg = config(tmp_path, mqtt_url)
    cloud = Cloud(mqtt_url, answer=reject)
    caplog.set_level(logging.ERROR, logger="shelflink.gateway.uplink")
    async with open_buffer(cfg) as buffer:
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await buffer.append([shelf(1), shelf(2), event(1)])
            await until(lambda: buffer.stats().records == 0)
            stats = uplink.stats()
    assert (stats.rejected, stats.rejected_records, stats.acked) == (1, 3, 0)
    assert any("unknown store s-up1" in r.getMessage() for r in caplog.records)


async def test_garbage_foreign_and_unknown_acks_are_ignored_and_counted(
    tmp_path: Path, mqtt_url: str
) -> None:
    cfg = config(tmp_path, mqtt_url)
    cloud = Cloud(mqtt_url, answer=silent)
    address = BrokerAddress.parse(mqtt_url)
    noise = [
        b"\xff\x00not a protobuf at all",
        pb.BatchAck(
            gateway_id="gw-other", batch_seq=1, outcome=pb.BatchAck.OUTCOME_COMMITTED
        ).SerializeToString(),
        pb.BatchAck(gateway_id=GATEWAY, batch_seq=1).SerializeToString(),  # no outcome
        b"",
    ]
    unknown = pb.BatchAck(
        gateway_id=GATEWAY, batch_seq=999, outcome=pb.BatchAck.OUTCOME_COMMITTED
    ).SerializeToString()
    async with open_buffer(cfg) as buffer:
        uplink = Uplink(cfg, buffer)
        async with (
            running(cloud, uplink),
            aiomqtt.Client(address.host, address.port, identifier="noise") as prankster,
        ):
            await buffer.append([shelf(1)])
            await until(lambda: len(cloud.received) >= 1)
            for payload in [*noise, unknown]:
                await prankster.publish(ack_topic(GATEWAY), payload, qos=1)
            await until(lambda: uplink.stats().acks_unknown == 1)
            await until(lambda: uplink.stats().acks_invalid == len(noise))
            # None of that deleted anything; a real ack still does.
            assert buffer.stats().records == 1
            cloud.answer = committed
            await until(lambda: buffer.stats().records == 0)


async def test_the_window_bounds_batches_in_flight_and_the_queue_drains_in_order(
    tmp_path: Path, mqtt_url: str
) -> None:
    cfg = config(tmp_path, mqtt_url, window=2, max_records=5)
    cloud = Cloud(mqtt_url, answer=silent)
    async with open_buffer(cfg) as buffer:
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await buffer.append([shelf(seq) for seq in range(1, 31)])
            # Wait through a resend round: time enough for a third batch to show if it could.
            await until(lambda: uplink.stats().resends >= 2)
            assert len({r.seq for r in cloud.received}) == 2
            assert uplink.stats().in_flight_batches == 2
            cloud.answer = committed
            await until(lambda: buffer.stats().records == 0)
    firsts = cloud.firsts()
    assert [r.seq for r in firsts] == sorted(r.seq for r in firsts)
    assert shelf_seqs(firsts) == list(range(1, 31))


async def test_after_a_gateway_restart_the_same_batches_go_first_byte_identical(
    tmp_path: Path, mqtt_url: str
) -> None:
    cfg = config(tmp_path, mqtt_url, window=3, max_records=4)
    cloud = Cloud(mqtt_url, answer=silent)
    async with running(cloud), open_buffer(cfg) as buffer:
        await buffer.append([shelf(seq) for seq in range(1, 21)])
        async with running(Uplink(cfg, buffer)):
            await until(lambda: len({r.seq for r in cloud.received}) == 3)
    before = {r.seq: r.payload for r in cloud.firsts()}
    assert len(before) == 3

    cloud.received.clear()
    cloud.answer = committed
    async with running(cloud), open_buffer(cfg) as buffer:
        assert [lease.batch_seq for lease in await buffer.leased()] == sorted(before)
        async with running(Uplink(cfg, buffer)):
            await until(lambda: buffer.stats().records == 0)
    firsts = cloud.firsts()
    assert [r.seq for r in firsts[:3]] == sorted(before)
    assert all(r.payload == before[r.seq] for r in firsts[:3])
    assert min(r.seq for r in firsts[3:]) > max(before)
    assert shelf_seqs(firsts) == list(range(1, 21))


async def test_after_a_cloud_broker_restart_the_backlog_drains_in_order_events_first(
    tmp_path: Path, broker_process: Any
) -> None:
    url: str = broker_process.url
    cfg = config(tmp_path, url, max_records=8)
    cloud = Cloud(url)
    async with open_buffer(cfg) as buffer:
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await buffer.append([shelf(seq) for seq in range(1, 6)])
            await until(lambda: buffer.stats().records == 0)
            before = {r.seq for r in cloud.received}

            broker_process.kill()
            await until(lambda: not uplink.connected.is_set())
            await buffer.append([shelf(seq) for seq in range(6, 46)])
            await buffer.append([event(seq) for seq in range(1, 4)])
            broker_process.start()

            await until(lambda: buffer.stats().records == 0, timeout_s=30)
            stats = uplink.stats()
    assert stats.reconnects >= 1
    # In batch order: which batch reached the cloud first after the restart
    # depends on whether the cloud or the gateway resubscribed first.
    replayed = sorted((r for r in cloud.firsts() if r.seq not in before), key=lambda r: r.seq)
    assert [e.seq for e in replayed[0].batch.events] == [1, 2, 3]
    assert all(not r.batch.events for r in replayed[1:])
    assert shelf_seqs(replayed) == list(range(6, 46))


async def test_a_backlog_replays_at_the_configured_rate_and_live_events_overtake_it(
    tmp_path: Path, mqtt_url: str
) -> None:
    rate = 5.0
    cfg = config(
        tmp_path, mqtt_url, max_records=2, replay_max_batches_per_s=rate, replay_after_s=60
    )
    cloud = Cloud(mqtt_url)
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    answer_all = cloud.answer

    def timed(batch: pb.Batch, seen: int) -> pb.BatchAck | None:
        if seen == 1:
            arrivals.append(loop.time())
        return answer_all(batch, seen)

    cloud.answer = timed
    old = now_ms() - HOUR_MS
    async with open_buffer(cfg) as buffer:
        await buffer.append([shelf(seq, ts=old + seq) for seq in range(1, 31)])  # 15 batches
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await until(lambda: len(arrivals) >= 3)
            await buffer.append([event(1)])  # live, while the replay is paced
            await until(lambda: buffer.stats().records == 0, timeout_s=30)
            stats = uplink.stats()
    firsts = cloud.firsts()
    # Counted per interval: no one-second span holds more than the rate plus the
    # one-batch burst (and one batch of slack for delivery jitter).
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= rate + 2
    assert stats.replay_waits >= len(firsts) // 2  # nearly every backlog batch waited
    with_event = next(i for i, r in enumerate(firsts) if r.batch.events)
    assert with_event < len(firsts) // 2  # ahead of most of the backlog
    assert shelf_seqs(firsts) == list(range(1, 31))


async def test_fresh_records_are_not_paced(tmp_path: Path, mqtt_url: str) -> None:
    cfg = config(tmp_path, mqtt_url, max_records=2, replay_max_batches_per_s=1.0)
    cloud = Cloud(mqtt_url)
    async with open_buffer(cfg) as buffer:
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await buffer.append([shelf(seq) for seq in range(1, 21)])
            await until(lambda: buffer.stats().records == 0)
            stats = uplink.stats()
    assert stats.replay_waits == 0
    assert stats.acked == 10


async def test_live_records_bypass_a_paced_replay(tmp_path: Path, mqtt_url: str) -> None:
    cfg = config(tmp_path, mqtt_url, max_records=2, replay_max_batches_per_s=2.0, linger_s=0.2)
    cloud = Cloud(mqtt_url)
    old = now_ms() - HOUR_MS
    async with open_buffer(cfg) as buffer:
        await buffer.append([shelf(seq, ts=old + seq) for seq in range(1, 21)])  # 10 batches
        uplink = Uplink(cfg, buffer)
        async with running(cloud, uplink):
            await until(lambda: len(cloud.firsts()) >= 2)
            await buffer.append([shelf(seq) for seq in range(100, 103)])  # live telemetry
            await until(lambda: buffer.stats().records == 0, timeout_s=30)
            stats = uplink.stats()
    firsts = cloud.firsts()
    live_at = next(i for i, r in enumerate(firsts) if any(s.seq >= 100 for s in r.batch.shelf))
    assert live_at < len(firsts) - 3  # well before the backlog's end
    assert stats.live_batches >= 1
    assert sorted(shelf_seqs(firsts)) == [*range(1, 21), 100, 101, 102]
