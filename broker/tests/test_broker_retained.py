"""Retained messages in the embedded broker: who gets them, when, and how many times.

MQTT 3.1.1 hands retained messages to a client in answer to its SUBSCRIBE, for the
topics that subscription's filter matches [MQTT-3.3.1-6], and a message published
around that moment arrives once: as the retained copy if it was there first, or live
if the subscription was. The topics are Shelflink's: every device publishes a retained
status, listens on its own cmd topic, and the gateway watches every status.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import pytest

from shelflink.broker import EmbeddedBroker
from shelflink.broker.probe_client import Inbox, ProbeClient, Received

ALL_STATUSES = "shelflink/v1/+/+/status"
QUIET_S = 0.5  # how long a client waits to be sure nothing more arrives


def _status(device: str) -> str:
    return f"shelflink/v1/s1/{device}/status"


def _command(device: str) -> str:
    return f"shelflink/v1/s1/{device}/cmd"


@contextmanager
def _gateway(url: str) -> Iterator[Inbox]:
    inbox = Inbox()
    with ProbeClient(url, "test-gateway", on_message=inbox.on_message) as gateway:
        gateway.connect()
        gateway.subscribe(ALL_STATUSES, 1)
        yield inbox


def _birth(url: str, device: str) -> None:
    with ProbeClient(url, device) as client:
        client.connect()
        client.publish(_status(device), b"online", 1, retain=True).wait_for_publish(5.0)


def _only_own_filters(url: str) -> None:
    with _gateway(url):
        _birth(url, "shelf-1")
        _birth(url, "shelf-2")
        for clean_session in (True, False, False):  # new, then resumed twice
            inbox = Inbox()
            with ProbeClient(
                url, "shelf-3", clean_session=clean_session, on_message=inbox.on_message
            ) as device:
                device.connect()
                device.subscribe(_command("shelf-3"), 1)
                time.sleep(QUIET_S)
            # The gateway's filter matches both statuses; the device's own does not.
            assert inbox.messages == []

        # Subscribing to a status hands over that status, once.
        inbox = Inbox()
        with ProbeClient(url, "test-reader", on_message=inbox.on_message) as reader:
            reader.connect()
            reader.subscribe(_status("shelf-1"), 1)
            time.sleep(QUIET_S)
        assert inbox.messages == [Received(_status("shelf-1"), b"online", retain=True)]


async def test_a_client_gets_the_retained_messages_of_its_own_filters_only() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_only_own_filters, broker.url)


def _resume_without_copies(url: str) -> None:
    _birth(url, "shelf-1")
    inbox = Inbox()
    with ProbeClient(url, "test-gateway", clean_session=False, on_message=inbox.on_message) as gw:
        gw.connect()
        gw.subscribe(ALL_STATUSES, 1)
        assert inbox.wait_until(bool, 5.0)
    with ProbeClient(url, "test-gateway", clean_session=False, on_message=inbox.on_message) as gw:
        gw.connect()
        assert gw.session_present
        time.sleep(QUIET_S)
        # A resumed session is not a new subscription: no retained copies [MQTT-3.8.4-3].
        assert len(inbox.messages) == 1
        _birth(url, "shelf-2")
        assert inbox.wait_until(lambda messages: len(messages) == 2, 5.0)
    assert inbox.messages[-1] == Received(_status("shelf-2"), b"online", retain=False)


async def test_a_resumed_session_gets_no_retained_copies() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_resume_without_copies, broker.url)


def _subscribe_while_it_changes(url: str, topic: str, updates: int) -> list[Received]:
    """Publish ``updates`` retained values to ``topic`` as fast as possible and subscribe
    halfway through; return what the subscriber got."""
    inbox = Inbox()
    with (
        ProbeClient(url, f"test-publisher-{topic}") as publisher,
        ProbeClient(url, f"test-subscriber-{topic}", on_message=inbox.on_message) as subscriber,
    ):
        publisher.set_max_inflight(updates)
        publisher.connect()
        subscriber.connect()
        infos = []
        for value in range(updates):
            infos.append(publisher.publish(topic, f"{value}".encode(), 1, retain=True))
            if value == updates // 2:
                subscriber.subscribe(topic, 1)
        for info in infos:
            info.wait_for_publish(10.0)
        last = f"{updates - 1}".encode()
        inbox.wait_until(lambda messages: any(m.payload == last for m in messages), 10.0)
        time.sleep(QUIET_S)
    return inbox.messages


def _values_arrive_once(url: str) -> None:
    for trial in range(5):
        got = _subscribe_while_it_changes(url, f"shelflink/v1/s1/shelf-{trial}/status", 300)
        values = [int(m.payload) for m in got]
        assert len(values) == len(set(values)), f"delivered twice: {values[:8]}…"
        # The retained value first (none if the SUBSCRIBE overtook the first PUBLISH),
        # then every later one live, in order, to the last.
        assert values == list(range(values[0], 300)), values[:8]
        assert not any(m.retain for m in got[1:]), got[:3]


@pytest.mark.slow
async def test_a_retained_message_reaches_a_new_subscriber_once_while_it_changes() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_values_arrive_once, broker.url)


def _connect_and_subscribe(url: str, device: str) -> tuple[ProbeClient, float]:
    client = ProbeClient(url, device)
    started = time.monotonic()
    client.connect(timeout_s=10.0)
    client.subscribe(_command(device), 1, timeout_s=10.0)
    return client, time.monotonic() - started


def _a_store_comes_online(url: str, devices: int) -> None:
    with ExitStack() as stack, _gateway(url):
        for index in range(5):
            _birth(url, f"old-{index}")
        names = [f"shelf-{index}" for index in range(devices)]
        with ThreadPoolExecutor(max_workers=devices) as pool:
            results = list(pool.map(_connect_and_subscribe, itertools.repeat(url), names))
        for client, _ in results:
            stack.callback(client.close)
        slowest = max(seconds for _, seconds in results)
        assert slowest < 2.0, f"a device waited {slowest:.1f} s for CONNACK and SUBACK"
        assert not any(client.wait_gone(0.0) for client, _ in results)


async def test_devices_connecting_at_once_are_all_served_promptly() -> None:
    async with EmbeddedBroker() as broker:
        await asyncio.to_thread(_a_store_comes_online, broker.url, 30)
