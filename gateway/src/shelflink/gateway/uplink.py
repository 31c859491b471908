"""The durable uplink: buffered records to the cloud broker, deleted only on the cloud's commit.

:class:`Uplink` leases batches from the :class:`DurableBuffer`, publishes them
(QoS 1, zlib-framed protobuf) on the gateway's batch topic of the cloud
broker, and deletes a batch from the buffer only when a ``BatchAck`` for it
arrives on the gateway's ack topic, never on the broker's PUBACK. A window
bounds the batches in flight; an unanswered batch is resent, byte-identical,
under the same ``batch_seq``. After a restart the leases the buffer still
holds go first. A backlog older than ``replay_after_s`` is replayed at a
limited rate. The protocol, the replay policy and the metrics are in
docs/uplink.md; the pure rules live in ``uplink_pacing`` and ``uplink_window``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiomqtt

from shelflink.device.backoff import Backoff
from shelflink.device.identity import TlsSettings
from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.session import resolve_endpoint
from shelflink.device.uplink import ack_topic, batch_topic
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_errors import BufferClosedError, DurableBufferError
from shelflink.gateway.buffer_record import Lease
from shelflink.gateway.config import GatewayConfig, UplinkConfig
from shelflink.gateway.southbound_mqtt import LinkState
from shelflink.gateway.uplink_pacing import Linger, ReplayPacer, is_backlog
from shelflink.gateway.uplink_stats import UplinkCounters, UplinkStats
from shelflink.gateway.uplink_window import Flight, Window
from shelflink.gateway.uplink_wire import AckError, batch_payload, parse_ack

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
PUBLISH_TIMEOUT_S: Final = 30.0  # PUBACK wait; only logged, the end-to-end ack decides
# The buffer does not announce appends; its counters are in memory, so looking
# at them this often costs nothing and bounds the extra latency.
POLL_S: Final = 0.05
STORAGE_RETRY_S: Final = 1.0
MAX_QUEUED_ACKS: Final = 10_000  # beyond this an ack is dropped, and its batch resent


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Uplink:
    """The gateway's one link to the cloud broker. Build it, then ``await run()`` until cancelled.

    One ``run()`` per instance: its window and waiting leases belong to that run.
    ``stats()`` may be called at any time, from the same event loop.
    """

    def __init__(
        self,
        config: GatewayConfig,
        buffer: DurableBuffer,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        if config.uplink is None:
            raise ValueError("the gateway configuration has no [uplink] section")
        self.config = config
        self.settings: UplinkConfig = config.uplink
        self.buffer = buffer
        self.clock_ms = clock_ms
        self.state = LinkState.CONNECTING
        self.connected = asyncio.Event()
        self.counters = UplinkCounters()
        self.batch_topic = batch_topic(config.gateway_id)
        self.ack_topic = ack_topic(config.gateway_id)
        s = self.settings
        self._window = Window(s.window, s.ack_timeout_s, s.ack_timeout_max_s)
        self._linger = Linger(s.max_records, s.max_bytes, s.linger_s)
        self._pacer = ReplayPacer(s.replay_max_batches_per_s, s.replay_max_bytes_per_s)
        self._replay_after_ms = int(s.replay_after_s * 1000)
        # Leases taken and not sent: from before a restart, or taken while a
        # connection died. They go first, oldest batch_seq first, unpaced.
        self._taken: list[Lease] = []
        self._parked: tuple[Lease, bytes] | None = None  # backlog waiting for the pacer
        self._next_live_at = 0.0
        self._wake = asyncio.Event()
        self._started = False

    # -- the connection ----------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: connect, send and settle batches; on any loss reconnect with backoff."""
        if self._started:
            raise RuntimeError("Uplink.run() runs once; build a new Uplink to run again")
        self._started = True
        # A restart resends exactly what the buffer still holds as leased.
        self._taken.extend(await self.buffer.leased())
        backoff = Backoff(initial_s=0.2, maximum_s=self.settings.reconnect_max_s)
        while True:
            self.state = LinkState.CONNECTING
            try:
                async with self._client() as client:
                    await client.subscribe(self.ack_topic, qos=1, timeout=CONNECT_TIMEOUT_S)
                    self.state = LinkState.CONNECTED
                    self.connected.set()
                    backoff.reset()
                    logger.info("uplink connected to %s", self.settings.url)
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(self._receive(client), name="uplink-acks")
                        tasks.create_task(self._send(client, tasks), name="uplink-send")
            except* aiomqtt.MqttError as lost:
                logger.warning("uplink to the cloud broker lost: %s", lost.exceptions[0])
            self.connected.clear()
            self.state = LinkState.BACKOFF
            self.counters.reconnects += 1
            await asyncio.sleep(backoff.next_delay())

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        tls = None
        if s.ca_file or s.cert_file or s.url.startswith(("mqtts:", "ssl:")):
            tls = TlsSettings(s.ca_file, s.cert_file, s.key_file)
        endpoint = resolve_endpoint(s.url, username=s.username, password=s.password(), tls=tls)
        return aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=f"{self.config.gateway_id}-uplink",
            # The cloud broker's ACL knows a gateway by its id.
            username=endpoint.username or self.config.gateway_id,
            password=endpoint.password,
            tls_context=endpoint.tls_context,
            # A persistent session keeps the ack subscription, and acks sent
            # while the link was briefly down wait for us in the broker.
            clean_session=False,
            keepalive=s.keepalive_s,
            timeout=CONNECT_TIMEOUT_S,
            max_queued_incoming_messages=MAX_QUEUED_ACKS,
            max_inflight_messages=max(20, s.window),
            logger=logger,
        )

    # -- acks --------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if message.topic.value != self.ack_topic or not isinstance(payload, bytes | bytearray):
                self.counters.acks_invalid += 1
                continue
            try:
                ack = parse_ack(bytes(payload), self.config.gateway_id)
            except AckError as exc:
                self.counters.acks_invalid += 1
                logger.warning("ignored a payload on %s: %s", self.ack_topic, exc)
                continue
            # Shielded: a connection lost meanwhile must not leave the buffer's
            # ack half-applied in memory (the delete itself is one transaction).
            await asyncio.shield(self._settle(ack))

    async def _settle(self, ack: pb.BatchAck) -> None:
        seq = ack.batch_seq
        flight = self._window.pop(seq)
        waiting = next((lease for lease in self._taken if lease.batch_seq == seq), None)
        if flight is None and waiting is None:
            # A second answer to a resent batch, or to one acked before a restart.
            self.counters.acks_unknown += 1
            logger.info("ack for batch %d, which is not in flight: ignored", seq)
            return
        if waiting is not None:
            self._taken.remove(waiting)
        try:
            deleted = await self.buffer.ack(seq)
        except BufferClosedError:
            raise
        except DurableBufferError as exc:
            # Keep it in flight: it goes out again, the cloud answers again, we retry.
            logger.error("batch %d acked by the cloud but not deleted: %s", seq, exc)
            if flight is not None:
                self._window.put_back(flight)
            elif waiting is not None:
                bisect.insort(self._taken, waiting, key=lambda lease: lease.batch_seq)
            return
        if ack.outcome == pb.BatchAck.OUTCOME_REJECTED:
            # Dead-lettered by the cloud: resending cannot change the answer, and
            # keeping it would only hold disk. The rows and the reason are in the
            # cloud's dead-letter table; see docs/uplink.md "Acks".
            self.counters.rejected += 1
            self.counters.rejected_records += deleted
            logger.error(
                "cloud rejected batch %d (%d records, dead-lettered there): %s",
                seq, deleted, ack.reason or "no reason given",
            )  # fmt: skip
        else:
            self.counters.acked += 1
            self.counters.acked_records += deleted
            if flight is not None and flight.first_sent is not None:
                elapsed = asyncio.get_running_loop().time() - flight.first_sent
                self.counters.latency.observe(elapsed)
        self._wake.set()

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, client: aiomqtt.Client, tasks: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        # A new connection: whatever was in flight may have died with the old one.
        for flight in self._window.in_order():
            self._publish(client, tasks, flight, loop.time())
        while True:
            self._wake.clear()
            for flight in self._window.due(loop.time()):
                self._publish(client, tasks, flight, loop.time())
            try:
                while self._window.has_room() and (batch := await self._next_batch()):
                    flight = self._window.add(*batch)
                    self._publish(client, tasks, flight, loop.time())
            except BufferClosedError:
                raise
            except DurableBufferError as exc:
                # The disk failed a lease; the gateway keeps accepting, we try again.
                logger.error("uplink could not lease from the buffer: %s", exc)
                await asyncio.sleep(STORAGE_RETRY_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle_s(loop.time())):
                    await self._wake.wait()

    def _idle_s(self, now: float) -> float:
        """How long nothing can happen: until the next poll, unless a pacer or linger is sooner."""
        idle = POLL_S
        # With the window full, only an ack or a resend deadline can change anything.
        if self._window.has_room():
            if self._parked is not None:
                idle = min(idle, self._pacer.wait_s(now, len(self._parked[1])))
            elif (ready_at := self._linger.wake_at()) is not None:
                idle = min(idle, ready_at - now)
        if (deadline := self._window.next_deadline()) is not None:
            idle = min(idle, deadline - now)
        return max(0.0, idle)

    def _publish(
        self, client: aiomqtt.Client, tasks: asyncio.TaskGroup, flight: Flight, now: float
    ) -> None:
        if flight.sends:
            self.counters.resends += 1
        else:
            self.counters.published += 1
        self._window.sent(flight, now)
        tasks.create_task(self._put(client, flight), name=f"uplink-batch-{flight.batch_seq}")

    async def _put(self, client: aiomqtt.Client, flight: Flight) -> None:
        # Waiting for the PUBACK in its own task keeps the window pipelined.
        try:
            await client.publish(self.batch_topic, flight.payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            # Not fatal: the batch stays in flight and goes out again when its ack is overdue.
            logger.info("batch %d not confirmed by the broker: %s", flight.batch_seq, exc)

    # -- what goes next ----------------------------------------------------------------------

    async def _next_batch(self) -> tuple[Lease, bytes] | None:
        """The next batch for the window, or None when nothing may go now."""
        if self._taken:
            lease = self._taken.pop(0)
            return lease, self._payload(lease)
        now = asyncio.get_running_loop().time()
        if self._parked is not None:
            lease, payload = self._parked
            if self._pacer.wait_s(now, len(payload)) > 0:
                return await self._live_batch()
            self._pacer.take(now, len(payload))
            self._parked = None
            return lease, payload
        if not self._queue_ready(now):
            return None
        return await self._head_batch()

    async def _head_batch(self) -> tuple[Lease, bytes] | None:
        """A lease from the head of the queue (events first, then oldest), paced if backlog."""
        s = self.settings
        taken = await self._keep(self.buffer.lease(s.max_records, s.max_bytes))
        self._linger.taken()
        if taken is None:
            return None
        payload = self._payload(taken)
        if self._pacer.limited and is_backlog(
            taken.records, self.clock_ms(), self._replay_after_ms
        ):
            now = asyncio.get_running_loop().time()
            if self._pacer.wait_s(now, len(payload)) > 0:
                self._parked = (taken, payload)
                self.counters.replay_waits += 1
                return await self._live_batch()
            self._pacer.take(now, len(payload))
        return taken, payload

    async def _live_batch(self) -> tuple[Lease, bytes] | None:
        """While the replay waits for the pacer: the newest records, at most once per linger."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_live_at:
            return None
        self._next_live_at = loop.time() + max(self.settings.linger_s, POLL_S)
        since = self.clock_ms() - self._replay_after_ms
        s = self.settings
        lease = await self._keep(self.buffer.lease_newest(s.max_records, s.max_bytes, since))
        if lease is None:
            return None
        self.counters.live_batches += 1
        return lease, self._payload(lease)

    def _queue_ready(self, now: float) -> bool:
        stats = self.buffer.stats()
        waiting = stats.records - stats.leased_records
        # Accounted bytes overstate the framed size a little: a batch is judged full early.
        waiting_bytes = stats.bytes * waiting // stats.records if stats.records else 0
        return self._linger.ready(now, waiting, waiting_bytes)

    def _payload(self, lease: Lease) -> bytes:
        return batch_payload(self.config.store_id, self.config.gateway_id, lease)

    async def _keep(self, taking: Awaitable[Lease | None]) -> Lease | None:
        """Await a lease that must not get lost when the caller is cancelled meanwhile.

        A cancelled ``lease()`` may still take its lease on disk; without this
        it would wait, unsent, until the next restart.
        """
        task = asyncio.ensure_future(taking)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._adopt)
            raise

    def _adopt(self, task: asyncio.Future[Lease | None]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        lease = task.result()
        if lease is not None:
            bisect.insort(self._taken, lease, key=lambda taken: taken.batch_seq)

    # -- metrics -----------------------------------------------------------------------------

    def stats(self) -> UplinkStats:
        c = self.counters
        buffered = self.buffer.stats()
        oldest = buffered.oldest_ts_ms
        age = 0.0 if oldest is None else max(0.0, (self.clock_ms() - oldest) / 1000)
        return UplinkStats(
            state=self.state.value,
            connected=self.state is LinkState.CONNECTED,
            reconnects=c.reconnects,
            window=self._window.size,
            in_flight_batches=len(self._window),
            in_flight_records=self._window.records,
            restored_waiting=len(self._taken),
            replay_paced=self._parked is not None,
            published=c.published,
            resends=c.resends,
            acked=c.acked,
            acked_records=c.acked_records,
            rejected=c.rejected,
            rejected_records=c.rejected_records,
            acks_unknown=c.acks_unknown,
            acks_invalid=c.acks_invalid,
            replay_waits=c.replay_waits,
            live_batches=c.live_batches,
            ack_latency_last_s=c.latency.last_s,
            ack_latency_sum_s=c.latency.sum_s,
            ack_latency_count=c.latency.count,
            ack_latency_buckets=c.latency.cumulative(),
            backlog_records=buffered.records,
            backlog_bytes=buffered.bytes,
            backlog_oldest_age_s=age,
        )
