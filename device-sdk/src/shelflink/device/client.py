"""DeviceClient: the device client for synchronous device programs, on paho-mqtt 2.x.

Threads: exactly one, paho's network thread from ``loop_start()`` (named
``paho-mqtt-client-<device id>``). Every callback runs on it, so does the
``on_command`` handler: keep it short (schedule a reboot, don't perform it).
The threaded mode is not optional with paho: without ``loop_start()`` a
``publish()`` from another thread writes to the socket itself, racing the loop.

Reconnects are paho's loop (``reconnect_on_failure``) with its own delays set
to zero; the jittered :class:`Backoff` delay is waited in ``on_pre_connect``,
which paho calls before every attempt and which is also where the last will
is composed for that connection.

Unacknowledged messages: paho keeps its unacknowledged QoS 1 publishes across
its reconnects and re-sends them, in the order first sent, right after
``on_connect`` returns. So ``on_connect`` publishes the birth first, and new
data waits for the birth's PUBACK, which keeps the order birth, re-sent data
(seq order), new data.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, Unpack

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shelflink.device.identity import DeviceIdentity
from shelflink.device.models import Command, DataMessage
from shelflink.device.sequence import SequenceStore
from shelflink.device.session import (
    NO_HANDLER,
    ClientClosedError,
    ClientCommon,
    ClientStats,
    CommandOutcome,
    DeviceTimeoutError,
    Outgoing,
    ReentrantClientError,
    SessionOptions,
    handler_failed,
    timed_out,
)

log = logging.getLogger("shelflink.device.client")

CommandHandler = Callable[[Command], CommandOutcome]


class _Stopping(ConnectionAbortedError):
    """Raised in on_pre_connect to abandon an attempt; paho's loop catches OSError."""


def _nothing() -> None:
    pass


class DeviceClient(ClientCommon):
    """One device's MQTT session for synchronous programs.

    ``connect()`` starts the network thread and returns at once: a device works
    offline and its messages wait in the bounded queue (``wait_connected()``
    waits for the broker). ``close()`` flushes (bounded), publishes the retained
    shutdown status and disconnects. Reusable after ``close()``, not reentrant.
    """

    def __init__(
        self,
        identity: DeviceIdentity,
        broker_url: str,
        sequence: SequenceStore,
        *,
        on_command: CommandHandler | None = None,
        connect_timeout_s: float = 5.0,
        close_timeout_s: float = 5.0,
        **options: Unpack[SessionOptions],
    ) -> None:
        """``connect_timeout_s`` bounds the TCP (and TLS) connect; a broker that
        accepts but never answers is dropped by the keepalive. ``options`` are
        those of :class:`~shelflink.device.session.ClientCommon`.
        """
        super().__init__(identity, broker_url, sequence, **options)
        self._on_command = on_command
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        # _lock guards the session and everything below; it is never held while
        # calling into paho, whose callbacks take it (see _pump for why).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pump_lock = threading.Lock()
        self._pump_wanted = False
        self._mqtt: paho.Client | None = None
        self._stop = threading.Event()
        self._first_attempt = True
        self._generation = 0  # counts CONNACKs: tells a stale birth's PUBACK from the current one
        self._online = False  # a birth went out on the current connection
        self._ready = False  # connected and birth acknowledged: data may flow
        self._awaiting: dict[int, Callable[[], None]] = {}
        self._early_acks: set[int] = set()

    # -- public API -------------------------------------------------------------

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return self._session.stats(connected=self._ready)

    def publish(self, message: DataMessage) -> None:
        """Queue ``message`` and return; the overflow policy decides if it stays."""
        entry = self._session.outgoing(message)
        self._enqueue(entry)

    def connect(self) -> None:
        """Start the network thread; it connects, and reconnects, in the background."""
        with self._lock:
            if self._mqtt is not None:
                raise ReentrantClientError("DeviceClient is already connected or connecting")
            self._mqtt = mqtt = self._build()
            self._stop.clear()
            self._first_attempt = True
        endpoint = self._endpoint
        mqtt.connect_async(endpoint.host, endpoint.port, keepalive=self._keepalive_s)
        mqtt.loop_start()

    def wait_connected(self, timeout_s: float) -> None:
        """Block until the client is connected and its birth acknowledged."""
        self._wait(lambda: self._ready, timeout_s, "connect to the broker")

    def flush(self, timeout_s: float) -> None:
        """Block until nothing is queued and nothing is in flight."""
        self._wait(lambda: self._session.queue.idle, timeout_s, "flush the outgoing queue")

    def close(self, timeout_s: float | None = None) -> None:
        """Flush (bounded), publish the shutdown status, disconnect, stop the thread."""
        with self._lock:
            mqtt, ready = self._mqtt, self._ready
        if mqtt is None:
            return
        budget = self._close_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        if ready:
            try:
                self.flush(budget)
            except DeviceTimeoutError as error:
                log.warning("closing with messages unsent: %s", error)
        with self._lock:
            # From here on no birth goes out (see _on_connect), so the decision
            # below cannot be overtaken by a connection that comes up meanwhile.
            self._stop.set()
            online = self._online
        if online:
            self._say_goodbye(mqtt, max(0.0, deadline - time.monotonic()))
        # A clean DISCONNECT: the broker discards the will.
        mqtt.disconnect()
        # Bounded by paho's connect timeout and by the on_command handler, if one runs.
        mqtt.loop_stop()
        with self._lock:
            self._mqtt = None
            self._ready = self._online = False
            # Whatever paho still held dies with it: ours go first next time.
            self._session.queue.requeue_in_flight()
            self._awaiting.clear()
            self._early_acks.clear()
            self._changed.notify_all()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- paho plumbing (network thread) -----------------------------------------

    def _build(self) -> paho.Client:
        endpoint = self._endpoint
        mqtt = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._session.identity.device_id,
            protocol=paho.MQTTv311,
            clean_session=True,
            reconnect_on_failure=True,
        )
        mqtt.connect_timeout = self._connect_timeout_s
        # paho's own delays (whole seconds, doubling, no jitter) are switched off:
        # on_pre_connect waits our Backoff instead.
        mqtt.reconnect_delay_set(min_delay=0, max_delay=0)
        # Unlimited in paho: _pump already keeps at most max_in_flight data
        # messages there, and a limit in paho would hold back the birth.
        mqtt.max_inflight_messages_set(0)
        if endpoint.username is not None:
            mqtt.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls_context is not None:
            mqtt.tls_set_context(endpoint.tls_context)
        mqtt.on_pre_connect = self._before_attempt
        mqtt.on_connect = self._on_connect
        mqtt.on_connect_fail = self._on_connect_fail
        mqtt.on_disconnect = self._on_disconnect
        mqtt.on_publish = self._on_publish
        mqtt.on_message = self._on_message
        return mqtt

    def _before_attempt(self, mqtt: paho.Client, userdata: Any) -> None:
        if self._first_attempt:
            self._first_attempt = False
        else:
            delay = self._backoff.next_delay()
            log.debug("reconnecting in %.2f s", delay)
            if self._stop.wait(delay):
                raise _Stopping("client is closing")
        if self._stop.is_set():
            raise _Stopping("client is closing")
        with self._lock:
            will = self._session.status("will")
        # Composed now, so the will carries this connection's seq and ts.
        mqtt.will_set(self._session.status_topic, will, qos=1, retain=True)

    def _on_connect(
        self,
        mqtt: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        endpoint = self._endpoint
        if reason_code.is_failure:
            log.warning(
                "broker %s:%s refused the connection: %s", endpoint.host, endpoint.port, reason_code
            )
            return
        with self._lock:
            if self._stop.is_set():
                return  # close() is about to disconnect; a birth now would outlive it
            self._generation += 1
            self._online = True
            self._session.mark_connected()
        self._backoff.reset()
        log.info("connected to %s:%s", endpoint.host, endpoint.port)
        # Subscribe before the birth, so a command sent in answer to it arrives.
        mqtt.subscribe(self._session.command_topic, qos=1)
        self._publish_birth(mqtt)

    def _publish_birth(self, mqtt: paho.Client) -> None:
        with self._lock:
            generation, birth = self._generation, self._session.status("birth")
        self._send(
            mqtt,
            self._session.status_topic,
            birth,
            retain=True,
            on_ack=lambda: self._birth_acknowledged(mqtt, generation),
        )

    def _birth_acknowledged(self, mqtt: paho.Client, generation: int) -> None:
        with self._lock:
            current = generation == self._generation
            if current:
                self._ready = True
                self._changed.notify_all()
            # paho re-sent a birth left over from a lost connection after this
            # connection's birth: publish the current one again, so that the
            # retained status is the newest (unless a shutdown is under way).
            republish = not current and self._online and not self._stop.is_set()
        if republish:
            self._publish_birth(mqtt)
        elif current:
            self._pump()

    def _on_connect_fail(self, mqtt: paho.Client, userdata: Any) -> None:
        endpoint = self._endpoint
        log.info("connect to %s:%s failed", endpoint.host, endpoint.port)

    def _on_disconnect(
        self,
        mqtt: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            was_ready, self._ready = self._ready, False
            # The broker publishes the will now: nothing to say at close.
            self._online = False
            self._changed.notify_all()
        if was_ready and not self._stop.is_set():
            log.warning("connection lost: %s", reason_code)

    def _on_publish(
        self,
        mqtt: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            on_ack = self._awaiting.pop(mid, None)
            if on_ack is None:
                # The publishing thread has not recorded this mid yet; see _send.
                self._early_acks.add(mid)
        if on_ack is not None:
            on_ack()

    def _on_message(self, mqtt: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            decision = self._session.triage(bytes(message.payload))
        if decision is None:
            return
        if isinstance(decision, Command):
            outcome = self._execute(decision)
            with self._lock:
                decision = self._session.answer(decision, outcome)
        self._enqueue(decision)

    def _execute(self, command: Command) -> CommandOutcome:
        if self._on_command is None:
            return NO_HANDLER
        try:
            return self._on_command(command)
        except Exception as exc:
            return handler_failed(command, exc)

    # -- outgoing ---------------------------------------------------------------

    def _enqueue(self, entry: Outgoing) -> None:
        with self._lock:
            queue = self._session.queue
            dropped = queue.put(entry)
            self._changed.notify_all()
        if dropped is not None:
            log.debug("queue full (%s): dropped seq %d", queue.overflow.value, dropped.seq)
        self._pump()

    def _pump(self) -> None:
        """Hand queued messages to paho while the window has room.

        Any thread may call this. Only one pumps at a time, so the wire order is
        the queue order; a caller that finds another thread pumping leaves a note
        (_pump_wanted) and returns instead of waiting. Waiting could deadlock:
        paho holds its message lock while it runs on_publish, which pumps, and
        the pumping thread may be waiting for that lock inside paho's publish().
        """
        while True:
            with self._lock:
                self._pump_wanted = True
            if not self._pump_lock.acquire(blocking=False):
                return
            try:
                while True:
                    with self._lock:
                        self._pump_wanted = False
                        mqtt = self._mqtt
                        ready = self._ready and mqtt is not None
                        entry = self._session.queue.take() if ready else None
                    if entry is None or mqtt is None:
                        break
                    self._send(
                        mqtt,
                        entry.topic,
                        entry.payload,
                        retain=False,
                        on_ack=functools.partial(self._data_acknowledged, entry),
                    )
            finally:
                self._pump_lock.release()
            with self._lock:
                if not self._pump_wanted:
                    return

    def _data_acknowledged(self, entry: Outgoing) -> None:
        with self._lock:
            self._session.queue.ack(entry)
            self._changed.notify_all()
        self._pump()

    def _send(
        self,
        mqtt: paho.Client,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
        on_ack: Callable[[], None],
    ) -> paho.MQTTMessageInfo:
        # If the connection is down, paho keeps the message and sends it after
        # the next CONNACK, so a publish is never lost between threads.
        info = mqtt.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            if mqtt is not self._mqtt:
                return info  # closed meanwhile: close() put the message back in the queue
            # The PUBACK may have been handled before we got here: on_publish
            # runs on the network thread as soon as publish() lets go of paho.
            acknowledged = info.mid in self._early_acks
            if acknowledged:
                self._early_acks.discard(info.mid)
            else:
                self._awaiting[info.mid] = on_ack
        if acknowledged:
            on_ack()
        return info

    def _say_goodbye(self, mqtt: paho.Client, timeout_s: float) -> None:
        with self._lock:
            shutdown = self._session.status("shutdown")
        info = self._send(mqtt, self._session.status_topic, shutdown, retain=True, on_ack=_nothing)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as error:
            log.warning("shutdown status not delivered: %s", error)
            return
        if not info.is_published():
            log.warning("shutdown status not acknowledged within %.1f s", timeout_s)

    def _wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        with self._changed:
            if self._mqtt is None and not predicate():
                raise ClientClosedError("the client is not running: call connect() first")
            if not self._changed.wait_for(predicate, timeout=timeout_s):
                raise timed_out(what, timeout_s, self._session.stats(connected=self._ready))
