"""Fridge readings from one OPC UA refrigeration controller, pushed by subscription.

:class:`OpcUaFridgeSource` keeps a session to the controller (see
:mod:`shelflink.gateway.opcua_connect`), subscribes to data changes of the
configured variables (no timed polling), and turns each publish cycle's
changes into one :class:`~shelflink.device.FridgeReading`, or into a rejection
with a contract :class:`~shelflink.device.Reason`. OPC UA has no sequence
numbers of ours, so the gateway assigns them from the device's
:class:`~shelflink.device.SequenceStore`.

A dead session (socket closed, keepalive read failed, subscription ended) is
rebuilt with the gateway's one :class:`~shelflink.device.backoff.Backoff`.
Nothing is invented for the outage: it is recorded as an :class:`Outage`
naming the first sequence number observed after it, and the first reading
after a reconnect carries the server's own timestamp of the value it reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent

from shelflink.device import FridgeReading, Reason, SequenceStore
from shelflink.device.backoff import Backoff
from shelflink.gateway.opcua_config import OpcUaControllerConfig
from shelflink.gateway.opcua_connect import (
    OpcUaConnectError,
    Session,
    close_session,
    describe,
    open_session,
)
from shelflink.gateway.opcua_snapshot import (
    READING_FIELDS,
    FridgeSnapshot,
    Problem,
    ReadingField,
    Sample,
    check_reading,
    sample_of,
)

log = logging.getLogger("shelflink.gateway.opcua")

OnReading = Callable[[FridgeReading], Awaitable[None]]
OnReject = Callable[[str, Reason, str], Awaitable[None]]
OnOutage = Callable[["Outage"], Awaitable[None]]

MAX_OUTAGES: Final = 32  # kept for the health endpoint; older ones are in the log
_READING_FIELD: Final[dict[str, ReadingField]] = {f: f for f in READING_FIELDS}


class SourceState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"  # waiting before the next attempt; see last_error


@dataclass(frozen=True, slots=True)
class Outage:
    """A session that ended and came back. Readings with ``seq >= next_seq`` were
    observed after it; changes during it that the controller did not keep are lost."""

    device_id: str
    lost_at_ms: int
    resumed_at_ms: int
    next_seq: int
    cause: str


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A consistent copy of the counters, for metrics and health."""

    device_id: str
    store_id: str
    state: SourceState
    readings: int
    rejects: int
    reconnects: int  # sessions re-established after a loss
    connect_failures: int  # attempts that got no session
    refusals: int  # of which the server's security checks refused us
    alarm: bool | None  # None: no alarm node configured, or not known yet
    last_error: str | None


class _SessionLost(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OpcUaFridgeSource:
    """One controller's readings; :meth:`run` until cancelled. Not reentrant.

    Exceptions raised by ``on_reading``, ``on_reject`` or ``on_outage`` are not
    swallowed: they end :meth:`run` (inside an ExceptionGroup), after the
    session is closed.
    """

    def __init__(
        self,
        config: OpcUaControllerConfig,
        sequence: SequenceStore,
        on_reading: OnReading,
        on_reject: OnReject,
        *,
        on_outage: OnOutage | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self._sequence = sequence
        self._on_reading = on_reading
        self._on_reject = on_reject
        self._on_outage = on_outage
        self._backoff = backoff or Backoff(config.reconnect_initial_s, config.reconnect_max_s)
        self.state = SourceState.CONNECTING
        self.readings = 0
        self.rejects = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.refusals = 0
        self.alarm: bool | None = None
        self.last_error: str | None = None
        self.outages: deque[Outage] = deque(maxlen=MAX_OUTAGES)
        nodes = config.nodes
        self._snapshot = FridgeSnapshot({f: getattr(nodes, f) for f in READING_FIELDS})
        self._lost: tuple[int, str] | None = None  # when and why the last session ended
        self._running = False

    @property
    def device_id(self) -> str:
        return self.config.device_id

    def stats(self) -> SourceStats:
        return SourceStats(
            device_id=self.config.device_id,
            store_id=self.config.store_id,
            state=self.state,
            readings=self.readings,
            rejects=self.rejects,
            reconnects=self.reconnects,
            connect_failures=self.connect_failures,
            refusals=self.refusals,
            alarm=self.alarm,
            last_error=self.last_error,
        )

    async def run(self) -> None:
        if self._running:
            raise RuntimeError("this source is already running")
        self._running = True
        if self.config.security_policy != "None" and self.config.server_certificate is None:
            log.warning(
                "%s: server_certificate is not set: trusting whatever certificate %s presents",
                self.device_id,
                self.config.endpoint,
            )
        try:
            while True:
                self.state = SourceState.CONNECTING
                try:
                    cause = await self._one_session()
                except OpcUaConnectError as exc:
                    self._attempt_failed(exc)
                else:
                    self._lost = (_now_ms(), cause)
                    self.last_error = f"session lost: {cause}"
                    log.warning(
                        "%s: OPC UA session to %s lost (%s); reconnecting",
                        self.device_id,
                        self.config.endpoint,
                        cause,
                    )
                self.state = SourceState.BACKOFF
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            self._running = False

    def _attempt_failed(self, exc: OpcUaConnectError) -> None:
        self.connect_failures += 1
        self.refusals += exc.refused
        error = f"refused: {exc.detail}" if exc.refused else exc.detail
        # Said once per distinct error, not once per attempt: a controller that
        # stays away all night costs a line, not thousands.
        if error != self.last_error:
            level = logging.ERROR if exc.refused else logging.WARNING
            log.log(
                level,
                "%s: no OPC UA session with %s: %s",
                self.device_id,
                self.config.endpoint,
                error,
            )
        self.last_error = error

    async def _one_session(self) -> str:
        """One session from connect to loss; returns why it ended."""
        lost = asyncio.Event()
        why: list[str] = []

        async def on_lost(exc: Exception) -> None:
            why.append(describe(exc)[0])
            lost.set()

        session = await open_session(self.config, on_lost)
        cause = "unknown"
        try:
            await self._connected()
            try:
                async with asyncio.TaskGroup() as tasks:
                    dirty = asyncio.Event()
                    tasks.create_task(self._pump(session, dirty), name="opcua-pump")
                    tasks.create_task(self._emit(dirty), name="opcua-emit")
                    tasks.create_task(self._watch(lost, why), name="opcua-watch")
            except* _SessionLost as group:
                first = group.exceptions[0]
                cause = first.cause if isinstance(first, _SessionLost) else str(first)
        finally:
            await close_session(
                session.client, self.config.request_timeout_s, alive=not lost.is_set()
            )
        return cause

    async def _connected(self) -> None:
        self.state = SourceState.CONNECTED
        self.last_error = None
        # Values from before a loss must not mix with values from after it.
        self._snapshot.forget_values()
        if self._lost is None:
            log.info("%s: OPC UA session with %s", self.device_id, self.config.endpoint)
            return
        lost_at, cause = self._lost
        self._lost = None
        self.reconnects += 1
        outage = Outage(self.device_id, lost_at, _now_ms(), self._sequence.peek(), cause)
        self.outages.append(outage)
        log.warning(
            "%s: OPC UA session back after %.1f s (%s); readings from seq %d on were observed "
            "after the outage, nothing in between is reconstructed",
            self.device_id,
            (outage.resumed_at_ms - outage.lost_at_ms) / 1000,
            cause,
            outage.next_seq,
        )
        if self._on_outage is not None:
            await self._on_outage(outage)

    async def _watch(self, lost: asyncio.Event, why: list[str]) -> None:
        # asyncua's watchdog reads the server's state every keepalive interval
        # and calls connection_lost_callback when that fails or the socket closes.
        await lost.wait()
        raise _SessionLost(why[0] if why else "connection lost")

    async def _pump(self, session: Session, dirty: asyncio.Event) -> None:
        """Move notifications into the snapshot. Never awaits a callback, so a
        slow consumer makes readings coalesce here instead of filling asyncua's queue."""
        seen_data = False
        async for event in session.subscription:
            if isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status is not None and status.is_bad():
                    raise _SessionLost(f"subscription ended by the server ({status.name})")
                continue
            if not isinstance(event, DataChangeEvent):
                continue
            name = session.fields.get(event.node.nodeid)
            if name is None:
                continue
            if not seen_data:
                seen_data = True
                self._backoff.reset()  # a session that delivers is a healthy one
            sample = sample_of(event.data.monitored_item.Value, _now_ms())
            field = _READING_FIELD.get(name)
            if field is None:
                self._alarm(sample)
            elif self._snapshot.apply(field, sample, replayed=event.replayed):
                # Every notification of one publish response is queued before this
                # task runs, and _emit only runs once the queue is drained: one
                # publish cycle becomes one reading.
                dirty.set()
        raise _SessionLost("subscription closed")

    def _alarm(self, sample: Sample) -> None:
        value = sample.value if isinstance(sample.value, bool) and not sample.bad else None
        if value == self.alarm:
            return
        if value is None:
            log.warning(
                "%s: alarm state unknown (%s = %r, %s)",
                self.device_id,
                self.config.nodes.alarm,
                sample.value,
                sample.status,
            )
        elif value or self.alarm is not None:
            log.warning("%s: controller alarm %s", self.device_id, "RAISED" if value else "cleared")
        self.alarm = value

    async def _emit(self, dirty: asyncio.Event) -> None:
        config = self.config
        node_ids: dict[str, str] = {f: getattr(config.nodes, f) for f in READING_FIELDS}
        while True:
            await dirty.wait()
            dirty.clear()
            outcome = self._snapshot.take()
            if outcome is None:
                continue
            if isinstance(outcome, Problem):
                await self._reject(outcome)
                continue
            checked = check_reading(config.device_id, outcome, now_ms=_now_ms(), node_ids=node_ids)
            if isinstance(checked, Problem):
                await self._reject(checked)
                continue
            reading = checked.model_copy(update={"seq": self._sequence.next()})
            self._snapshot.reported(outcome)
            self.readings += 1
            await self._on_reading(reading)

    async def _reject(self, problem: Problem) -> None:
        self.rejects += 1
        log.debug("%s: rejected (%s): %s", self.device_id, problem.reason, problem.detail)
        await self._on_reject(self.device_id, problem.reason, problem.detail)
