"""The in-process embedded broker, exercised with real paho-mqtt clients.

paho's calls block, so every client interaction runs in a worker thread: the broker runs
on this test's event loop and must keep running while a client waits.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shelflink.broker import (
    BrokerConnectError,
    BrokerError,
    BrokerReentrantError,
    BrokerStartError,
    BrokerUnreachableError,
    EmbeddedBroker,
    wait_for_broker,
)
from shelflink.broker.conformance import check_session_redelivery
from shelflink.broker.probe_client import ProbeClient


def _roundtrip(url: str, topic: str, payloads: list[bytes], qos: int = 1) -> list[bytes]:
    """Publish ``payloads`` from one client, return what a second client received."""
    received: list[bytes] = []
    all_in = threading.Event()

    def on_message(message: mqtt.MQTTMessage) -> None:
        received.append(bytes(message.payload))
        if len(received) == len(payloads):
            all_in.set()

    with (
        ProbeClient(url, "test-sub", on_message=on_message) as subscriber,
        ProbeClient(url, "test-pub") as publisher,
    ):
        subscriber.connect()
        subscriber.subscribe(topic, qos)
        publisher.connect()
        for payload in payloads:
            publisher.publish(topic, payload, qos).wait_for_publish(5.0)
        all_in.wait(5.0)
    return received


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_port_zero_picks_a_port_and_stopping_closes_it() -> None:
    broker = EmbeddedBroker(port=0)
    with pytest.raises(BrokerError):
        _ = broker.port
    async with broker:
        assert broker.running
        assert broker.host == "127.0.0.1"
        assert broker.port > 0
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        await wait_for_broker(broker.host, broker.port, timeout_s=5)
    assert not broker.running
    with pytest.raises(BrokerUnreachableError):
        await wait_for_broker(broker.host, broker.port, timeout_s=0.5)


async def test_publish_subscribe_round_trip() -> None:
    payloads = [f"reading-{i}".encode() for i in range(50)]
    async with EmbeddedBroker() as broker:
        received = await asyncio.to_thread(
            _roundtrip, broker.url, "shelflink/v1/store-1/shelf-1/reading", payloads
        )
    assert received == payloads


async def test_reusable_on_the_same_port_but_not_reentrant() -> None:
    broker = EmbeddedBroker()
    async with broker:
        first_port = broker.port
        with pytest.raises(BrokerReentrantError):
            async with broker:
                pass
        # The failed re-entry must not have stopped the running broker.
        await wait_for_broker(broker.host, first_port, timeout_s=5)
    async with broker:
        assert broker.port == first_port
        assert await asyncio.to_thread(_roundtrip, broker.url, "again", [b"x"]) == [b"x"]


def _connected_client(url: str, gone: threading.Event) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-stays")
    client.reconnect_delay_set(60, 60)  # no reconnect to the restarted broker in this test
    client.on_disconnect = lambda *_args: gone.set()
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    return client


async def test_stopping_disconnects_connected_clients() -> None:
    gone = threading.Event()
    broker = EmbeddedBroker()
    async with broker:
        client = await asyncio.to_thread(_connected_client, broker.url, gone)
        await asyncio.sleep(0.2)
        assert not gone.is_set()
    try:
        assert await asyncio.to_thread(gone.wait, 5.0)
    finally:
        await asyncio.to_thread(client.loop_stop)


async def test_a_taken_port_is_a_start_error() -> None:
    async with EmbeddedBroker() as first:
        with pytest.raises(BrokerStartError):
            async with EmbeddedBroker(port=first.port):
                pass


async def test_the_block_exits_with_its_error_and_the_broker_stops() -> None:
    broker = EmbeddedBroker()
    with pytest.raises(RuntimeError, match="boom"):
        async with broker:
            raise RuntimeError("boom")
    assert not broker.running
    with pytest.raises(BrokerUnreachableError):
        await wait_for_broker(broker.host, broker.port, timeout_s=0.5)


def _connect(url: str) -> None:
    with ProbeClient(url, "test-auth") as client:
        client.connect()


async def test_authentication() -> None:
    users = {"gateway-17": "s3cret"}
    async with EmbeddedBroker(users=users, allow_anonymous=False) as broker:
        port = broker.port
        await asyncio.to_thread(_connect, f"mqtt://gateway-17:s3cret@127.0.0.1:{port}")
        with pytest.raises(BrokerConnectError, match="Not authorized"):
            await asyncio.to_thread(_connect, f"mqtt://gateway-17:wrong@127.0.0.1:{port}")
        with pytest.raises(BrokerConnectError, match="Not authorized"):
            await asyncio.to_thread(_connect, f"mqtt://intruder:s3cret@127.0.0.1:{port}")
        with pytest.raises(BrokerConnectError, match="Not authorized"):
            await asyncio.to_thread(_connect, broker.url)


async def test_anonymous_allowed_next_to_known_users() -> None:
    async with EmbeddedBroker(users={"ops": "pw"}, allow_anonymous=True) as broker:
        await asyncio.to_thread(_connect, broker.url)
        with pytest.raises(BrokerConnectError):
            await asyncio.to_thread(_connect, f"mqtt://ops:nope@127.0.0.1:{broker.port}")


def test_refusing_anonymous_needs_users() -> None:
    with pytest.raises(ValueError):
        EmbeddedBroker(allow_anonymous=False)


async def test_persistent_session_gets_queued_messages_without_retain_flag() -> None:
    async with EmbeddedBroker() as broker:
        report = await asyncio.to_thread(check_session_redelivery, broker.url, 50)
    assert report["complete"], report
    assert report["in_order"], report
    assert report["subscription_kept"], report
    # amqtt alone sets RETAIN on these; EmbeddedBroker corrects it (see amqtt_broker.py).
    assert not report["retain_flag_on_redelivery"], report


def _publish_expecting_disconnect(url: str, topic: str, payload: bytes) -> bool:
    """Return True if the broker closed the connection after the publish."""
    closed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-big")
    client.on_disconnect = lambda *_args: closed.set()
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1)
        return closed.wait(5.0)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_max_packet_bytes_disconnects_the_sender_and_drops_the_message() -> None:
    async with EmbeddedBroker(max_packet_bytes=1024) as broker:
        small = await asyncio.to_thread(_roundtrip, broker.url, "sized", [b"a" * 900])
        assert small == [b"a" * 900]
        received: list[bytes] = []
        watcher = ProbeClient(
            broker.url, "test-watch", on_message=lambda m: received.append(bytes(m.payload))
        )
        try:
            await asyncio.to_thread(watcher.connect)
            await asyncio.to_thread(watcher.subscribe, "sized", 1)
            closed = await asyncio.to_thread(
                _publish_expecting_disconnect, broker.url, "sized", b"b" * 2000
            )
            # Give a wrongly forwarded message time to arrive before asserting it did not.
            await asyncio.sleep(0.3)
        finally:
            await asyncio.to_thread(watcher.close)
        assert closed
        assert received == []


async def test_wait_for_broker_gives_up_on_a_closed_port() -> None:
    port = _free_port()
    with pytest.raises(BrokerUnreachableError, match=str(port)):
        await wait_for_broker("127.0.0.1", port, timeout_s=0.3)
