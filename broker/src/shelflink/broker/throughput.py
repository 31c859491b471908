"""Publish/subscribe throughput through a broker, measured with real paho-mqtt clients."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import uuid
from typing import TypedDict

import paho.mqtt.client as mqtt

from shelflink.broker.address import BrokerAddress
from shelflink.broker.probe_client import ProbeClient

_SEQ = struct.Struct(">Q")
_STALL_S = 5.0


class ThroughputReport(TypedDict):
    url: str
    qos: int
    payload_bytes: int
    window: int | None
    sent: int
    received: int
    duplicates: int
    out_of_order: int
    seconds: float
    messages_per_s: float
    complete: bool


class _Receiver:
    """Counts what the subscriber gets; runs on the subscriber's paho thread."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[int] = set()
        self.duplicates = 0
        self.out_of_order = 0
        self.last_seq = -1
        self.last_at = 0.0
        self.progress = threading.Condition()

    def on_message(self, message: mqtt.MQTTMessage) -> None:
        (seq,) = _SEQ.unpack_from(message.payload)
        with self.progress:
            self.last_at = time.perf_counter()
            if seq in self.seen:
                self.duplicates += 1
                return
            if seq < self.last_seq:
                self.out_of_order += 1
            self.last_seq = seq
            self.seen.add(seq)
            self.progress.notify_all()

    def wait_for(self, received: int, deadline: float) -> bool:
        """Wait until at least ``received`` messages are in. Give up at the monotonic
        ``deadline`` or once nothing has arrived for ``_STALL_S`` (a lost message would
        otherwise hold the publisher's window shut until the deadline)."""
        with self.progress:
            while len(self.seen) < received:
                before = len(self.seen)
                remaining = min(deadline - time.monotonic(), _STALL_S)
                if remaining <= 0:
                    return False
                self.progress.wait(remaining)
                if len(self.seen) == before:
                    return False
            return True


def measure_throughput(
    url: str,
    count: int = 20_000,
    payload_bytes: int = 300,
    qos: int = 1,
    *,
    window: int | None = 500,
    timeout_s: float = 60.0,
) -> ThroughputReport:
    """Publish ``count`` messages of ``payload_bytes`` at ``qos`` from one client and receive
    them on another, subscribed at the same QoS. Blocks for at most about ``timeout_s``.

    ``messages_per_s`` is unique messages received divided by the time from the first
    publish to the last receipt. ``complete`` says whether every message arrived.

    ``window`` bounds how many messages may be published and not yet received. Brokers
    drop messages for a subscriber whose queue overflows (Mosquitto keeps 1000 by default,
    QoS 1 included), and a Python subscriber is slower than a C broker, so an unbounded
    publisher measures the drop policy rather than the throughput. ``None`` measures
    exactly that fire-hose case.

    This call blocks its thread. Never call it from a coroutine in the thread whose event
    loop runs an ``EmbeddedBroker``: the broker would starve. Use ``asyncio.to_thread``.
    """
    if payload_bytes < _SEQ.size:
        raise ValueError(f"payload_bytes must be at least {_SEQ.size}")
    if qos not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("measure_throughput blocks: call it via asyncio.to_thread")

    run = uuid.uuid4().hex[:12]
    topic = f"shelflink/bench/{run}"
    padding = b"\x00" * (payload_bytes - _SEQ.size)
    receiver = _Receiver(count)
    deadline = time.monotonic() + timeout_s

    with (
        ProbeClient(url, f"bench-sub-{run}", on_message=receiver.on_message) as subscriber,
        ProbeClient(url, f"bench-pub-{run}") as publisher,
    ):
        subscriber.connect(timeout_s=min(10.0, timeout_s))
        subscriber.subscribe(topic, qos, timeout_s=min(10.0, timeout_s))
        publisher.connect(timeout_s=min(10.0, timeout_s))
        started = time.perf_counter()
        for seq in range(count):
            if (
                window is not None
                and seq >= window
                and not receiver.wait_for(seq - window, deadline)
            ):
                break
            publisher.publish(topic, _SEQ.pack(seq) + padding, qos)
        receiver.wait_for(count, deadline)
        # The subscriber's thread may still be appending: read a consistent snapshot by
        # stopping it first.
        subscriber.close()

    with receiver.progress:
        received = len(receiver.seen)
    elapsed = (receiver.last_at - started) if received else time.perf_counter() - started
    return ThroughputReport(
        url=BrokerAddress.parse(url).url,
        qos=qos,
        payload_bytes=payload_bytes,
        window=window,
        sent=count,
        received=received,
        duplicates=receiver.duplicates,
        out_of_order=receiver.out_of_order,
        seconds=round(elapsed, 3),
        messages_per_s=round(received / elapsed, 1) if elapsed > 0 else 0.0,
        complete=received == count,
    )
