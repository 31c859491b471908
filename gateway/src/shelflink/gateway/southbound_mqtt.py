"""Southbound MQTT: the store broker's device topics into :class:`Intake`.

The gateway acknowledges a QoS 1 message to the broker only once it is
settled: committed to the durable buffer, or judged (rejected, duplicate).
With a persistent session (fixed client id, clean_session off), a message
that was delivered but not yet on disk when the gateway died is delivered
again after the restart, so a ``kill -9`` loses nothing the broker held.
The broker must allow enough unacknowledged messages in flight for that to be
fast (Mosquitto: ``max_inflight_messages``; see docs/gateway.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import StrEnum

import aiomqtt

from shelflink.device.backoff import Backoff
from shelflink.device.identity import TlsSettings
from shelflink.device.session import resolve_endpoint
from shelflink.device.topics import PREFIX, VERSION
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.intake import Intake

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class LinkState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"


class MqttSouthbound:
    def __init__(self, config: GatewayConfig, intake: Intake) -> None:
        self.config = config
        self.intake = intake
        self.state = LinkState.CONNECTING
        self.reconnects = 0
        self.connected = asyncio.Event()
        # This store's topics only: a store broker serves one store, and where
        # several stores share a broker (the demo) each gateway takes its own.
        # A device writing into another device's topics is caught by intake.
        self.subscription = f"{PREFIX}/{VERSION}/{config.store_id}/#"
        # What the gateway itself publishes (commands) comes back to it on MQTT
        # 3.1.1, which has no no-local option; those topics are skipped.
        self._own_prefix = f"{PREFIX}/{VERSION}/{config.store_id}/"

    def _client(self) -> aiomqtt.Client:
        broker = self.config.broker
        tls = None
        if broker.ca_file or broker.cert_file or broker.url.startswith(("mqtts:", "ssl:")):
            tls = TlsSettings(broker.ca_file, broker.cert_file, broker.key_file)
        endpoint = resolve_endpoint(
            broker.url, username=broker.username, password=broker.password(), tls=tls
        )
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=f"{self.config.gateway_id}-southbound",
            username=endpoint.username,
            password=endpoint.password,
            tls_context=endpoint.tls_context,
            clean_session=False,
            keepalive=broker.keepalive_s,
            timeout=CONNECT_TIMEOUT_S,
            logger=logger,
        )
        # aiomqtt has no switch for it: acknowledge only after the commit.
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Until cancelled: connect, consume, and on any loss reconnect with backoff."""
        backoff = Backoff(initial_s=0.2, maximum_s=10.0)
        while True:
            self.state = LinkState.CONNECTING
            try:
                client = self._client()
                async with client:
                    await client.subscribe(self.subscription, qos=1, timeout=CONNECT_TIMEOUT_S)
                    self.state = LinkState.CONNECTED
                    self.connected.set()
                    backoff.reset()
                    logger.info("southbound connected to %s", self.config.broker.url)
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                logger.warning("southbound broker link lost: %s", exc)
            self.connected.clear()
            self.state = LinkState.BACKOFF
            self.reconnects += 1
            await asyncio.sleep(backoff.next_delay())

    async def _consume(self, client: aiomqtt.Client) -> None:
        paho = client._client
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload
            mid, qos = message.mid, message.qos
            if topic.endswith("/cmd") and topic.startswith(self._own_prefix):
                paho.ack(mid, qos)
                continue
            if not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()

            def settled(mid: int = mid, qos: int = qos) -> None:
                # Bound to this connection's client: after a reconnect the ack goes
                # nowhere, the broker redelivers, and the buffer ignores the repeat.
                with contextlib.suppress(Exception):
                    paho.ack(mid, qos)

            await self.intake.receive(topic, bytes(payload), settled)
