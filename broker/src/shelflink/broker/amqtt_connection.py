"""One client connection inside amqtt 0.12, corrected: keep-alive and in-flight messages.

:class:`ConnectionHandler` replaces amqtt's ``BrokerProtocolHandler`` for every
connection of :class:`~shelflink.broker.amqtt_broker.CorrectedBroker`. It overrides
private amqtt 0.12 methods (amqtt is pinned below 0.13); each correction is covered by
broker/tests/test_broker_sessions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OUTGOING

from shelflink.broker.framing import ConnectionWriter


class ConnectionHandler(BrokerProtocolHandler):  # type: ignore[misc]
    """amqtt's protocol handler for one connection, corrected in two ways, and able to
    run outgoing message flows as tasks it keeps track of (:meth:`start_delivery`).

    The keep-alive is enforced. amqtt 0.12 notices a client that stays silent past its
    keep-alive (its reader times out) and then ignores it, so a device that lost power
    behind a NAT kept its connection, and its will was never published. Here the
    connection is dropped, which amqtt handles as an abnormal disconnect
    [MQTT-3.1.2-24]. The timeout itself is 1.5 x the client's keep-alive (see
    ``CorrectedBroker._initialize_client_session``).

    A persistent session's unacknowledged QoS 1 messages stay in flight. amqtt 0.12
    forgets a message 5 s after sending it, or when the connection ends, whether or not
    the PUBACK came, and re-sends in-flight messages on reconnect waiting for each PUBACK
    before it reads anything else from the client. A subscriber that acknowledges only
    what it has committed, and commits only once subscribed (the gateway), thus waited
    5 s for its SUBACK and lost what had been in flight when it crashed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deliveries: set[asyncio.Task[Any]] = set()

    def handle_read_timeout(self) -> None:
        writer = self.writer
        if isinstance(writer, ConnectionWriter):
            writer.abort()

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        try:
            await super()._handle_qos1_message_flow(app_message)
        except (TimeoutError, asyncio.CancelledError):
            # amqtt stopped waiting for the PUBACK (its 5 s, or the connection ended)
            # and dropped the message from the session: put it back.
            session = self.session
            if (
                app_message.direction == OUTGOING
                and app_message.puback_packet is None
                and session is not None
                and not session.clean_session
            ):
                session.inflight_out[app_message.packet_id] = app_message
            raise

    async def handle_puback(self, puback: Any) -> None:
        packet_id = puback.variable_header.packet_id
        if packet_id not in self._puback_waiters and self.session is not None:
            # Acknowledged after amqtt stopped waiting: delivered, no longer in flight.
            self.session.inflight_out.pop(packet_id, None)
            return
        await super().handle_puback(puback)

    async def _retry_deliveries(self) -> None:
        """Re-send what is in flight, in order, without waiting for the acknowledgements."""
        in_flight = [*self.session.inflight_in.values(), *self.session.inflight_out.values()]
        for message in in_flight:
            self.start_delivery(self._handle_message_flow(message))

    def start_delivery(self, delivery: Coroutine[Any, Any, Any]) -> None:
        """Run one outgoing message flow as its own task. Tasks take their first step in
        the order they are created, and that step writes the PUBLISH: wire order is call
        order."""
        task = asyncio.ensure_future(delivery)
        self._deliveries.add(task)
        task.add_done_callback(_forgetting(self._deliveries))


def _forgetting(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def forget(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a lost connection is not worth a traceback

    return forget
