"""Cloud ingest: uplink batches from the cloud broker into PostgreSQL, exactly once.

Workers are stateless and share the batch topics through an MQTT 5 shared
subscription, so adding a worker splits the load. A worker takes whatever
batches arrived, commits them in one transaction (COPY, idempotent), and only
after the commit returns publishes each gateway's :class:`BatchAck` and
acknowledges the MQTT messages. Nothing is trusted to the broker: a worker
killed mid-batch leaves its batches unacknowledged end to end, and the
gateways resend them; a replay changes nothing in the database.

Backpressure: MQTT 5's receive maximum caps how many unacknowledged batches
the broker sends a worker, so a slow database makes workers take less, not
queue more. On a 3.1.1-only broker (the embedded one) the worker falls back to
a plain subscription: run one worker there (two would both store every batch,
harmlessly but twice the work).

Rollups are not part of the acknowledged commit: it records which batches
still need folding, and the worker folds them (``rollups.fold_rollups``) when
no batch is waiting, and at least every ``fold_every_commits`` commits. A
crash between the commit and the fold leaves the work pending for any worker.

Every worker also keeps retention beside the ingest, on its own connection
(``retention_schedule.py``): one worker at a time applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg.errors import TransactionRollback

from shelflink.cloud.database import Connection, connect
from shelflink.cloud.retention_schedule import (
    RETENTION_EVERY_S,
    RETENTION_FIRST_AFTER_S,
    RetentionStatus,
    scheduled_retention,
)
from shelflink.cloud.rollups import FOLD_BATCHES, fold_rollups
from shelflink.cloud.writer import (
    BatchOutcome,
    InvalidBatch,
    commit_batches,
    dead_letter,
    gateway_stores,
)
from shelflink.device.backoff import Backoff
from shelflink.device.identity import BrokerAddress
from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import (
    UplinkError,
    ack_topic,
    batch_subscription,
    gateway_of_batch_topic,
    unframe_batch,
)

logger = logging.getLogger(__name__)

NETWORK_TIMEOUT_S = 10.0
STORES_REFRESH_S = 1.0  # how often an unknown gateway may trigger a registry re-read
# Refusals a gateway is told about (a REJECTED ack), so that it stops resending.
# Undecodable payloads carry no batch number to answer with. An unknown gateway
# is not told: it keeps its data and resends until an operator registers it.
_TELL_THE_GATEWAY = frozenset({"wrong_store", "invalid_batch"})


@dataclass(frozen=True, slots=True)
class IngestOptions:
    worker_id: str = "ingest-1"
    # Batches one transaction takes at most; more arrive while it commits.
    max_batches_per_commit: int = 64
    # Unacknowledged batches the broker may send this worker (MQTT 5 receive maximum).
    receive_maximum: int = 256
    # Wait this long for more batches before committing a small group.
    linger_s: float = 0.01
    shared: bool | None = None  # None: shared when the broker speaks MQTT 5
    # Rollups are folded after the acks: whenever no batch is waiting, and at
    # least once every this many commits even when batches keep coming.
    fold_every_commits: int = 8
    fold_batches: int = FOLD_BATCHES  # pending batches one fold takes at most
    # Retention: a round this long after start, then one every retention_every_s;
    # 0 turns the schedule off. Of several workers, one applies each round.
    retention_every_s: float = RETENTION_EVERY_S
    retention_first_after_s: float = RETENTION_FIRST_AFTER_S
    retention_days: int | None = None  # None: SHELFLINK_RETENTION_DAYS (90)

    def __post_init__(self) -> None:
        # Refused here rather than when run() starts; NaN fails both comparisons.
        if not (self.retention_every_s >= 0 and self.retention_first_after_s >= 0):
            raise ValueError("retention intervals are 0 or more seconds")
        if self.retention_days is not None and self.retention_days < 1:
            raise ValueError("retention keeps at least one day")


@dataclass(slots=True)
class IngestCounters:
    batches_committed: int = 0
    batches_replayed: int = 0  # already in the database: acked again, nothing written
    rows_new: int = 0
    rows_duplicate: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    commit_seconds: float = 0.0
    commits: int = 0
    database_errors: int = 0
    batches_folded: int = 0  # pending batches this worker folded into the rollups
    fold_seconds: float = 0.0
    retention: RetentionStatus = field(default_factory=RetentionStatus)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a batch message will not be stored; it goes to the dead-letter table."""

    reason: str
    gateway: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class _Arrival:
    topic: str
    payload: bytes
    settle: Callable[[], None]  # the MQTT acknowledgement, sent after the commit


class IngestWorker:
    def __init__(self, mqtt_url: str, database_url: str, options: IngestOptions | None = None):
        self.mqtt_url = mqtt_url
        self.database_url = database_url
        self.options = options or IngestOptions()
        self.counters = IngestCounters()
        self.connected = asyncio.Event()
        self.shared: bool | None = None
        self._stores: dict[str, str] = {}
        self._stores_read_at = -STORES_REFRESH_S

    # -- MQTT --------------------------------------------------------------------------

    def _client(self, v5: bool) -> aiomqtt.Client:
        address = BrokerAddress.parse(self.mqtt_url)
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.ReceiveMaximum = self.options.receive_maximum
        client = aiomqtt.Client(
            address.host,
            address.port,
            identifier=self.options.worker_id,
            username=address.username,
            password=address.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            properties=properties,
            keepalive=30,
            timeout=NETWORK_TIMEOUT_S,
            logger=logger,
        )
        # Acknowledge after the commit, not on receipt (aiomqtt has no switch).
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Until cancelled: consume, commit, acknowledge; reconnect on any loss.

        Retention runs beside it, whether or not the broker is reachable.
        """
        options = self.options
        async with scheduled_retention(
            self.database_url,
            self.counters.retention,
            every_s=options.retention_every_s,
            first_after_s=options.retention_first_after_s,
            days=options.retention_days,
            application_name=f"{options.worker_id}-retention",
        ):
            await self._ingest()

    async def _ingest(self) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=10.0)
        v5 = self.options.shared is not False
        v5_worked = False
        while True:
            connected = False
            try:
                async with self._client(v5) as client:
                    connected = True
                    v5_worked = v5_worked or v5
                    self.shared = v5
                    await client.subscribe(
                        batch_subscription(shared=v5), qos=1, timeout=NETWORK_TIMEOUT_S
                    )
                    backoff.reset()
                    self.connected.set()
                    logger.info(
                        "%s consuming (%s subscription)",
                        self.options.worker_id, "shared" if v5 else "plain",
                    )  # fmt: skip
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                if v5 and not connected and not v5_worked and self.options.shared is None:
                    # An MQTT 3.1.1-only broker refuses the MQTT 5 CONNECT.
                    logger.warning(
                        "broker refused MQTT 5 (%s): plain subscription; run one worker", exc
                    )
                    v5 = False
                    continue
                logger.warning("cloud broker link lost: %s", exc)
            self.connected.clear()
            await asyncio.sleep(backoff.next_delay())

    async def _consume(self, client: aiomqtt.Client) -> None:
        queue: asyncio.Queue[_Arrival] = asyncio.Queue()
        paho_client = client._client

        async def receive() -> None:
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    payload = b""

                def settle(mid: int = message.mid, qos: int = message.qos) -> None:
                    with contextlib.suppress(Exception):
                        paho_client.ack(mid, qos)

                queue.put_nowait(_Arrival(message.topic.value, bytes(payload), settle))

        # Not a TaskGroup: its ExceptionGroup would hide the MqttError that
        # run() reconnects on. Whichever of the two ends first ends both.
        tasks = {
            asyncio.create_task(receive(), name="ingest-receive"),
            asyncio.create_task(self._commit_loop(client, queue), name="ingest-commit"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # re-raises the MqttError (or a bug) as it is

    # -- commits -------------------------------------------------------------------------

    async def _commit_loop(self, client: aiomqtt.Client, queue: asyncio.Queue[_Arrival]) -> None:
        conn: Connection | None = None
        backoff = Backoff(initial_s=0.2, maximum_s=5.0)
        group: list[_Arrival] = []
        fold_due = True  # a worker that died may have left batches pending
        since_fold = 0
        try:
            while True:
                if not group and queue.empty() and fold_due and conn is not None:
                    # Idle: fold until nothing is pending or a batch arrives.
                    since_fold = 0
                    try:
                        fold_due = await self._fold(conn, queue)
                    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                        # Nothing is lost: the batches stay pending for the next fold.
                        self.counters.database_errors += 1
                        logger.warning("database unavailable while folding rollups: %s", exc)
                        with contextlib.suppress(Exception):
                            await conn.close()
                        conn = None
                if not group:
                    group.append(await queue.get())
                    await asyncio.sleep(self.options.linger_s)
                while len(group) < self.options.max_batches_per_commit and not queue.empty():
                    group.append(queue.get_nowait())
                try:
                    if conn is None or conn.closed:
                        conn = await connect(
                            self.database_url, application_name=self.options.worker_id
                        )
                        self._stores = await gateway_stores(conn)
                        self._stores_read_at = time.monotonic()
                    await self._commit_group(client, conn, group)
                    group = []
                    backoff.reset()
                    fold_due = True
                    since_fold += 1
                    if since_fold >= self.options.fold_every_commits:
                        # Busy: one fold between commits, so acks are never starved.
                        await self._fold(conn, queue, rounds=1)
                        since_fold = 0
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    # The database went away (restart, network). Nothing was acked,
                    # so keep the same group and try again on a new connection.
                    self.counters.database_errors += 1
                    logger.warning("database unavailable, retrying %d batches: %s", len(group), exc)
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    await asyncio.sleep(backoff.next_delay())
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _fold(
        self, conn: Connection, queue: asyncio.Queue[_Arrival], rounds: int | None = None
    ) -> bool:
        """Fold pending batches into the rollups (after the acks); whether more may be left.

        Stops when a fold takes nothing, when batches are waiting to be committed,
        or after ``rounds`` folds. A fold rolls back whole on error and its batches
        stay pending for the next fold, by any worker.
        """
        began = time.perf_counter()
        try:
            done = 0
            while rounds is None or done < rounds:
                folded = await fold_rollups(conn, self.options.fold_batches)
                done += 1
                self.counters.batches_folded += folded
                if folded < self.options.fold_batches:
                    return False  # nothing left that another worker is not folding
                if not queue.empty():
                    break
            return True
        except TransactionRollback as exc:
            # A deadlock or serialization failure: the batches stay pending.
            logger.info("rollup fold rolled back, retried later: %s", exc)
            return True
        finally:
            self.counters.fold_seconds += time.perf_counter() - began

    async def _judge(self, conn: Connection, arrival: _Arrival) -> tuple[pb.Batch, str] | _Refusal:
        """A batch and the gateway whose topic it came on, or why it is refused."""
        try:
            gateway = gateway_of_batch_topic(arrival.topic)
        except UplinkError as exc:
            return _Refusal("bad_topic", None, str(exc))
        try:
            batch = unframe_batch(arrival.payload)
        except UplinkError as exc:
            return _Refusal("undecodable", gateway, str(exc))
        if batch.gateway_id != gateway:
            return _Refusal(
                "gateway_mismatch", gateway, f"batch names {batch.gateway_id!r} on {gateway!r}"
            )
        store = self._stores.get(gateway)
        now = time.monotonic()
        if store is None and now - self._stores_read_at >= STORES_REFRESH_S:
            # Perhaps registered since this worker last looked. At most one
            # query per interval, so a flood from an unknown gateway cannot
            # cost a query per batch.
            self._stores = await gateway_stores(conn)
            self._stores_read_at = now
            store = self._stores.get(gateway)
        if store is None:
            return _Refusal("unknown_gateway", gateway, f"gateway {gateway!r} is not registered")
        if batch.store_id != store:
            return _Refusal(
                "wrong_store",
                gateway,
                f"gateway {gateway!r} serves store {store!r}, batch says {batch.store_id!r}",
            )
        return (batch, gateway)

    async def _commit_group(
        self,
        client: aiomqtt.Client,
        conn: Connection,
        group: list[_Arrival],
    ) -> None:
        good: list[tuple[pb.Batch, str]] = []
        good_arrivals: list[_Arrival] = []
        refused: list[tuple[_Arrival, _Refusal]] = []
        for arrival in group:
            verdict = await self._judge(conn, arrival)
            if isinstance(verdict, _Refusal):
                refused.append((arrival, verdict))
            else:
                good.append(verdict)
                good_arrivals.append(arrival)
        began = time.perf_counter()
        outcomes: list[BatchOutcome] = []
        while True:
            try:
                async with conn.transaction():
                    outcomes = await commit_batches(conn, good) if good else []
                    for arrival, why in refused:
                        await dead_letter(
                            conn, arrival.topic, why.gateway, why.reason, why.detail,
                            arrival.payload,
                        )  # fmt: skip
                break
            except InvalidBatch as bad:
                # A batch the writer cannot store (say, a reading with an empty
                # device id): set aside with its reason, and commit the rest.
                good.pop(bad.index)
                arrival = good_arrivals.pop(bad.index)
                refused.append((arrival, _Refusal("invalid_batch", bad.gateway_id, bad.reason)))
        # Committed: only now may anyone hear about it.
        self.counters.commit_seconds += time.perf_counter() - began
        self.counters.commits += 1
        now = time.time_ns() // 1_000_000
        for outcome in outcomes:
            self._count(outcome)
            await self._publish_ack(client, outcome, now)
        for arrival, why in refused:
            self.counters.dead_letters[why.reason] += 1
            logger.warning(
                "dead-lettered %s from %s: %s", why.reason, why.gateway or arrival.topic, why.detail
            )
            if why.gateway is not None and why.reason in _TELL_THE_GATEWAY:
                await self._publish_rejection(client, why.gateway, arrival.payload, why, now)
        for arrival in group:
            arrival.settle()

    def _count(self, outcome: BatchOutcome) -> None:
        if outcome.already_committed:
            self.counters.batches_replayed += 1
        else:
            self.counters.batches_committed += 1
            self.counters.rows_new += outcome.rows_new
            self.counters.rows_duplicate += outcome.rows_duplicate

    async def _publish_ack(self, client: aiomqtt.Client, outcome: BatchOutcome, now: int) -> None:
        ack = pb.BatchAck(
            gateway_id=outcome.gateway_id,
            batch_seq=outcome.batch_seq,
            outcome=pb.BatchAck.OUTCOME_COMMITTED,
            rows_new=outcome.rows_new,
            rows_duplicate=outcome.rows_duplicate,
            committed_ms=now,
        )
        await client.publish(
            ack_topic(outcome.gateway_id), ack.SerializeToString(), qos=1,
            timeout=NETWORK_TIMEOUT_S,
        )  # fmt: skip

    async def _publish_rejection(
        self, client: aiomqtt.Client, gateway: str, payload: bytes, why: _Refusal, now: int
    ) -> None:
        # Tell the gateway its batch will never be stored, so it stops resending.
        with contextlib.suppress(UplinkError):
            batch = unframe_batch(payload)
            ack = pb.BatchAck(
                gateway_id=gateway,
                batch_seq=batch.batch_seq,
                outcome=pb.BatchAck.OUTCOME_REJECTED,
                committed_ms=now,
                reason=f"{why.reason}: {why.detail}",
            )
            await client.publish(
                ack_topic(gateway), ack.SerializeToString(), qos=1, timeout=NETWORK_TIMEOUT_S
            )


@contextlib.asynccontextmanager
async def running(worker: IngestWorker, connect_timeout_s: float = 30.0) -> AsyncIterator[None]:
    """Run ``worker`` for the block, once it consumes; cancelled and awaited on exit."""
    task = asyncio.create_task(worker.run(), name=f"ingest-{worker.options.worker_id}")
    try:
        async with asyncio.timeout(connect_timeout_s):
            await worker.connected.wait()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
