"""A connection's life in the embedded broker: takeover, last will, keep-alive.

Written as a device sees it: a device connects with its client id and a retained will
on its status topic, publishes a retained birth, and reconnects with the same client id
whenever its link breaks, sometimes before the broker has noticed that the old
connection is gone. Every client is a real paho client; paho's calls block, so each
scenario runs in a worker thread while the broker runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shelflink.broker import BrokerConnectError, EmbeddedBroker
from shelflink.broker.address import BrokerAddress
from shelflink.broker.probe_client import Inbox, ProbeClient, Received, Will

STATUS = "shelflink/v1/s1/shelf-1/status"
COMMAND = "shelflink/v1/s1/shelf-1/cmd"
DEVICE = "s1-shelf-1"
PROMPT_S = 2.0  # well under the 10 s a device waits for CONNACK


def _will(payload: bytes, *, retain: bool = True) -> Will:
    return Will(STATUS, payload, qos=1, retain=retain)


def _payloads(messages: list[Received], topic: str = STATUS) -> list[bytes]:
    return [m.payload for m in messages if m.topic == topic]


def _has(payload: bytes, topic: str = STATUS) -> Callable[[list[Received]], bool]:
    return lambda messages: payload in _payloads(messages, topic)


@contextmanager
def _watching(url: str, topic_filter: str = STATUS) -> Iterator[Inbox]:
    """A subscriber, as the gateway is, to every status the device publishes."""
    inbox = Inbox()
    with ProbeClient(url, "test-watcher", on_message=inbox.on_message) as watcher:
        watcher.connect()
        watcher.subscribe(topic_filter, 1)
        yield inbox


def _retained_status(url: str) -> Received | None:
    """What a subscriber that arrives now is handed for the status topic."""
    inbox = Inbox()
    with ProbeClient(url, "test-late-reader", on_message=inbox.on_message) as reader:
        reader.connect()
        reader.subscribe(STATUS, 1)
        inbox.wait_until(bool, 1.0)
    return inbox.messages[0] if inbox.messages else None


def _timed_connect(client: ProbeClient) -> float:
    started = time.monotonic()
    client.connect(timeout_s=10.0)
    return time.monotonic() - started


def _takeover(url: str, *, clean_session: bool, hang_first: bool) -> None:
    with ExitStack() as stack:
        watcher = stack.enter_context(_watching(url))
        first_inbox, second_inbox = Inbox(), Inbox()
        first = stack.enter_context(
            ProbeClient(
                url,
                DEVICE,
                clean_session=clean_session,
                will=_will(b"will-1"),
                on_message=first_inbox.on_message,
            )
        )
        first.connect()
        first.subscribe(COMMAND, 1)
        first.publish(STATUS, b"birth-1", 1, retain=True).wait_for_publish(5.0)
        if hang_first:
            first.hang()  # the old link is dead, but nothing told the broker

        second = stack.enter_context(
            ProbeClient(
                url,
                DEVICE,
                clean_session=clean_session,
                will=_will(b"will-2"),
                on_message=second_inbox.on_message,
            )
        )
        assert _timed_connect(second) < PROMPT_S
        # A persistent session is handed over with its subscription; a clean one is not.
        assert second.session_present is not clean_session
        if clean_session:
            second.subscribe(COMMAND, 1)
        second.publish(STATUS, b"birth-2", 1, retain=True).wait_for_publish(5.0)

        if not hang_first:
            # [MQTT-3.1.4-2]: the broker closed the old connection.
            assert first.wait_gone(PROMPT_S)
        # The old connection's will, once, and before the new birth.
        assert watcher.wait_until(_has(b"birth-2"), 5.0)
        assert _payloads(watcher.messages) == [b"birth-1", b"will-1", b"birth-2"]

        # Commands reach the new connection, and only that one.
        with ProbeClient(url, "test-commander") as commander:
            commander.connect()
            commander.publish(COMMAND, b"tare", 1).wait_for_publish(5.0)
        assert second_inbox.wait_until(_has(b"tare", COMMAND), 5.0)
        assert _payloads(first_inbox.messages, COMMAND) == []

        # Nothing left over from the old connection replaces the birth later.
        time.sleep(0.5)
        retained = _retained_status(url)
        assert retained == Received(STATUS, b"birth-2", retain=True)
        assert _payloads(watcher.messages) == [b"birth-1", b"will-1", b"birth-2"]


@pytest.mark.parametrize("clean_session", [True, False], ids=["clean", "persistent"])
async def test_a_reconnect_with_the_same_client_id_takes_over(clean_session: bool) -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(
            _takeover, broker.url, clean_session=clean_session, hang_first=False
        )


async def test_taking_over_a_connection_that_stopped_reading_is_prompt() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_takeover, broker.url, clean_session=True, hang_first=True)


def _intruder_cannot_take_over(url: str, port: int) -> None:
    with _watching(url) as watcher:
        inbox = Inbox()
        with ProbeClient(
            f"mqtt://dev:pw@127.0.0.1:{port}",
            DEVICE,
            will=_will(b"will-1"),
            on_message=inbox.on_message,
        ) as device:
            device.connect()
            device.subscribe(COMMAND, 1)
            with (
                pytest.raises(BrokerConnectError, match="Not authorized"),
                ProbeClient(f"mqtt://dev:wrong@127.0.0.1:{port}", DEVICE) as intruder,
            ):
                intruder.connect()
            assert not device.wait_gone(0.5)
            with ProbeClient(f"mqtt://dev:pw@127.0.0.1:{port}", "test-commander") as commander:
                commander.connect()
                commander.publish(COMMAND, b"tare", 1).wait_for_publish(5.0)
            assert inbox.wait_until(_has(b"tare", COMMAND), 5.0)
        assert _payloads(watcher.messages) == []


async def test_a_refused_connect_with_a_known_client_id_changes_nothing() -> None:
    async with EmbeddedBroker(users={"dev": "pw"}, allow_anonymous=True) as broker:
        await asyncio.to_thread(_intruder_cannot_take_over, broker.url, broker.port)


def _will_after(url: str, end: Callable[[ProbeClient], None], *, retain: bool) -> None:
    with _watching(url) as watcher:
        with ProbeClient(url, DEVICE, will=_will(b"offline", retain=retain)) as device:
            device.connect()
            device.publish(STATUS, b"online", 1, retain=True).wait_for_publish(5.0)
            end(device)
            assert watcher.wait_until(_has(b"offline"), 5.0)
        # Delivered live: RETAIN=0 on an established subscription [MQTT-3.3.1-9].
        assert watcher.messages[-1] == Received(STATUS, b"offline", retain=False)
    expected = b"offline" if retain else b"online"
    assert _retained_status(url) == Received(STATUS, expected, retain=True)


@pytest.mark.parametrize("retain", [True, False], ids=["will-retained", "will-not-retained"])
async def test_a_crashed_client_leaves_its_will(retain: bool) -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_will_after, broker.url, ProbeClient.drop, retain=retain)


def _silent_for_the_keepalive(url: str) -> None:
    with (
        _watching(url) as watcher,
        ProbeClient(url, DEVICE, will=_will(b"offline"), keepalive_s=1) as device,
    ):
        device.connect()
        device.hang()
        # [MQTT-3.1.2-24]: after one and a half keep-alives (2 s here) without a packet.
        started = time.monotonic()
        assert watcher.wait_until(_has(b"offline"), 5.0)
        assert 0.5 <= time.monotonic() - started < 3.5
    assert _retained_status(url) == Received(STATUS, b"offline", retain=True)


async def test_a_client_silent_past_its_keepalive_is_dropped_and_leaves_its_will() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_silent_for_the_keepalive, broker.url)


def _goodbye(url: str) -> None:
    with _watching(url) as watcher:
        with ProbeClient(url, DEVICE, will=_will(b"offline")) as device:
            device.connect()
            device.publish(STATUS, b"shutdown", 1, retain=True).wait_for_publish(5.0)
        assert watcher.wait_until(_has(b"shutdown"), 5.0)
        time.sleep(0.5)
        assert _payloads(watcher.messages) == [b"shutdown"]


async def test_a_clean_disconnect_discards_the_will() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_goodbye, broker.url)


def _reconnect_with_a_new_will(url: str) -> None:
    with ProbeClient(url, DEVICE, clean_session=False, will=_will(b"offline-1")) as device:
        device.connect()
        device.publish(STATUS, b"online", 1, retain=True).wait_for_publish(5.0)
    with _watching(url) as watcher:
        with ProbeClient(
            url, DEVICE, clean_session=False, will=_will(b"offline-2", retain=False)
        ) as device:
            device.connect()
            assert device.session_present
            device.drop()
        assert watcher.wait_until(_has(b"offline-2"), 5.0)
    # The will of the connection that ended, with that connection's retain flag.
    assert _retained_status(url) == Received(STATUS, b"online", retain=True)


async def test_a_resumed_session_uses_the_will_of_its_new_connection() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_reconnect_with_a_new_will, broker.url)


class _ManualAckSubscriber:
    """A persistent subscriber that acknowledges a message only once it has handled it,
    and handles nothing before its SUBACK: the gateway's southbound link."""

    def __init__(self, url: str, client_id: str) -> None:
        address = BrokerAddress.parse(url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._acked = 0
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self.received: list[tuple[int, bytes]] = []  # (mid, payload)
        self._client.connect(address.host, address.port)
        self._client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: Any) -> None:
        with self._lock:
            self.received.append((message.mid, bytes(message.payload)))

    def subscribe(self, topic_filter: str) -> float:
        started = time.monotonic()
        self._client.subscribe(topic_filter, 1)
        assert self._subscribed.wait(10.0), "no SUBACK"
        return time.monotonic() - started

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [payload for _, payload in self.received]

    def ack(self, up_to: int | None = None) -> None:
        """Acknowledge what arrived and is not acknowledged yet, up to message ``up_to``."""
        with self._lock:
            end = len(self.received) if up_to is None else up_to
            for mid, _ in self.received[self._acked : end]:
                self._client.ack(mid, 1)
            self._acked = max(self._acked, end)

    def crash(self) -> None:
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _publish(url: str, values: range) -> None:
    with ProbeClient(url, "test-device") as device:
        device.connect()
        for info in [device.publish("store/reading", f"{v}".encode(), 1) for v in values]:
            info.wait_for_publish(5.0)


def _until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _crash_and_resume(url: str) -> None:
    gateway = _ManualAckSubscriber(url, "test-gateway")
    gateway.subscribe("store/#")
    _publish(url, range(20))
    assert _until(lambda: len(gateway.payloads()) == 20, 5.0)
    gateway.ack(10)
    time.sleep(0.2)
    gateway.crash()  # 10..19 were delivered and never acknowledged
    _publish(url, range(20, 40))  # queued for the offline session

    gateway = _ManualAckSubscriber(url, "test-gateway")
    try:
        # The re-sent and queued messages wait for acknowledgements that come only
        # after the SUBACK: the broker must answer the SUBSCRIBE meanwhile.
        assert gateway.subscribe("store/#") < PROMPT_S
        wanted = [f"{v}".encode() for v in range(10, 40)]

        def caught_up() -> bool:
            gateway.ack()  # as it commits them
            return set(wanted) <= set(gateway.payloads())

        assert _until(caught_up, 5.0), gateway.payloads()
        first_seen = list(dict.fromkeys(gateway.payloads()))
        # [MQTT-4.4.0-1] the unacknowledged ones again, then the queue, in order.
        assert first_seen == wanted
    finally:
        gateway.close()


async def test_a_persistent_subscriber_that_crashed_gets_every_unacknowledged_message() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_crash_and_resume, broker.url)
