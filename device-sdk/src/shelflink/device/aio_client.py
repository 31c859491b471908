"""AsyncDeviceClient: the device client for asyncio programs, on aiomqtt 2.x.

Each connection attempt gets a fresh ``aiomqtt.Client``: the last will must be
composed at connect time, and a fresh paho client inside it never re-sends a
stale publish of its own behind our back (we re-send from our queue, in seq
order, after the birth).

Two aiomqtt behaviours shape this module:

* ``publish()`` at QoS 1 awaits the PUBACK, but a dropped connection does not
  fail it: it just waits out its timeout. So the per-connection tasks run in
  one TaskGroup with the message iterator, which *does* raise ``MqttError`` on
  disconnect, and that tears down every pending publish at once.
* Cancelling ``aiomqtt.Client.__aenter__`` mid-connect leaves its executor
  thread to finish the connection without an owner. So a connection attempt
  is never cancelled: stopping is a flag that the supervisor checks between
  steps, and every step is bounded by ``network_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, Unpack

import aiomqtt

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
    MessageDropped,
    Outgoing,
    ReentrantClientError,
    SessionOptions,
    StatusCause,
    handler_failed,
    timed_out,
)

log = logging.getLogger("shelflink.device.aio_client")

AsyncCommandHandler = Callable[[Command], Awaitable[CommandOutcome]]

# What a broken, refused or timed-out connection raises; anything else is a bug
# and propagates out of the client's TaskGroup into the caller's task.
_CONNECTION_ERRORS = (aiomqtt.MqttError, OSError)


class AsyncDeviceClient(ClientCommon):
    """One device's MQTT session for asyncio programs.

    ``async with client:`` starts the connection supervisor and returns at once:
    a device works offline, its messages wait in the bounded queue (use
    :meth:`wait_connected` to wait for the broker). Leaving the block flushes
    (bounded by ``close_timeout_s``), publishes the retained shutdown status and
    disconnects, even when the block failed. Reusable, not reentrant.
    """

    def __init__(
        self,
        identity: DeviceIdentity,
        broker_url: str,
        sequence: SequenceStore,
        *,
        on_command: AsyncCommandHandler | None = None,
        network_timeout_s: float = 10.0,
        command_timeout_s: float = 30.0,
        close_timeout_s: float = 5.0,
        **options: Unpack[SessionOptions],
    ) -> None:
        """``network_timeout_s`` bounds every network wait (CONNACK, SUBACK, PUBACK);
        ``command_timeout_s`` bounds ``on_command``. For ``options`` (queue, window,
        credentials, TLS, backoff) see :class:`~shelflink.device.session.ClientCommon`.
        """
        super().__init__(identity, broker_url, sequence, **options)
        self._on_command = on_command
        self._network_timeout_s = network_timeout_s
        self._command_timeout_s = command_timeout_s
        self._close_timeout_s = close_timeout_s
        self._group: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected = False
        self._changed = asyncio.Event()
        self._waiters: dict[Outgoing, asyncio.Future[None]] = {}

    # -- public API -------------------------------------------------------------

    @property
    def stats(self) -> ClientStats:
        return self._session.stats(connected=self._connected)

    def publish_nowait(self, message: DataMessage) -> None:
        """Queue ``message`` and return; the overflow policy decides if it stays."""
        self._enqueue(self._session.outgoing(message))

    async def publish(self, message: DataMessage, timeout_s: float | None = None) -> None:
        """Queue ``message`` and wait for the broker's PUBACK.

        Raises :class:`MessageDropped` if the overflow policy dropped it,
        :class:`ClientClosedError` if the client stops first and
        :class:`DeviceTimeoutError` after ``timeout_s`` (None: wait while the
        client runs). Whenever the wait ends early, the message stays queued.
        """
        self._require_running()
        entry = self._session.outgoing(message)
        acknowledged = asyncio.get_running_loop().create_future()
        self._waiters[entry] = acknowledged
        self._enqueue(entry)
        try:
            async with asyncio.timeout(timeout_s):
                await acknowledged
        except TimeoutError:
            assert timeout_s is not None
            raise timed_out(f"get a PUBACK for seq {entry.seq}", timeout_s, self.stats) from None
        finally:
            self._waiters.pop(entry, None)

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the client is connected and its birth acknowledged."""
        self._require_running()
        await self._bounded(timeout_s, lambda: self._connected, "connect to the broker")

    async def flush(self, timeout_s: float) -> None:
        """Wait until nothing is queued and nothing is in flight."""
        queue = self._session.queue
        if not queue.idle:
            self._require_running()
        await self._bounded(timeout_s, lambda: queue.idle, "flush the outgoing queue")

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise ReentrantClientError("AsyncDeviceClient is reusable, but not reentrant")
        # Fresh, in case the last session ran on another event loop.
        self._changed = asyncio.Event()
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        self._stopping = False
        self._supervisor = group.create_task(
            self._supervise(), name=f"shelflink-device-{self._session.identity.device_id}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, supervisor = self._group, self._supervisor
        assert group is not None and supervisor is not None
        # The group gets a cancellation (it may have requested it itself, when the
        # supervisor failed) but never the block's own exception: it would cancel
        # the supervisor instead of letting it say goodbye, and wrap the error in
        # an ExceptionGroup that callers do not expect from ``async with``.
        handed: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
        cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        handed = (exc_type, exc, tb) if cancelled else (None, None, None)
        try:
            if self._connected and not supervisor.done():
                try:
                    await self.flush(self._close_timeout_s)
                except DeviceTimeoutError as error:
                    log.warning("closing with messages unsent: %s", error)
            self._stopping = True
            self._notify()
            # The supervisor publishes the shutdown status, disconnects and ends.
            await asyncio.wait([supervisor])
        except asyncio.CancelledError as again:
            # Cancelled while closing: the group cancels what is left, at once.
            handed = (type(again), again, again.__traceback__)
        finally:
            self._stopping = True
            self._notify()
            try:
                await group.__aexit__(*handed)
            finally:
                self._group = self._supervisor = None
                self._connected = False
                self._fail_waiters()

    # -- connection supervisor --------------------------------------------------

    async def _supervise(self) -> None:
        endpoint = self._endpoint
        while not self._stopping:
            try:
                await self._connection()
            except* _CONNECTION_ERRORS as errors:
                first = errors.exceptions[0]
                if self._connected:
                    log.warning("connection to %s:%s lost: %s", endpoint.host, endpoint.port, first)
                else:
                    log.info("connect to %s:%s failed: %s", endpoint.host, endpoint.port, first)
            finally:
                self._connected = False
                self._session.queue.requeue_in_flight()
                self._notify()
            if self._stopping:
                break
            delay = self._backoff.next_delay()
            log.debug("reconnecting in %.2f s", delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._until(lambda: self._stopping)

    async def _connection(self) -> None:
        session, endpoint = self._session, self._endpoint
        timeout = self._network_timeout_s
        mqtt = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=session.identity.device_id,
            username=endpoint.username,
            password=endpoint.password,
            tls_context=endpoint.tls_context,
            # Composed now, so the will carries this connection's seq and ts.
            will=aiomqtt.Will(session.status_topic, session.status("will"), qos=1, retain=True),
            clean_session=True,
            keepalive=self._keepalive_s,
            timeout=timeout,
            # Room for the birth or shutdown status beside a full window of data.
            max_inflight_messages=session.queue.max_in_flight + 1,
            logger=log,
        )
        # aiomqtt warns above this many pending calls; a full window is intended here.
        mqtt.pending_calls_threshold = session.queue.max_in_flight + 2
        async with mqtt:
            # Subscribe before the birth, so a command sent in answer to it arrives.
            await mqtt.subscribe(session.command_topic, qos=1, timeout=timeout)
            await self._announce(mqtt, "birth")
            session.mark_connected()
            self._backoff.reset()
            self._connected = True
            self._notify()
            log.info("connected to %s:%s", endpoint.host, endpoint.port)
            async with asyncio.TaskGroup() as tasks:
                sender = tasks.create_task(self._send_loop(mqtt))
                listener = tasks.create_task(self._command_loop(mqtt))
                await self._until(lambda: self._stopping)
                sender.cancel()
                listener.cancel()
            await self._announce(mqtt, "shutdown")
        # Leaving ``async with mqtt`` sent DISCONNECT: the broker drops the will.

    async def _announce(self, mqtt: aiomqtt.Client, cause: StatusCause) -> None:
        """Publish the retained status; QoS 1 so that it outlives a lossy link."""
        await mqtt.publish(
            self._session.status_topic,
            self._session.status(cause),
            qos=1,
            retain=True,
            timeout=self._network_timeout_s,
        )

    async def _send_loop(self, mqtt: aiomqtt.Client) -> None:
        queue = self._session.queue
        async with asyncio.TaskGroup() as sends:
            while True:
                await self._until(queue.can_take)
                entry = queue.take()
                assert entry is not None
                sends.create_task(self._send(mqtt, entry))

    async def _send(self, mqtt: aiomqtt.Client, entry: Outgoing) -> None:
        # Nothing may be awaited before publish(): its first step hands the PUBLISH
        # to paho, and tasks take their first step in creation order, so the wire
        # order is the queue order while up to max_in_flight await their PUBACKs.
        await mqtt.publish(entry.topic, entry.payload, qos=1, timeout=self._network_timeout_s)
        if self._session.queue.ack(entry):
            self._settle(entry, None)
        self._notify()

    async def _command_loop(self, mqtt: aiomqtt.Client) -> None:
        # The iterator raises MqttError when the connection drops: that is what
        # ends this connection's TaskGroup, pending publishes included.
        async for message in mqtt.messages:
            decision = self._session.triage(message.payload)
            if decision is None:
                continue
            if isinstance(decision, Command):
                # One command at a time: a tare and a reboot must not overlap.
                decision = self._session.answer(decision, await self._execute(decision))
            self._enqueue(decision)

    async def _execute(self, command: Command) -> CommandOutcome:
        if self._on_command is None:
            return NO_HANDLER
        try:
            async with asyncio.timeout(self._command_timeout_s):
                return await self._on_command(command)
        except TimeoutError:
            return CommandOutcome.failure(f"handler took longer than {self._command_timeout_s:g} s")
        except Exception as exc:
            return handler_failed(command, exc)

    # -- queue and waiting ------------------------------------------------------

    def _enqueue(self, entry: Outgoing) -> None:
        queue = self._session.queue
        dropped = queue.put(entry)
        if dropped is not None:
            log.debug("queue full (%s): dropped seq %d", queue.overflow.value, dropped.seq)
            self._settle(
                dropped,
                MessageDropped(
                    f"seq {dropped.seq} dropped: outgoing queue full "
                    f"({queue.limit} messages, {queue.overflow.value})"
                ),
            )
        self._notify()

    def _settle(self, entry: Outgoing, error: BaseException | None) -> None:
        waiter = self._waiters.pop(entry, None)
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def _fail_waiters(self) -> None:
        for entry in list(self._waiters):
            self._settle(
                entry,
                ClientClosedError(
                    f"client closed before seq {entry.seq} was acknowledged; it stays queued"
                ),
            )

    def _require_running(self) -> None:
        if self._group is None or self._stopping:
            raise ClientClosedError("the client is not running: use `async with client:`")

    def _notify(self) -> None:
        # A fresh event per change: whoever waits on the old one wakes and re-checks.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def _bounded(self, timeout_s: float, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._until(predicate)
        except TimeoutError:
            raise timed_out(what, timeout_s, self.stats) from None
