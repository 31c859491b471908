"""What both device clients share, with no I/O of its own.

The paho client (one network thread) and the aiomqtt client (asyncio) differ
only in how they move bytes. Everything a gateway can observe is decided here,
once: the birth, shutdown and will status messages, how a command payload
becomes a reply, which message goes when the outgoing queue is full, and what
the counters in :class:`ClientStats` mean.

Not thread-safe by itself: the paho client holds its own lock around every call.
"""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal, TypedDict

from shelflink.device.backoff import Backoff
from shelflink.device.codec import (
    DEFAULT_LIMITS,
    ContractError,
    Limits,
    channel_of,
    decode_command,
    encode,
)
from shelflink.device.identity import BrokerAddress, DeviceIdentity, TlsSettings
from shelflink.device.models import Command, DataMessage, Reply, Status
from shelflink.device.sequence import SequenceStore
from shelflink.device.topics import Channel

log = logging.getLogger("shelflink.device.session")

# One per process start, stable across reconnects: a gateway that sees a new
# boot_id knows the device rebooted, so a seq skip is the reserved block that
# the reboot abandoned, not lost data.
BOOT_ID: Final = uuid.uuid4().hex[:16]

DEFAULT_QUEUE_LIMIT: Final = 10_000
DEFAULT_MAX_IN_FLIGHT: Final = 32
# Command ids remembered for de-duplication: QoS 1 may deliver a command twice,
# and a second reboot is worse than a second reply.
REMEMBERED_COMMANDS: Final = 64
MAX_ERROR_CHARS: Final = 200

StatusCause = Literal["birth", "shutdown", "will"]


class DeviceClientError(Exception):
    """Root of every error the device clients raise; callers never see paho's or aiomqtt's."""


class MessageRejected(DeviceClientError, ValueError):
    """The message cannot be published by this client (another device's, or a status)."""


class MessageDropped(DeviceClientError):
    """The outgoing queue was full and the overflow policy dropped this message."""


class ClientClosedError(DeviceClientError):
    """The client is not running, or it closed before the operation completed."""


class ReentrantClientError(DeviceClientError):
    """The client is already running: it is reusable, but not reentrant."""


class DeviceTimeoutError(DeviceClientError, TimeoutError):
    """A bounded wait (connect, flush, a publish's PUBACK) ran out of time."""


class Overflow(StrEnum):
    """What happens to a new message when the outgoing queue is full."""

    DROP_OLDEST = "drop_oldest"  # keep the freshest readings (the default)
    DROP_NEWEST = "drop_newest"  # keep the earliest gap-free run


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of one client's counters.

    ``published`` counts data messages the broker acknowledged (PUBACK), not the
    client's own status messages; ``first_seq``/``last_seq`` bound their seqs.
    ``queued`` is waiting to be sent, ``in_flight`` sent and not yet acknowledged;
    ``reconnects`` counts connections after the first; ``connected`` means the
    birth was acknowledged, so data flows.
    """

    published: int
    dropped: int
    queued: int
    in_flight: int
    reconnects: int
    first_seq: int | None
    last_seq: int | None
    malformed_commands: int
    connected: bool


def timed_out(what: str, timeout_s: float, stats: ClientStats) -> DeviceTimeoutError:
    return DeviceTimeoutError(
        f"could not {what} within {timeout_s:g} s "
        f"(queued {stats.queued}, in flight {stats.in_flight})"
    )


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What a command handler reports: ``ok``, or the error to put in the reply."""

    ok: bool
    error: str | None = None

    @classmethod
    def success(cls) -> CommandOutcome:
        return cls(ok=True)

    @classmethod
    def failure(cls, error: str) -> CommandOutcome:
        # The reply's error field holds 1..200 characters.
        return cls(ok=False, error=(error or "failed")[:MAX_ERROR_CHARS])

    @classmethod
    def from_exception(cls, exc: BaseException) -> CommandOutcome:
        return cls.failure(f"{type(exc).__name__}: {exc}")


NO_HANDLER: Final = CommandOutcome.failure("this device has no command handler")
EXPIRED: Final = CommandOutcome.failure("expired")


def handler_failed(command: Command, error: Exception) -> CommandOutcome:
    """A handler that raised: logged with its traceback, answered with its message."""
    log.error("command handler failed on %s (%s)", command.id, command.name, exc_info=error)
    return CommandOutcome.from_exception(error)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to connect: the URL's parts, with explicit arguments winning."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls_context: ssl.SSLContext | None


def resolve_endpoint(
    broker_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: TlsSettings | None = None,
) -> Endpoint:
    address = BrokerAddress.parse(broker_url)
    # mqtts:// without explicit settings verifies the server against the system CAs.
    settings = tls if tls is not None else (TlsSettings() if address.tls else None)
    return Endpoint(
        host=address.host,
        port=address.port,
        username=username if username is not None else address.username,
        password=password if password is not None else address.password,
        tls_context=settings.context() if settings is not None else None,
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True, eq=False)
class Outgoing:
    """One encoded data message on its way to the broker; compared by identity."""

    seq: int
    topic: str
    payload: bytes


class OutgoingQueue:
    """Bounded, ordered store of unacknowledged messages, with an overflow policy.

    ``limit`` covers every unacknowledged message, waiting or in flight, so that
    putting in-flight messages back after a lost connection never overflows.
    Only waiting messages can be dropped: one already on the wire may still
    arrive, and dropping it would make the drop counter lie.
    """

    def __init__(
        self,
        limit: int = DEFAULT_QUEUE_LIMIT,
        overflow: Overflow = Overflow.DROP_OLDEST,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if limit < 1:
            raise ValueError("queue_limit must be at least 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.limit = limit
        self.overflow = overflow
        self.max_in_flight = max_in_flight
        self._waiting: deque[Outgoing] = deque()
        self._in_flight: set[Outgoing] = set()
        self.published = 0
        self.dropped = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._in_flight

    def can_take(self) -> bool:
        return bool(self._waiting) and len(self._in_flight) < self.max_in_flight

    def put(self, entry: Outgoing) -> Outgoing | None:
        """Queue ``entry``; return the message the overflow policy dropped, if any."""
        if len(self._waiting) + len(self._in_flight) < self.limit:
            self._waiting.append(entry)
            return None
        self.dropped += 1
        if self.overflow is Overflow.DROP_NEWEST or not self._waiting:
            return entry
        oldest = self._waiting.popleft()
        self._waiting.append(entry)
        return oldest

    def take(self) -> Outgoing | None:
        """The next message to send, now counted as in flight; None if none may go."""
        if not self.can_take():
            return None
        entry = self._waiting.popleft()
        self._in_flight.add(entry)
        return entry

    def ack(self, entry: Outgoing) -> bool:
        """Record a PUBACK; False if ``entry`` was not in flight (a late or repeated ack)."""
        if entry not in self._in_flight:
            return False
        self._in_flight.remove(entry)
        self.published += 1
        self.first_seq = entry.seq if self.first_seq is None else min(self.first_seq, entry.seq)
        self.last_seq = entry.seq if self.last_seq is None else max(self.last_seq, entry.seq)
        return True

    def requeue_in_flight(self) -> None:
        """After a lost connection: unacknowledged messages go first, in seq order."""
        back = sorted(self._in_flight, key=lambda entry: entry.seq)
        self._in_flight.clear()
        self._waiting.extendleft(reversed(back))

    def waiting(self) -> list[Outgoing]:
        return list(self._waiting)


class DeviceSession:
    """One device's protocol state: sequence, statuses, commands, outgoing queue, counters."""

    def __init__(
        self,
        identity: DeviceIdentity,
        sequence: SequenceStore,
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        overflow: Overflow = Overflow.DROP_OLDEST,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        boot_id: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.identity = identity
        self.sequence = sequence
        self.boot_id = boot_id if boot_id is not None else BOOT_ID
        self.queue = OutgoingQueue(queue_limit, overflow, max_in_flight)
        # set_interval changes what the next status reports.
        self.interval_ms = identity.interval_ms
        self.reconnects = 0
        self.malformed_commands = 0
        self._connections = 0
        self._limits = limits
        self._clock = clock
        self._answered: OrderedDict[str, CommandOutcome] = OrderedDict()

    # -- topics -----------------------------------------------------------------

    @property
    def status_topic(self) -> str:
        return self.identity.topic(Channel.STATUS)

    @property
    def command_topic(self) -> str:
        return self.identity.topic(Channel.COMMAND)

    # -- messages ---------------------------------------------------------------

    def next_seq(self) -> int:
        return self.sequence.next()

    def status(self, cause: StatusCause) -> bytes:
        """Birth, shutdown or will; seq is peeked, not consumed (see :class:`Status`)."""
        identity = self.identity
        return encode(
            Status(
                device=identity.device_id,
                seq=self.sequence.peek(),
                ts=self._clock(),
                online=cause == "birth",
                cause=cause,
                kind=identity.kind,
                firmware=identity.firmware,
                boot_id=self.boot_id,
                interval_ms=self.interval_ms,
                lanes=identity.lanes,
            )
        )

    def outgoing(self, message: DataMessage) -> Outgoing:
        """Check that ``message`` is this device's data and encode it for the queue."""
        if isinstance(message, Status):
            raise MessageRejected("status messages are published by the client itself")
        if message.device != self.identity.device_id:
            raise MessageRejected(
                f"message of device {message.device!r} cannot be published by "
                f"{self.identity.device_id!r}"
            )
        return Outgoing(
            seq=message.seq,
            topic=self.identity.topic(channel_of(message)),
            payload=encode(message),
        )

    # -- connection bookkeeping -------------------------------------------------

    def mark_connected(self) -> None:
        if self._connections:
            self.reconnects += 1
        self._connections += 1

    def stats(self, *, connected: bool) -> ClientStats:
        queue = self.queue
        return ClientStats(
            published=queue.published,
            dropped=queue.dropped,
            queued=queue.queued,
            in_flight=queue.in_flight,
            reconnects=self.reconnects,
            first_seq=queue.first_seq,
            last_seq=queue.last_seq,
            malformed_commands=self.malformed_commands,
            connected=connected,
        )

    # -- commands ---------------------------------------------------------------

    def triage(self, payload: bytes) -> Command | Outgoing | None:
        """Decide what one cmd-topic payload needs.

        A :class:`Command` is to be executed and then passed to :meth:`answer`;
        an :class:`Outgoing` is a reply ready to queue (expired, or a repeat of a
        command already answered); None means malformed: logged and counted.
        """
        now = self._clock()
        try:
            command = decode_command(payload, now_ms=now, limits=self._limits)
        except ContractError as exc:
            self.malformed_commands += 1
            log.warning(
                "malformed command ignored: device=%s reason=%s detail=%s",
                self.identity.device_id,
                exc.reason.value,
                exc.detail,
            )
            return None
        previous = self._answered.get(command.id)
        if previous is not None:
            log.info("repeated command %s answered again, not re-executed", command.id)
            return self._reply(command, previous)
        if command.expires <= now:
            log.info("expired command %s (%s) refused", command.id, command.name)
            return self.answer(command, EXPIRED)
        return command

    def answer(self, command: Command, outcome: CommandOutcome) -> Outgoing:
        """Remember ``outcome`` for ``command`` and build the reply to queue."""
        self._answered[command.id] = outcome
        while len(self._answered) > REMEMBERED_COMMANDS:
            self._answered.popitem(last=False)
        if outcome.ok and command.name == "set_interval" and command.interval_ms is not None:
            self.interval_ms = command.interval_ms
        return self._reply(command, outcome)

    def _reply(self, command: Command, outcome: CommandOutcome) -> Outgoing:
        reply = Reply(
            device=self.identity.device_id,
            seq=self.next_seq(),
            ts=self._clock(),
            id=command.id,
            ok=outcome.ok,
            error=None if outcome.ok else (outcome.error or "failed"),
        )
        return self.outgoing(reply)


class SessionOptions(TypedDict, total=False):
    """Keyword options both clients take; defaults and meaning in :class:`ClientCommon`."""

    username: str | None
    password: str | None
    tls: TlsSettings | None
    queue_limit: int
    overflow: Overflow
    max_in_flight: int
    keepalive_s: int
    backoff: Backoff | None
    boot_id: str | None


class ClientCommon:
    """What both clients are built from, and the calls they answer the same way."""

    def __init__(
        self,
        identity: DeviceIdentity,
        broker_url: str,
        sequence: SequenceStore,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TlsSettings | None = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        overflow: Overflow = Overflow.DROP_OLDEST,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        keepalive_s: int = 30,
        backoff: Backoff | None = None,
        boot_id: str | None = None,
    ) -> None:
        """``username``/``password``/``tls`` override the URL's (mqtts:// means TLS);
        ``queue_limit`` and ``overflow`` bound the outgoing queue; ``max_in_flight``
        is the window of unacknowledged publishes; ``boot_id`` defaults to one per process.
        """
        self._session = DeviceSession(
            identity,
            sequence,
            queue_limit=queue_limit,
            overflow=overflow,
            max_in_flight=max_in_flight,
            boot_id=boot_id,
        )
        self._endpoint = resolve_endpoint(broker_url, username=username, password=password, tls=tls)
        self._backoff = backoff if backoff is not None else Backoff()
        self._keepalive_s = keepalive_s

    @property
    def boot_id(self) -> str:
        return self._session.boot_id

    def next_seq(self) -> int:
        """Draw the seq for the next data message (never reused, even across reboots)."""
        return self._session.next_seq()
