"""DeviceClient (paho, one network thread) against a real broker, observed by a raw subscriber."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
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
    ClientClosedError,
    Command,
    CommandOutcome,
    DeviceClient,
    DeviceIdentity,
    DeviceKind,
    DeviceTimeoutError,
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


def test_a_reading_arrives_byte_for_byte_and_counts_once_acknowledged(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    with DeviceClient(identity, mqtt_url, sequence) as client:
        client.wait_connected(WAIT_S)
        messages = [reading(identity, client.next_seq()) for _ in range(3)]
        for message in messages:
            client.publish(message)
        client.flush(WAIT_S)
        stats = client.stats
    seen = tap.wait_for(has_payloads([encode(m) for m in messages]))
    data = [s.payload for s in seen if s.topic.endswith("/telemetry")]
    assert data == [encode(m) for m in messages]
    assert (stats.published, stats.first_seq, stats.last_seq) == (3, 0, 2)
    assert (stats.queued, stats.in_flight, stats.dropped, stats.reconnects) == (0, 0, 0, 0)


def test_the_birth_is_retained_and_describes_this_boot(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    sequence.next()  # the birth announces the next seq, whatever came before
    with DeviceClient(identity, mqtt_url, sequence) as client:
        client.wait_connected(WAIT_S)
        with Tap(mqtt_url, identity) as late:
            seen = late.wait_for(has_status("birth"))
    birth = statuses(seen)[0]
    assert seen[0].retain
    assert (birth.online, birth.seq, birth.boot_id) == (True, 1, client.boot_id)
    assert (birth.kind, birth.firmware, birth.lanes) == (DeviceKind.SHELF, "1.2.3", 4)
    assert sequence.peek() == 1


def test_a_clean_close_leaves_a_retained_shutdown_and_no_will(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    with DeviceClient(identity, mqtt_url, sequence) as client:
        client.wait_connected(WAIT_S)
    tap.wait_for(has_status("shutdown"))
    with Tap(mqtt_url, identity) as late:
        seen = late.wait_for(lambda seen: bool(statuses(seen)))
    # A set: the embedded broker may deliver a retained message twice to a new subscriber.
    assert {(s.cause, s.online) for s in statuses(seen)} == {("shutdown", False)}
    assert [s.cause for s in tap.statuses()] == ["birth", "shutdown"]


# A device program the test can kill -9: the broker must then publish the will.
DEVICE_PROGRAM = """
import sys, time
from shelflink.device import DeviceClient, DeviceIdentity, DeviceKind, SequenceStore
url, store, device, path = sys.argv[1:]
identity = DeviceIdentity(store, device, DeviceKind.SCANNER)
client = DeviceClient(identity, url, SequenceStore(path))
client.connect()
client.wait_connected(10)
time.sleep(60)
"""


def test_the_will_is_delivered_when_the_device_process_is_killed(
    mqtt_url: str, tmp_path: Path
) -> None:
    identity = new_identity(DeviceKind.SCANNER)
    argv = [mqtt_url, identity.store_id, identity.device_id, str(tmp_path / "seq")]
    with Tap(mqtt_url, identity, tidy=True) as tap:
        device = subprocess.Popen([sys.executable, "-c", DEVICE_PROGRAM, *argv])
        try:
            tap.wait_for(has_status("birth"), timeout_s=20)
        finally:
            device.send_signal(signal.SIGKILL)
            device.wait(timeout=WAIT_S)
        tap.wait_for(has_status("will"))
        birth, will = tap.statuses()
        with Tap(mqtt_url, identity) as late:
            retained = late.wait_for(lambda seen: bool(statuses(seen)))
    assert (will.online, will.cause) == (False, "will")
    # Composed at connect time: the same boot and the same announced seq as the birth.
    assert (will.boot_id, will.seq, will.device) == (birth.boot_id, birth.seq, identity.device_id)
    assert retained[0].retain and set(statuses(retained)) == {will}


def test_commands_are_executed_refused_or_survived(
    mqtt_url: str, identity: DeviceIdentity, tap: Tap, sequence: SequenceStore
) -> None:
    executed: list[Command] = []
    network_threads: set[str] = set()

    def handle(cmd: Command) -> CommandOutcome:
        network_threads.add(threading.current_thread().name)
        executed.append(cmd)
        if cmd.name == "reboot":
            raise RuntimeError("watchdog busy")
        return CommandOutcome.success()

    tare, stale, reboot = (
        command("tare", lane=1),
        command("tare", lane=2, age_ms=10_000, lifetime_ms=5_000),
        command("reboot"),
    )
    with DeviceClient(identity, mqtt_url, sequence, on_command=handle) as client:
        client.wait_connected(WAIT_S)
        tap.send_command(b"{not json")
        tap.send_command(b'{"v":1,"type":"command","id":"x"}')
        for cmd in (tare, stale, reboot):
            tap.send_command(cmd)
        tap.wait_for(lambda seen: all(has_reply(c.id)(seen) for c in (tare, stale, reboot)))
        client.flush(WAIT_S)
        stats = client.stats
    answers = {r.id: (r.ok, r.error) for r in tap.replies()}
    assert answers == {
        tare.id: (True, None),
        stale.id: (False, "expired"),
        reboot.id: (False, "RuntimeError: watchdog busy"),
    }
    assert [c.id for c in executed] == [tare.id, reboot.id]
    assert executed[0].lane == 1
    assert network_threads == {f"paho-mqtt-client-{identity.device_id}"}
    # Replies are data: they carry seqs and count as published.
    assert (stats.malformed_commands, stats.published, stats.last_seq) == (2, 3, 2)


@pytest.mark.parametrize(
    ("overflow", "kept"), [(Overflow.DROP_OLDEST, [2, 3, 4]), (Overflow.DROP_NEWEST, [0, 1, 2])]
)
def test_messages_queued_offline_overflow_by_policy_and_the_rest_arrive(
    mqtt_url: str,
    identity: DeviceIdentity,
    tap: Tap,
    sequence: SequenceStore,
    overflow: Overflow,
    kept: list[int],
) -> None:
    client = DeviceClient(identity, mqtt_url, sequence, queue_limit=3, overflow=overflow)
    messages = [reading(identity, client.next_seq()) for _ in range(5)]
    for message in messages:
        client.publish(message)
    offline = client.stats
    with client:
        client.flush(WAIT_S)
    assert (offline.dropped, offline.queued, offline.connected) == (2, 3, False)
    seen = tap.wait_for(has_status("shutdown"))
    delivered = [m.seq for m in (s.message for s in seen) if m is not None and m.type != "status"]
    assert delivered == kept


def test_waits_are_bounded_and_misuse_is_refused(
    identity: DeviceIdentity, sequence: SequenceStore
) -> None:
    nowhere = f"mqtt://127.0.0.1:{unused_port()}"
    client = DeviceClient(identity, nowhere, sequence, connect_timeout_s=1.0)
    client.publish(reading(identity, client.next_seq()))
    with pytest.raises(ClientClosedError):
        client.flush(0.1)
    with client:
        with pytest.raises(ReentrantClientError):
            client.connect()
        with pytest.raises(DeviceTimeoutError, match="connect"):
            client.wait_connected(0.3)
        with pytest.raises(DeviceTimeoutError, match="queued 1"):
            client.flush(0.1)
    assert client.stats.queued == 1  # kept for the next session, not lost
    assert not [t for t in threading.enumerate() if identity.device_id in t.name]
