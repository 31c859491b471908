"""AsyncDeviceClient (aiomqtt) against a real broker, observed by a raw paho subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_device_client_tap import (
    Tap,
    command,
    has_payloads,
    has_reply,
    has_status,
    new_identity,
    reading,
    statuses,
    unused_port,
)

from shelflink.device import (
    AsyncDeviceClient,
    ClientClosedError,
    Command,
    CommandOutcome,
    DeviceIdentity,
    DeviceTimeoutError,
    MessageDropped,
    Overflow,
    ReentrantClientError,
    SequenceStore,
    encode,
)

WAIT_S = 10.0


@pytest.fixture
def identity() -> DeviceIdentity:
    return new_identity()


@pytest.fixture
def tap(mqtt_url: str, identity: DeviceIdentity) -> Iterator[Tap]:
    with Tap(mqtt_url, identity, tidy=True) as subscriber:
        yield subscriber


@pytest.fixture
def sequence(tmp_path: Path) -> SequenceStore:
    return SequenceStore(tmp_path / "seq")


def nowhere() -> str:
    return f"mqtt://127.0.0.1:{unused_port()}"


def other_tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_publish_returns_on_puback_and_the_bytes_are_the_codecs(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    async with AsyncDeviceClient(identity, mqtt_url, sequence) as client:
        await client.wait_connected(WAIT_S)
        first = reading(identity, client.next_seq())
        await client.publish(first)
        assert (client.stats.published, client.stats.last_seq) == (1, first.seq)
        rest = [reading(identity, client.next_seq()) for _ in range(2)]
        for message in rest:
            client.publish_nowait(message)
        await client.flush(WAIT_S)
        stats = client.stats
    sent = [encode(m) for m in (first, *rest)]
    seen = await tap.await_for(has_payloads(sent))
    assert [s.payload for s in seen if s.topic.endswith("/telemetry")] == sent
    assert (stats.published, stats.first_seq, stats.last_seq, stats.dropped) == (3, 0, 2, 0)
    assert not other_tasks()


async def test_birth_then_shutdown_are_retained_statuses_of_this_boot(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    async with AsyncDeviceClient(identity, mqtt_url, sequence, boot_id="boot-42") as client:
        await client.wait_connected(WAIT_S)
        client.next_seq()
        with Tap(mqtt_url, identity) as late:
            retained = await late.await_for(has_status("birth"))
    birth = statuses(retained)[0]
    assert retained[0].retain
    assert (birth.online, birth.seq, birth.boot_id, birth.lanes) == (True, 0, "boot-42", 4)
    await tap.await_for(has_status("shutdown"))
    shutdown = tap.statuses()[-1]
    # Statuses announce the next seq: one was drawn while connected.
    assert (shutdown.online, shutdown.seq, shutdown.boot_id) == (False, 1, "boot-42")


async def test_commands_are_executed_refused_or_survived(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    executed: list[str] = []

    async def handle(cmd: Command) -> CommandOutcome:
        executed.append(cmd.id)
        if cmd.name == "reboot":
            await asyncio.sleep(5)  # longer than the client allows
        return CommandOutcome.success()

    tare = command("tare", lane=3)
    stale = command("tare", age_ms=10_000, lifetime_ms=5_000)
    slow = command("reboot")
    interval = command("set_interval", interval_ms=2_000)
    client = AsyncDeviceClient(
        identity, mqtt_url, sequence, on_command=handle, command_timeout_s=0.2
    )
    async with client:
        await client.wait_connected(WAIT_S)
        tap.send_command(b"\x00garbage")
        for cmd in (tare, stale, slow, interval):
            tap.send_command(cmd)
        ids = [c.id for c in (tare, stale, slow, interval)]
        await tap.await_for(lambda seen: all(has_reply(i)(seen) for i in ids))
        await client.flush(WAIT_S)
        stats = client.stats
    answers = {r.id: (r.ok, r.error) for r in tap.replies()}
    assert answers == {
        tare.id: (True, None),
        stale.id: (False, "expired"),
        slow.id: (False, "handler took longer than 0.2 s"),
        interval.id: (True, None),
    }
    assert executed == [tare.id, slow.id, interval.id]
    assert (stats.malformed_commands, stats.published) == (1, 4)
    await tap.await_for(has_status("shutdown"))
    assert tap.statuses()[-1].interval_ms == 2_000  # the shutdown reports the new interval


async def test_offline_overflow_keeps_the_newest_and_delivers_them(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    client = AsyncDeviceClient(identity, mqtt_url, sequence, queue_limit=3)
    messages = [reading(identity, client.next_seq()) for _ in range(5)]
    for message in messages:
        client.publish_nowait(message)
    assert (client.stats.dropped, client.stats.queued) == (2, 3)
    async with client:
        await client.flush(WAIT_S)
    seen = await tap.await_for(has_status("shutdown"))
    assert [s.payload for s in seen if s.topic.endswith("/telemetry")] == [
        encode(m) for m in messages[2:]
    ]


async def test_a_dropped_message_fails_its_publisher(
    identity: DeviceIdentity, sequence: SequenceStore
) -> None:
    newest_goes = AsyncDeviceClient(
        identity, nowhere(), sequence, queue_limit=1, overflow=Overflow.DROP_NEWEST
    )
    async with newest_goes:
        newest_goes.publish_nowait(reading(identity, newest_goes.next_seq()))
        with pytest.raises(MessageDropped, match="queue full"):
            await newest_goes.publish(reading(identity, newest_goes.next_seq()))
    oldest_goes = AsyncDeviceClient(identity, nowhere(), sequence, queue_limit=1)
    async with oldest_goes:
        waiting = asyncio.create_task(
            oldest_goes.publish(reading(identity, oldest_goes.next_seq()))
        )
        await asyncio.sleep(0)
        oldest_goes.publish_nowait(reading(identity, oldest_goes.next_seq()))
        with pytest.raises(MessageDropped):
            await asyncio.wait_for(waiting, WAIT_S)
        # Still waiting for a PUBACK when the client stops: told, and kept queued.
        pending = asyncio.create_task(
            oldest_goes.publish(reading(identity, oldest_goes.next_seq()))
        )
        await asyncio.sleep(0)
    with pytest.raises(ClientClosedError, match="stays queued"):
        await asyncio.wait_for(pending, WAIT_S)
    assert (oldest_goes.stats.dropped, oldest_goes.stats.queued) == (2, 1)


async def test_pipelining_keeps_wire_order_within_the_window(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    client = AsyncDeviceClient(identity, mqtt_url, sequence, max_in_flight=8)
    widest = 0
    async with client:
        await client.wait_connected(WAIT_S)
        for _ in range(300):
            client.publish_nowait(reading(identity, client.next_seq()))
        while client.stats.queued or client.stats.in_flight:
            widest = max(widest, client.stats.in_flight)
            await asyncio.sleep(0)
    seen = await tap.await_for(has_status("shutdown"))
    seqs = [s.message.seq for s in seen if s.topic.endswith("/telemetry") and s.message]
    assert seqs == list(range(300))
    assert 1 < widest <= 8


async def test_reusable_not_reentrant_and_a_failing_block_still_disconnects(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    client = AsyncDeviceClient(identity, mqtt_url, sequence)
    async with client:
        await client.wait_connected(WAIT_S)
        with pytest.raises(ReentrantClientError):
            async with client:
                pass
    with pytest.raises(ZeroDivisionError):  # the block's own error, not an ExceptionGroup
        async with client:
            await client.wait_connected(WAIT_S)
            client.publish_nowait(reading(identity, client.next_seq()))
            _ = 1 / 0
    assert not other_tasks()
    seen = await tap.await_for(has_status("shutdown", count=2))
    assert [s.cause for s in statuses(seen)] == ["birth", "shutdown", "birth", "shutdown"]
    # Leaving a failed block still flushed what was queued before saying goodbye.
    assert client.stats.published == 1 and client.stats.reconnects == 1


async def test_waits_are_bounded_and_a_stopped_client_says_so(
    identity: DeviceIdentity, sequence: SequenceStore
) -> None:
    client = AsyncDeviceClient(identity, nowhere(), sequence, close_timeout_s=0.5)
    with pytest.raises(ClientClosedError):
        await client.publish(reading(identity, client.next_seq()))
    with pytest.raises(ClientClosedError):
        await client.wait_connected(0.1)
    async with client:
        with pytest.raises(DeviceTimeoutError, match="connect"):
            await client.wait_connected(0.3)
        with pytest.raises(DeviceTimeoutError, match="PUBACK for seq 1"):
            await client.publish(reading(identity, client.next_seq()), timeout_s=0.2)
        with pytest.raises(DeviceTimeoutError, match="queued 1"):
            await client.flush(0.1)
    assert client.stats.queued == 1 and not other_tasks()  # kept for the next session


async def test_a_cancelled_block_still_says_goodbye_and_stays_cancelled(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    client = AsyncDeviceClient(identity, mqtt_url, sequence)
    connected = asyncio.Event()

    async def device_program() -> None:
        async with client:
            await client.wait_connected(WAIT_S)
            connected.set()
            await asyncio.sleep(3600)

    program = asyncio.create_task(device_program())
    await asyncio.wait_for(connected.wait(), WAIT_S)
    program.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(program, WAIT_S)
    assert not other_tasks()
    await tap.await_for(has_status("shutdown"))
