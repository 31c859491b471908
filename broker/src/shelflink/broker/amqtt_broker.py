"""amqtt 0.12's broker, corrected where it breaks MQTT 3.1.1 in ways Shelflink notices.

``EmbeddedBroker`` runs :class:`CorrectedBroker` instead of amqtt's ``Broker``. Each
override replaces a private amqtt 0.12 method: the amqtt version is pinned below 0.13
(broker/pyproject.toml) and every correction is covered by a ``test_broker_*`` test.
Compared with amqtt 0.12.1:

* Retained messages go to a client only in answer to its SUBSCRIBE, only those its
  filter matches, and a message published around that moment arrives once.
* A CONNECT with a client id that is already connected takes over: the old connection
  is closed at once and its will published, all before the CONNACK. Nothing happens to
  an existing session until the new client has authenticated.
* A client that disconnects abnormally, or stays silent past 1.5 x its keep-alive, has
  its will published, retained if it asked for that; the will is the one its own
  CONNECT carried.
* A persistent session keeps a QoS 1 message in flight until the client acknowledges
  it, however late, and re-sends it on the next connection [MQTT-4.4.0-1]; what it
  re-sends or had queued is handed over without holding up the client's SUBSCRIBE, and
  with RETAIN=0.

The keep-alive and in-flight corrections live in the per-connection handler
(amqtt_connection.py). Connections must come from ``EmbeddedBroker``, whose writers can
be cut at once (:class:`~shelflink.broker.framing.ConnectionWriter`).
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.utils import format_client_message, gen_client_id

from shelflink.broker.amqtt_connection import ConnectionHandler
from shelflink.broker.framing import ConnectionWriter

_REFUSED = 0x80  # SUBACK return code for a refused subscription
# What a CONNECT that resumes a persistent session brings along. amqtt 0.12 copies all
# but will_retain (and the address), so a resumed session kept its first will's flag.
_PER_CONNECTION = (
    "will_flag",
    "will_topic",
    "will_message",
    "will_qos",
    "will_retain",
    "keep_alive",
    "username",
    "password",
    "remote_address",
    "remote_port",
    "ssl_object",
)

Session = Any  # amqtt.session.Session: amqtt ships no types
Handler = Any  # amqtt's BrokerProtocolHandler


@dataclass(frozen=True, slots=True)
class _Will:
    topic: str
    message: bytes
    qos: int
    retain: bool

    @classmethod
    def of(cls, session: Session) -> _Will | None:
        """The will of the session's current connection, if it left one."""
        if not session.will_flag or session.will_topic is None:
            return None
        return cls(
            topic=session.will_topic,
            message=bytes(session.will_message or b""),
            qos=session.will_qos or 0,
            retain=bool(session.will_retain),
        )


class CorrectedBroker(Broker):  # type: ignore[misc]  # amqtt ships no types
    """amqtt's broker with the corrections listed in this module's docstring."""

    def __init__(self, config: BrokerConfig) -> None:
        # Connections replaced by a takeover: their message loops, still winding down,
        # must neither publish a will nor touch the session the new connection now owns.
        self._replaced: weakref.WeakSet[Handler] = weakref.WeakSet()
        super().__init__(config)

    # -- connecting -----------------------------------------------------------------

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Handler, Session]:
        """Read the CONNECT into a new session, and leave existing sessions alone.

        amqtt 0.12 also deleted or merged the client id's existing session here, before
        the client had authenticated: a CONNECT with a wrong password wiped the
        subscriptions of the device whose client id it used. That now happens in
        ``_adopt_session``, after authentication.
        """
        where = format_client_message(address=remote_address, port=remote_port)
        try:
            handler, session = await ConnectionHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except AMQTTError as exc:
            self.logger.warning(
                "[MQTT-3.1.0-1] %s: can't read first packet as CONNECT: %s", where, exc
            )
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            self.logger.warning("Invalid connection from %s", where)
            await writer.close()
            raise MQTTError(exc) from exc
        except NoDataError as exc:
            # amqtt's wording: EmbeddedBroker's log filter drops it for health probes.
            self.logger.error("No data from %s : %s", where, exc)
            raise AMQTTError(exc) from exc
        if not session.client_id:
            session.client_id = gen_client_id()
        # [MQTT-3.1.2-24] allows one and a half keep-alives of silence; amqtt waited one.
        session.keep_alive = math.ceil(session.keep_alive * 1.5)
        return handler, session

    async def _handle_client_session(
        self,
        reader: Any,
        writer: Any,
        incoming: Session,
        handler: Handler,
        server: Any,
        listener_name: str,
    ) -> None:
        """One connection, from CONNACK to its end.

        What changed from amqtt 0.12: authentication comes first (a refused client
        changes nothing); a client id already connected is taken over; and no retained
        message is sent on connect. amqtt then sent every retained message matching any
        filter of any client (a device subscribed to its cmd topic got the gateway's
        status messages), and did so iterating the subscription table across awaits, so
        another client subscribing meanwhile raised RuntimeError and cut the connection
        right after its CONNACK: the device's SUBSCRIBE went unanswered and it waited
        out its 10 s timeout.
        """
        if not await self._authenticate(incoming, self.listeners_config[listener_name]):
            handler.attach(incoming, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await writer.close()
            return
        session, replaced_will = self._adopt_session(incoming, handler, reader, writer)
        if replaced_will is not None:
            # Before the CONNACK, so before anything the new connection publishes: a
            # device's new birth must not be overwritten by its old connection's will.
            await self._publish_will(session, replaced_will)
        await handler.mqtt_connack_authorize(True)
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_CONNECTED, client_id=session.client_id, client_session=session
        )
        await handler.start()
        await self._publish_session_retained_messages(session)
        await self._client_message_loop(session, handler)
        if self._owns(session, handler) and session.transitions.is_connected():
            # The loop ended without a disconnect: amqtt closes the connection on a
            # protocol error (a PUBLISH to a wildcard topic). That is abnormal too.
            await self._end_connection(session, handler, abnormal=True)

    def _adopt_session(
        self, incoming: Session, handler: Handler, reader: Any, writer: Any
    ) -> tuple[Session, _Will | None]:
        """Give the new connection its session, taking over a live connection of the
        same client id [MQTT-3.1.4-2]; return the replaced connection's will, if any.

        Nothing here awaits: a message loop or a second CONNECT running halfway through
        would see half a takeover.
        """
        client_id = incoming.client_id
        existing, existing_handler = self._sessions.get(client_id, (None, None))
        replaced_will = None
        if existing is not None and existing.transitions.is_connected():
            # MQTT 3.1.1 publishes a will whenever a connection closes without
            # DISCONNECT, a takeover included (Mosquitto 2 skips it when both
            # connections use persistent sessions, following MQTT 5).
            replaced_will = _Will.of(existing)
            self._replaced.add(existing_handler)
            existing.transitions.disconnect()
            old_writer = existing_handler.writer
            if isinstance(old_writer, ConnectionWriter):
                old_writer.abort()
        if existing is not None and (incoming.clean_session or existing.clean_session):
            self._discard_session(client_id)
            existing = None
        if existing is None:
            session = incoming
            session.parent = 0  # CONNACK: no session present
        else:
            session = existing
            for name in _PER_CONNECTION:
                setattr(session, name, getattr(incoming, name))
            session.parent = 1
        session.transitions.connect()
        handler.attach(session, reader, writer)
        self._sessions[client_id] = (session, handler)
        return session, replaced_will

    def _discard_session(self, client_id: str) -> None:
        """amqtt's _delete_session without its awaits: subscriptions and queue go."""
        session, _ = self._sessions.pop(client_id)
        for topic_filter in list(self._subscriptions):
            self._del_subscription(topic_filter, session)
            if not self._subscriptions[topic_filter]:
                del self._subscriptions[topic_filter]
        session.clear_queues()

    def _owns(self, session: Session, handler: Handler) -> bool:
        return bool(self._sessions.get(session.client_id, (None, None))[1] is handler)

    # -- disconnecting ----------------------------------------------------------------

    async def _handle_disconnect(
        self, client_session: Session, handler: Handler, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        if handler in self._replaced:
            # Taken over: the takeover published this connection's will already.
            self._replaced.discard(handler)
            await self._stop_handler(handler)
            return
        abnormal = not isinstance(disconnect_waiter.result(), DisconnectPacket)
        await self._end_connection(client_session, handler, abnormal=abnormal)

    async def _end_connection(self, session: Session, handler: Handler, *, abnormal: bool) -> None:
        # Disconnected and the will out before the first await: a CONNECT for this client
        # id arriving meanwhile then resumes the session instead of taking it over (a
        # second will), and is not marked disconnected by us afterwards, which amqtt
        # 0.12 did, leaving the new connection deaf.
        will = _Will.of(session) if abnormal else None
        session.transitions.disconnect()
        if will is not None:
            await self._publish_will(session, will)
        await self._stop_handler(handler)
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_DISCONNECTED, client_id=session.client_id, client_session=session
        )

    async def _publish_will(self, session: Session, will: _Will) -> None:
        await self._broadcast_message(session, will.topic, will.message, will.qos)
        if will.retain:
            await self.retain_message(session, will.topic, will.message, will.qos)

    async def _session_monitor(self) -> None:
        """amqtt's sweep of ended sessions, each checked right before it is removed.

        amqtt 0.12 listed the sessions to remove first and then awaited each removal in
        turn; a client reconnecting meanwhile with a listed client id lost its new
        session and connection.
        """
        while True:
            for client_id in list(self._sessions):
                session = self._sessions.get(client_id, (None, None))[0]
                if session is not None and self._ended(session):
                    await self._cleanup_session(client_id)
            await asyncio.sleep(1)

    def _ended(self, session: Session) -> bool:
        if session.transitions.state != "disconnected":
            return False
        if session.is_anonymous or session.clean_session:
            return True
        expiry_s = self.config.session_expiry_interval
        left = session.last_disconnect_time
        return (
            expiry_s is not None and left is not None and left < math.floor(time.time() - expiry_s)
        )

    # -- routing ----------------------------------------------------------------------

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        """Queue a message for delivery with its subscribers decided now.

        amqtt 0.12 matched subscribers when its broadcast loop got to the message, later,
        while the retained copy was stored at once. A subscription added in between got
        the message twice: as the retained copy and live. Here a message reaches the
        subscriptions that existed when it was published, and a new subscription gets
        the retained messages that existed when it was added: each arrives once.
        """
        broadcast: dict[str, Any] = {
            "session": session,
            "topic": topic,
            "data": data,
            "targets": self._subscribers_of(topic),
        }
        if force_qos is not None:
            broadcast["qos"] = force_qos
        await self._broadcast_queue.put(broadcast)  # unbounded: never waits

    def _subscribers_of(self, topic: str | None) -> list[tuple[Session, int]]:
        if topic is None:
            return []
        return [
            target
            for topic_filter, subscriptions in self._subscriptions.items()
            if self._matches(topic, topic_filter)
            for target in subscriptions
        ]

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """amqtt's delivery of one queued message, to the subscribers chosen at publish."""
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for target, subscribed_qos in broadcast["targets"]:
            if self._sessions.get(target.client_id, (None, None))[0] is not target:
                continue  # that session ended, or a clean one replaced it, since
            # amqtt delivers at the subscription's QoS (docs/brokers.md).
            qos = broadcast.get("qos", subscribed_qos)
            if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
                continue
            if target.transitions.state != "connected":
                if not target.clean_session and qos in (QOS_1, QOS_2) and not target.is_anonymous:
                    await self._retain_broadcast_message(broadcast, qos, target)
                continue
            handler = self._get_handler(target)
            if handler is not None:
                running_tasks.append(
                    asyncio.ensure_future(
                        handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                    )
                )

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """Add the subscription and, in the same step, start delivering the retained
        messages it matches, so they go out before any live message published after it
        (MQTT 3.1.1 allows them to precede the SUBACK). amqtt 0.12 looked them up later,
        after the SUBACK, and waited for their PUBACKs before reading the client's next
        packet."""
        granted: int = await super().add_subscription(subscription, session)
        handler = self._get_handler(session)
        if (
            granted == _REFUSED
            or not isinstance(handler, ConnectionHandler)
            or not session.transitions.is_connected()
        ):
            return granted
        for topic, retained in self._retained_messages.items():
            if retained.data and self._matches(topic, subscription[0]):
                qos = min(granted, retained.qos or granted)
                handler.start_delivery(
                    handler.mqtt_publish(retained.topic, retained.data, qos, retain=True)
                )
        return granted

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Nothing left to do: ``add_subscription`` started these deliveries."""

    async def _publish_session_retained_messages(self, session: Session) -> None:
        """Hand over what was queued while a persistent session was offline, after what
        ``handler.start()`` re-sent and before anything live, without waiting for the
        PUBACKs (amqtt 0.12 waited, holding up the client's SUBSCRIBE).

        amqtt 0.12 also set RETAIN on these; MQTT 3.1.1 [MQTT-3.3.1-9] requires RETAIN=0
        for messages delivered through an established subscription, and a subscriber that
        treats RETAIN as "last known value, possibly stale" would misread them.
        """
        handler = self._get_handler(session)
        if not isinstance(handler, ConnectionHandler):
            return
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            handler.start_delivery(
                handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
            )
