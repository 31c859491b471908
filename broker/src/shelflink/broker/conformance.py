"""Checks of the broker behaviours Shelflink cares about, run against any broker URL:
MQTT 5, shared subscriptions, and redelivery of queued QoS 1 messages to a persistent
session that was offline."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TypedDict

import paho.mqtt.client as mqtt

from shelflink.broker.errors import BrokerConnectError, BrokerError
from shelflink.broker.probe_client import ProbeClient

_STALL_S = 3.0


class RedeliveryReport(TypedDict):
    queued: int
    redelivered: int
    in_order: bool
    retain_flag_on_redelivery: bool
    subscription_kept: bool
    complete: bool


class SharedSubscriptionReport(TypedDict):
    published: int
    per_subscriber: list[int]
    error: str | None
    shared: bool


class _Inbox:
    """Collects messages on paho's thread; the caller waits on it with a deadline."""

    def __init__(self) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.changed = threading.Condition()

    def on_message(self, message: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()

    def wait_for(self, count: int, deadline: float) -> int:
        """Wait for ``count`` messages; stop early once nothing arrives for a while."""
        with self.changed:
            while len(self.messages) < count:
                before = len(self.messages)
                remaining = min(deadline - time.monotonic(), _STALL_S)
                if remaining <= 0:
                    break
                self.changed.wait(remaining)
                if len(self.messages) == before:
                    break
            return len(self.messages)


def supports_mqtt5(url: str, timeout_s: float = 5.0) -> bool:
    """Whether the broker accepts an MQTT 5 CONNECT."""
    with ProbeClient(url, f"probe-v5-{uuid.uuid4().hex[:12]}", mqtt5=True) as client:
        try:
            client.connect(timeout_s)
        except BrokerConnectError:
            return False
        return True


def check_session_redelivery(
    url: str, messages: int = 100, timeout_s: float = 15.0
) -> RedeliveryReport:
    """Subscribe with clean_session=False, disconnect, publish ``messages`` at QoS 1,
    reconnect without subscribing again and count what the broker hands over."""
    run = uuid.uuid4().hex[:12]
    topic = f"shelflink/probe/{run}/persistent"
    client_id = f"probe-persistent-{run}"
    deadline = time.monotonic() + timeout_s

    with ProbeClient(url, client_id, clean_session=False) as offline_soon:
        offline_soon.connect()
        offline_soon.subscribe(topic, 1)

    with ProbeClient(url, f"probe-publisher-{run}") as publisher:
        publisher.connect()
        infos = [publisher.publish(topic, f"{seq}".encode(), 1) for seq in range(messages)]
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        queued = sum(1 for info in infos if info.is_published())

    inbox = _Inbox()
    try:
        with ProbeClient(url, client_id, clean_session=False, on_message=inbox.on_message) as back:
            back.connect()
            redelivered = inbox.wait_for(queued, deadline)
            # One more message, published while connected, shows whether the broker kept
            # the subscription as part of the session (no SUBSCRIBE was sent this time).
            with ProbeClient(url, f"probe-publisher2-{run}") as publisher:
                publisher.connect()
                publisher.publish(topic, b"live", 1).wait_for_publish(5.0)
            total = inbox.wait_for(redelivered + 1, min(deadline, time.monotonic() + _STALL_S))
            with inbox.changed:
                received = list(inbox.messages)
    finally:
        # Drop the session so a broker with on-disk persistence does not keep it forever.
        with ProbeClient(url, client_id, clean_session=True) as cleaner:
            cleaner.connect()

    queued_payloads = {f"{seq}".encode() for seq in range(messages)}
    redelivered_unique = {m.payload for m in received if m.payload in queued_payloads}
    sequence = [int(m.payload) for m in received if m.payload in queued_payloads]
    return RedeliveryReport(
        queued=queued,
        redelivered=len(redelivered_unique),
        in_order=sequence == sorted(sequence),
        retain_flag_on_redelivery=any(m.retain for m in received if m.payload != b"live"),
        subscription_kept=total > redelivered,
        complete=len(redelivered_unique) == messages,
    )


def check_shared_subscription(
    url: str, messages: int = 100, timeout_s: float = 15.0
) -> SharedSubscriptionReport:
    """Two clients subscribe to one ``$share/<group>/<topic>`` filter; with a broker that
    supports shared subscriptions each message reaches exactly one of them."""
    run = uuid.uuid4().hex[:12]
    topic = f"shelflink/probe/{run}/shared"
    shared_filter = f"$share/probe-{run}/{topic}"
    mqtt5 = supports_mqtt5(url)
    deadline = time.monotonic() + timeout_s
    inboxes = [_Inbox(), _Inbox()]
    error: str | None = None
    with (
        ProbeClient(url, f"probe-s1-{run}", mqtt5=mqtt5, on_message=inboxes[0].on_message) as s1,
        ProbeClient(url, f"probe-s2-{run}", mqtt5=mqtt5, on_message=inboxes[1].on_message) as s2,
        ProbeClient(url, f"probe-sp-{run}", mqtt5=mqtt5) as publisher,
    ):
        s1.connect()
        s2.connect()
        publisher.connect()
        try:
            s1.subscribe(shared_filter, 1)
            s2.subscribe(shared_filter, 1)
        except BrokerError as exc:
            error = str(exc)
        else:
            for seq in range(messages):
                publisher.publish(topic, f"{seq}".encode(), 1)
            # Wait on the first inbox for all; a sharing broker splits them, so the
            # stall timeout ends the wait, which is the point where the sum is read.
            inboxes[0].wait_for(messages, deadline)
            inboxes[1].wait_for(messages, min(deadline, time.monotonic() + _STALL_S))
    counts = [len(inbox.messages) for inbox in inboxes]
    return SharedSubscriptionReport(
        published=messages if error is None else 0,
        per_subscriber=counts,
        error=error,
        shared=error is None and sum(counts) == messages and all(counts),
    )
