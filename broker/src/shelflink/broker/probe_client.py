"""A paho-mqtt client wrapped for measurements and tests: every wait has a deadline.

paho runs each client's network loop on its own thread (``loop_start``); that thread is the
library's, named ``paho-mqtt-client-<id>``. Callbacks run there and only touch state that
is guarded by ``_lock`` or by ``threading.Event``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from shelflink.broker.address import BrokerAddress
from shelflink.broker.errors import BrokerConnectError, BrokerError

MessageHandler = Callable[[mqtt.MQTTMessage], None]

_KEEPALIVE_S = 30


@dataclass(frozen=True, slots=True)
class Will:
    """The last will a client leaves with the broker at CONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """One PUBLISH as the client saw it; ``retain`` is the flag on the wire."""

    topic: str
    payload: bytes
    retain: bool


class Inbox:
    """Collects messages on paho's thread; the caller waits on it with a deadline."""

    def __init__(self) -> None:
        self._messages: list[Received] = []
        self._changed = threading.Condition()

    def on_message(self, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self._messages.append(Received(message.topic, bytes(message.payload), message.retain))
            self._changed.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._changed:
            return list(self._messages)

    def wait_until(self, predicate: Callable[[list[Received]], bool], timeout_s: float) -> bool:
        """Whether ``predicate`` held for the messages so far before ``timeout_s`` ran out."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self._messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True


class ProbeClient:
    """One MQTT connection. Use as a context manager: leaving it disconnects and joins the
    network thread."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        clean_session: bool = True,
        mqtt5: bool = False,
        on_message: MessageHandler | None = None,
        will: Will | None = None,
        keepalive_s: int = _KEEPALIVE_S,
    ) -> None:
        self.address = BrokerAddress.parse(url)
        self.client_id = client_id
        protocol = MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # MQTT 5 has no clean_session flag (it is clean_start, given to connect()).
            clean_session=None if mqtt5 else clean_session,
            protocol=protocol,
            # A probe measures one connection: a silent reconnect would hide what happened.
            reconnect_on_failure=False,
        )
        self._mqtt5 = mqtt5
        self._clean_session = clean_session
        self._keepalive_s = keepalive_s
        if will is not None:
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)
        if self.address.username is not None:
            self._client.username_pw_set(self.address.username, self.address.password)
        self._lock = threading.Lock()
        self._connack = threading.Event()
        self._gone = threading.Event()
        self._connect_reason: str | None = None
        self._session_present = False
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_arrived = threading.Condition(self._lock)
        self._user_on_message = on_message
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._started = False

    # -- callbacks (paho's network thread) -------------------------------------------------

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        with self._lock:
            self._connect_reason = None if not reason_code.is_failure else str(reason_code)
            self._session_present = flags.session_present
        self._connack.set()

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        with self._lock:
            if not self._connack.is_set():
                # The broker hung up before any CONNACK: that is its way to refuse a
                # protocol version it does not speak.
                self._connect_reason = f"connection closed before CONNACK ({reason_code})"
        self._connack.set()
        self._gone.set()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Any,
    ) -> None:
        with self._suback_arrived:
            self._subacks[mid] = reason_codes
            self._suback_arrived.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._user_on_message is not None:
            self._user_on_message(message)

    # -- caller's thread ------------------------------------------------------------------

    def connect(self, timeout_s: float = 5.0) -> None:
        """Connect and wait for a successful CONNACK; raise ``BrokerConnectError`` otherwise."""
        self._client.connect_timeout = timeout_s
        try:
            if self._mqtt5:
                self._client.connect(
                    self.address.host,
                    self.address.port,
                    keepalive=self._keepalive_s,
                    clean_start=self._clean_session,
                )
            else:
                self._client.connect(
                    self.address.host, self.address.port, keepalive=self._keepalive_s
                )
        except OSError as exc:
            raise BrokerConnectError(f"{self.address.url}: {exc}") from exc
        self._client.loop_start()
        self._started = True
        if not self._connack.wait(timeout_s):
            raise BrokerConnectError(f"{self.address.url}: no CONNACK within {timeout_s:g} s")
        with self._lock:
            reason = self._connect_reason
        if reason is not None:
            raise BrokerConnectError(f"{self.address.url}: {reason}")

    @property
    def session_present(self) -> bool:
        """The CONNACK's session-present flag: the broker kept this client id's session."""
        with self._lock:
            return self._session_present

    def wait_gone(self, timeout_s: float) -> bool:
        """Whether the connection ended (the broker closed it) within ``timeout_s``."""
        return self._gone.wait(timeout_s)

    def hang(self) -> None:
        """Stop paho's network thread and leave the socket open: a client that froze. It
        neither reads nor sends (no PINGREQ), so only the broker's keep-alive ends it."""
        if self._started:
            self._client.loop_stop()
            self._started = False

    def drop(self) -> None:
        """Close the socket without DISCONNECT: a client that crashed."""
        self.hang()
        self._close_socket()

    def _close_socket(self) -> None:
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def subscribe(self, topic: str, qos: int, timeout_s: float = 5.0) -> int:
        """Subscribe and return the QoS the broker granted; raise if it refused."""
        # Not under our lock: paho calls on_subscribe while holding its callback mutex,
        # which subscribe() may also take. Every SUBACK is kept by mid, so none is missed.
        result, mid = self._client.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerError(f"subscribe to {topic!r} failed: {mqtt.error_string(result)}")
        with self._suback_arrived:
            if not self._suback_arrived.wait_for(lambda: mid in self._subacks, timeout_s):
                raise BrokerError(f"no SUBACK for {topic!r} within {timeout_s:g} s")
            granted = self._subacks.pop(mid)[0]
        if granted.is_failure:
            raise BrokerError(f"broker refused subscription to {topic!r}: {granted}")
        return granted.value

    def publish(
        self, topic: str, payload: bytes, qos: int, *, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def set_max_inflight(self, messages: int) -> None:
        self._client.max_inflight_messages_set(messages)

    def close(self) -> None:
        """Disconnect cleanly and join paho's thread (it ends once the socket closes); a
        client that hung is dropped instead."""
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
        else:
            self._close_socket()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
