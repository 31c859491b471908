"""The byte streams between our listener and amqtt, one pair per client connection.

``SizeLimitedReader`` is a packet-size limit, which amqtt has none of: it follows the
MQTT fixed header of every packet as amqtt reads it and hangs up on a client whose packet
announces more than the limit, before the body is read, so an oversized publish costs
the broker no memory. ``ConnectionWriter`` is a connection the broker can cut at once.
"""

from __future__ import annotations

import asyncio
import logging

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter

logger = logging.getLogger(__name__)

_HEADER, _LENGTH, _BODY = range(3)


class PacketTooLargeError(ConnectionResetError):
    """Raised into amqtt's reader; amqtt treats a ``ConnectionResetError`` as the client
    going away, which closes the connection and sends the client's will, as for any
    abnormal disconnect."""


class SizeLimitedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt ships no types
    def __init__(self, reader: asyncio.StreamReader, max_packet_bytes: int) -> None:
        self._reader = reader
        self._limit = max_packet_bytes
        self._state = _HEADER
        self._length = 0
        self._multiplier = 1
        self._body_left = 0

    async def read(self, n: int = -1) -> bytes:
        data = await (self._reader.read(n) if n == -1 else self._reader.readexactly(n))
        self._track(data)
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def _track(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._state == _HEADER:
                self._state, self._length, self._multiplier = _LENGTH, 0, 1
                i += 1
            elif self._state == _LENGTH:
                byte = data[i]
                i += 1
                self._length += (byte & 0x7F) * self._multiplier
                self._multiplier *= 128
                if byte & 0x80:
                    continue
                if self._length > self._limit:
                    logger.warning(
                        "closing connection: MQTT packet of %d bytes exceeds the %d byte limit",
                        self._length,
                        self._limit,
                    )
                    raise PacketTooLargeError(f"packet of {self._length} bytes over limit")
                self._body_left = self._length
                self._state = _BODY if self._length else _HEADER
            else:
                taken = min(self._body_left, len(data) - i)
                self._body_left -= taken
                i += taken
                if self._body_left == 0:
                    self._state = _HEADER


class ConnectionWriter(StreamWriterAdapter):  # type: ignore[misc]  # amqtt ships no types
    """amqtt's writer for one connection, which the broker can also cut at once.

    amqtt 0.12 only closes a connection gracefully: it first waits for the send buffer to
    drain, which never happens for a client that stopped reading. A takeover and an
    expired keep-alive must end such a connection now (see amqtt_broker.py).
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        super().__init__(writer)
        self._transport = writer.transport

    def abort(self) -> None:
        """Drop the connection with whatever is unsent. amqtt's reader for it then sees
        the stream end, which amqtt handles as the client going away."""
        self.is_closed = True
        self._transport.abort()
