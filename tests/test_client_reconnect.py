"""Both device clients keep publishing through a broker killed with SIGKILL and restarted.

What a user relies on: nothing that was not dropped by the overflow policy is
lost, messages that were on the wire without a PUBACK are sent again first and
in seq order, and the birth is published again before any data.

A TCP gate between the device and the broker makes the test deterministic
without faking MQTT: while it *holds*, the device's PUBLISHes stay in flight
(sent, never acknowledged); while it is *closed*, the device cannot reconnect,
so the subscriber is back on the restarted broker before the device is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest
from test_device_client_tap import Tap, has_status, new_identity, reading, statuses, unused_port

from shelflink.device import (
    AsyncDeviceClient,
    ClientStats,
    DeviceClient,
    DeviceIdentity,
    SequenceStore,
    ShelfReading,
)
from shelflink.device.backoff import Backoff

if TYPE_CHECKING:
    from conftest import BrokerProcess

WINDOW = 8
WAIT_S = 15.0


class Gate:
    """A TCP relay in front of the broker that the test opens, holds and closes."""

    def __init__(self, broker_port: int) -> None:
        self.port = unused_port()
        self._broker_port = broker_port
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def hold(self) -> None:
        """Park the device's bytes; the broker's still reach the device."""
        self._flowing.clear()

    async def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, device_r: asyncio.StreamReader, device_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self._broker_port)
        except OSError:
            device_w.close()
            self._relays.discard(task)
            return
        try:
            upstream = asyncio.create_task(self._copy(device_r, broker_w, gated=True))
            downstream = asyncio.create_task(self._copy(broker_r, device_w, gated=False))
            try:
                # Either side ending (the broker killed, the device gone) ends both.
                await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                upstream.cancel()
                downstream.cancel()
                await asyncio.gather(upstream, downstream, return_exceptions=True)
        finally:
            for writer in (device_w, broker_w):
                writer.close()
            self._relays.discard(task)

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, gated: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65_536):
                if gated:
                    await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()


async def eventually(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.01)


def data_seqs(tap: Tap) -> list[int]:
    return [s.message.seq for s in list(tap.seen) if isinstance(s.message, ShelfReading)]


class Device(Protocol):
    """The part of either client that the outage scenario drives."""

    @property
    def stats(self) -> ClientStats: ...

    def next_seq(self) -> int: ...

    def send(self, message: ShelfReading) -> None: ...

    async def wait_connected(self, timeout_s: float) -> None: ...


class AsyncDevice:
    def __init__(self, client: AsyncDeviceClient) -> None:
        self.client = client
        self.next_seq = client.next_seq
        self.send = client.publish_nowait
        self.wait_connected = client.wait_connected

    @property
    def stats(self) -> ClientStats:
        return self.client.stats


class ThreadedDevice:
    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.next_seq = client.next_seq
        self.send = client.publish  # never blocks: safe on the event loop

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    async def wait_connected(self, timeout_s: float) -> None:
        await asyncio.to_thread(self.client.wait_connected, timeout_s)


@dataclass
class Outage:
    before: Tap  # subscribed to the broker before it was killed
    after: Tap  # subscribed to the restarted broker, before the device got back
    acknowledged: int  # the last seq acknowledged before the kill


async def ride_out_an_outage(
    broker: BrokerProcess,
    gate: Gate,
    device: Device,
    identity: DeviceIdentity,
    taps: contextlib.ExitStack,
    *,
    in_flight_after_drop: int,
) -> Outage:
    before = taps.enter_context(Tap(broker.url, identity))
    publishing = asyncio.Event()
    publishing.set()

    async def publish_steadily() -> None:
        while publishing.is_set():
            device.send(reading(identity, device.next_seq()))
            await asyncio.sleep(0.005)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(publish_steadily())
        await eventually(lambda: device.stats.published >= 50, "50 acknowledged")

        # A full window on the wire that the broker never sees.
        gate.hold()
        await eventually(lambda: device.stats.in_flight == WINDOW, "a held window")
        acknowledged = device.stats.last_seq
        assert acknowledged is not None
        await eventually(
            lambda: set(range(acknowledged + 1)) <= set(data_seqs(before)),
            "the subscriber has everything acknowledged so far",
        )

        broker.kill()
        await gate.close()
        await eventually(lambda: not device.stats.connected, "the device notices")
        assert device.stats.in_flight == in_flight_after_drop
        await asyncio.sleep(0.5)  # the outage: publishing goes on into the queue

        await asyncio.to_thread(broker.start)
        after = Tap(broker.url, identity)
        await asyncio.to_thread(after.__enter__)
        taps.push(after.__exit__)
        await gate.open()

        await device.wait_connected(WAIT_S)
        await asyncio.sleep(0.3)
        publishing.clear()
    return Outage(before, after, acknowledged)


async def check_nothing_lost(outage: Outage, stats: ClientStats, drawn: int) -> None:
    before, after = outage.before, outage.after
    await after.await_for(has_status("shutdown"))
    assert (stats.dropped, stats.first_seq, stats.last_seq) == (0, 0, drawn - 1)
    assert stats.published == drawn and stats.reconnects >= 1
    # Nothing acknowledged is missing (a duplicate would be fine; none is expected).
    assert set(data_seqs(before)) | set(data_seqs(after)) == set(range(drawn))
    # After the restart: the birth first, then the held window, then the queue, in seq order.
    first = after.seen[0].message
    assert first is not None and first.type == "status"
    assert [s.cause for s in statuses(after.seen)] == ["birth", "shutdown"]
    assert data_seqs(after) == list(range(outage.acknowledged + 1, drawn))


def quick_backoff() -> Backoff:
    return Backoff(initial_s=0.05, maximum_s=0.5)


@pytest.fixture
async def gate(broker_process: BrokerProcess) -> AsyncIterator[Gate]:
    relay = Gate(broker_process.port)
    await relay.open()
    try:
        yield relay
    finally:
        await relay.close()


@pytest.mark.slow
async def test_the_async_client_publishes_through_a_broker_kill_and_restart(
    broker_process: BrokerProcess, gate: Gate, tmp_path: Path
) -> None:
    identity = new_identity()
    sequence = SequenceStore(tmp_path / "device.seq")
    client = AsyncDeviceClient(
        identity, gate.url, sequence, max_in_flight=WINDOW, backoff=quick_backoff()
    )
    with contextlib.ExitStack() as taps:
        async with client:
            # Put back in the queue, first in line.
            outage = await ride_out_an_outage(
                broker_process, gate, AsyncDevice(client), identity, taps, in_flight_after_drop=0
            )
        await check_nothing_lost(outage, client.stats, sequence.peek())


@pytest.mark.slow
async def test_the_threaded_client_publishes_through_a_broker_kill_and_restart(
    broker_process: BrokerProcess, gate: Gate, tmp_path: Path
) -> None:
    identity = new_identity()
    sequence = SequenceStore(tmp_path / "device.seq")
    client = DeviceClient(
        identity, gate.url, sequence, max_in_flight=WINDOW, backoff=quick_backoff()
    )
    with contextlib.ExitStack() as taps:
        client.connect()
        try:
            # paho keeps them and sends them again right after the next CONNACK.
            outage = await ride_out_an_outage(
                broker_process,
                gate,
                ThreadedDevice(client),
                identity,
                taps,
                in_flight_after_drop=WINDOW,
            )
        finally:
            await asyncio.to_thread(client.close)
        await check_nothing_lost(outage, client.stats, sequence.peek())
