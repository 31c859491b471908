"""The embedded MQTT broker: amqtt running inside the caller's event loop.

This is the zero-install default used when no broker URL is configured (the demo,
laptop runs, unit tests). Production stores and the cloud run Mosquitto or EMQX; see
docs/brokers.md for what this broker does not do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Self

from amqtt.adapters import StreamReaderAdapter
from amqtt.contexts import BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError

from shelflink.broker import auth
from shelflink.broker.amqtt_broker import CorrectedBroker
from shelflink.broker.errors import BrokerError, BrokerReentrantError, BrokerStartError
from shelflink.broker.framing import ConnectionWriter, SizeLimitedReader

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
_LISTENER = "default"
_STOP_TIMEOUT_S = 10.0


class _DropConnectionProbes(logging.Filter):
    """amqtt logs an ERROR for every TCP connection that closes before sending CONNECT;
    ``wait_for_broker`` and health checks do exactly that, many times a second."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No data from")


def quiet_amqtt_logging(level: int) -> None:
    """Set amqtt's loggers to ``level``. Process-wide: amqtt logs through module loggers."""
    amqtt_logger = logging.getLogger("amqtt")
    amqtt_logger.setLevel(level)
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
    broker_logger = logging.getLogger("amqtt.broker")
    if not any(isinstance(f, _DropConnectionProbes) for f in broker_logger.filters):
        broker_logger.addFilter(_DropConnectionProbes())


class EmbeddedBroker:
    """An MQTT 3.1.1 broker on ``host:port`` for as long as the ``async with`` block runs.

    ``port=0`` picks a free port at the first start; the broker keeps that port when it is
    entered again, so a test can stop and restart "the same" broker. The instance is
    reusable but not reentrant: entering it while it runs raises ``BrokerReentrantError``.
    Leaving the block always stops the broker and closes every client connection.

    ``users`` maps usernames to passwords. A client that sends a username must match the
    table; a client without one is accepted only if ``allow_anonymous``.
    ``max_packet_bytes`` caps an MQTT packet's remaining length (topic + payload + a few
    bytes); a client that sends a bigger one is disconnected. ``session_expiry_s`` drops
    offline persistent sessions (and their queued messages) after that many seconds;
    ``None`` keeps them for the broker's lifetime, as MQTT 3.1.1 specifies.
    ``log_level`` applies to amqtt's loggers, which are chatty below ERROR.
    """

    def __init__(
        self,
        host: str = LOCALHOST,
        port: int = 0,
        *,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool = True,
        max_packet_bytes: int | None = None,
        session_expiry_s: int | None = None,
        log_level: int = logging.ERROR,
    ) -> None:
        if max_packet_bytes is not None and max_packet_bytes <= 0:
            raise ValueError("max_packet_bytes must be positive")
        if not allow_anonymous and not users:
            raise ValueError("allow_anonymous=False needs at least one user")
        self._host = host
        self._port = port
        self._users = dict(users or {})
        self._allow_anonymous = allow_anonymous
        self._max_packet_bytes = max_packet_bytes
        self._session_expiry_s = session_expiry_s
        self._log_level = log_level
        self._amqtt: CorrectedBroker | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port == 0:
            raise BrokerError("the port is chosen when the broker first starts")
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def __aenter__(self) -> Self:
        if self._server is not None or self._amqtt is not None:
            raise BrokerReentrantError("this EmbeddedBroker is already running")
        quiet_amqtt_logging(self._log_level)
        config = BrokerConfig(
            listeners={_LISTENER: ListenerConfig(type=ListenerType.EXTERNAL)},
            plugins={
                auth.PLUGIN_PATH: {
                    "users": self._users,
                    "allow_anonymous": self._allow_anonymous,
                }
            },
            session_expiry_interval=self._session_expiry_s,
        )
        try:
            self._amqtt = CorrectedBroker(config)
            await self._amqtt.start()
        except (AMQTTError, ValueError) as exc:
            self._amqtt = None
            raise BrokerStartError(f"amqtt did not start: {exc}") from exc
        try:
            # We own the listening socket (amqtt's "external" listener) so that port 0
            # works, the bound port is known without reaching into amqtt, and every
            # connection passes through the packet-size check.
            self._server = await asyncio.start_server(
                self._serve_connection, self._host, self._port
            )
        except OSError as exc:
            await self._stop_amqtt()
            raise BrokerStartError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._stop_amqtt()
        # amqtt closes the connections of the sessions it knows; a client still in its
        # CONNECT handshake is not one of them yet.
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=_STOP_TIMEOUT_S)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_TIMEOUT_S):
                    await server.wait_closed()
        logger.info("embedded MQTT broker on %s stopped", self.url)

    async def _stop_amqtt(self) -> None:
        broker, self._amqtt = self._amqtt, None
        if broker is None:
            return
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await broker.shutdown()
        except (AMQTTError, TimeoutError) as exc:
            logger.warning("amqtt did not shut down cleanly: %s", exc)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        broker = self._amqtt
        try:
            if broker is None:
                return
            reader_adapter = (
                SizeLimitedReader(reader, self._max_packet_bytes)
                if self._max_packet_bytes is not None
                else StreamReaderAdapter(reader)
            )
            await broker.external_connected(
                reader=reader_adapter,
                writer=ConnectionWriter(writer),
                listener_name=_LISTENER,
            )
        except (AMQTTError, OSError) as exc:
            # One client's broken connection must not reach the loop's exception handler.
            logger.debug("client connection ended with %r", exc)
        except asyncio.CancelledError:
            if task.cancelling():
                raise  # our own shutdown: the task ends cancelled, quietly
            # amqtt lets an inner cancellation escape (a handshake cut short at
            # shutdown); ended here, it is not logged as an error by asyncio.
            logger.debug("client connection ended by an inner cancellation")
        finally:
            self._connections.discard(task)
            writer.close()
