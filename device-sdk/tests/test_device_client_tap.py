"""A raw paho subscriber that sees what a gateway would see, for the device client tests.

Imported by the device client tests here and by the cross-process tests in the
top-level tests/ (``device-sdk/tests`` is on pytest's pythonpath). Everything
waits with a bound; a wait that runs out fails with what was seen so far.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shelflink.device import (
    BrokerAddress,
    Command,
    ContractError,
    DeviceIdentity,
    DeviceKind,
    DeviceMessage,
    Reply,
    ShelfReading,
    Status,
    decode,
    encode,
)
from shelflink.device.session import now_ms
from shelflink.device.topics import Channel, subscription

STORE = "s0001"
CommandName = Literal["tare", "set_interval", "reboot"]
WAIT_S = 10.0


def unused_port() -> int:
    """A loopback port with nothing listening: a broker that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_identity(kind: DeviceKind = DeviceKind.SHELF) -> DeviceIdentity:
    """A device id of its own per test: retained statuses must not leak between tests."""
    return DeviceIdentity(
        STORE,
        f"dev-{uuid.uuid4().hex[:12]}",
        kind,
        firmware="1.2.3",
        lanes=4 if kind is DeviceKind.SHELF else None,
    )


def reading(identity: DeviceIdentity, seq: int) -> ShelfReading:
    return ShelfReading(
        device=identity.device_id, seq=seq, ts=now_ms(), grams=[100.0, None, 0.5, 3.0], board_c=21.5
    )


def command(
    name: CommandName = "tare", *, age_ms: int = 0, lifetime_ms: int = 60_000, **args: Any
) -> Command:
    """A command issued ``age_ms`` ago that expires ``lifetime_ms`` after it was issued."""
    ts = now_ms() - age_ms
    return Command(
        id=f"cmd-{uuid.uuid4().hex[:10]}", ts=ts, expires=ts + lifetime_ms, name=name, **args
    )


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    # Decoded on arrival with the gateway's own decoder; None for an empty
    # (retained-clearing) payload or one that breaks the contract.
    message: DeviceMessage | None

    @classmethod
    def of(cls, topic: str, payload: bytes, retain: bool) -> Seen:
        try:
            message: DeviceMessage | None = decode(topic, payload, now_ms=now_ms())[1]
        except ContractError:
            message = None
        return cls(topic, payload, retain, message)


class Tap:
    """Subscribes to one device's topics (all channels) at QoS 1 and records every message."""

    def __init__(self, url: str, identity: DeviceIdentity, *, tidy: bool = False) -> None:
        """``tidy``: clear the device's retained status on the way out, so that
        nothing of a test is left on a shared broker."""
        self._tidy = tidy
        address = BrokerAddress.parse(url)
        self._address = address
        self.identity = identity
        self.seen: list[Seen] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"tap-{uuid.uuid4().hex[:12]}"
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- paho callbacks -----------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.subscribe(subscription(self.identity.store_id, self.identity.device_id, "+"), qos=1)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.seen.append(Seen.of(message.topic, bytes(message.payload), bool(message.retain)))
            self._changed.notify_all()

    # -- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> Self:
        self._client.connect(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(WAIT_S):
            self.__exit__(None, None, None)
            raise AssertionError("tap: no SUBACK within the wait")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tidy:
                self.clear_retained_status()
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def clear_retained_status(self) -> None:
        """Leave the shared broker as we found it: no retained status of a test device."""
        self.send(self.identity.topic(Channel.STATUS), b"", retain=True)

    # -- acting -------------------------------------------------------------------

    def send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), f"tap: publish to {topic} not acknowledged"

    def send_command(self, payload: Command | bytes) -> None:
        body = payload if isinstance(payload, bytes) else encode(payload)
        self.send(self.identity.topic(Channel.COMMAND), body)

    # -- observing ----------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[list[Seen]], bool], timeout_s: float = WAIT_S
    ) -> list[Seen]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self.seen):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(s.topic.rsplit("/", 1)[-1], s.payload[:80]) for s in self.seen]
                    raise AssertionError(f"tap: condition not met in {timeout_s} s; saw {summary}")
                self._changed.wait(remaining)
            return list(self.seen)

    async def await_for(
        self, predicate: Callable[[list[Seen]], bool], timeout_s: float = WAIT_S
    ) -> list[Seen]:
        return await asyncio.to_thread(self.wait_for, predicate, timeout_s)

    def statuses(self) -> list[Status]:
        with self._changed:
            return statuses(self.seen)

    def replies(self) -> list[Reply]:
        with self._changed:
            return replies(self.seen)


def statuses(seen: list[Seen]) -> list[Status]:
    return [s.message for s in seen if isinstance(s.message, Status)]


def has_status(cause: str, count: int = 1) -> Callable[[list[Seen]], bool]:
    return lambda seen: sum(1 for m in statuses(seen) if m.cause == cause) >= count


def replies(seen: list[Seen]) -> list[Reply]:
    return [s.message for s in seen if isinstance(s.message, Reply)]


def has_reply(command_id: str) -> Callable[[list[Seen]], bool]:
    return lambda seen: any(reply.id == command_id for reply in replies(seen))


def has_payloads(payloads: list[bytes]) -> Callable[[list[Seen]], bool]:
    wanted = set(payloads)
    return lambda seen: wanted <= {s.payload for s in seen}


def test_tap_sees_a_retained_message_and_clears_it(mqtt_url: str) -> None:
    identity = new_identity()
    status_topic = identity.topic(Channel.STATUS)
    with Tap(mqtt_url, identity) as writer:
        writer.send(status_topic, b"{}", retain=True)
    with Tap(mqtt_url, identity) as reader:
        seen = reader.wait_for(lambda seen: any(s.retain for s in seen))
        assert seen[0].payload == b"{}"
        reader.clear_retained_status()
    with Tap(mqtt_url, identity) as after:
        time.sleep(0.3)
        assert not [s for s in after.seen if s.retain and s.payload]
