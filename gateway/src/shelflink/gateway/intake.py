"""Intake: every message a store device sends passes here exactly once.

decode (the contract) → registry (this store's device, right kind, right
lanes) → sequence (duplicates dropped, gaps noted) → durable buffer. A message
counts as *accepted* only once its record is committed to disk; the caller's
``on_settled`` runs then (the MQTT adapter acknowledges to the broker there),
or at once for messages that are rejected or duplicate (nothing to keep).
Rejections go to the dead-letter store with their reason; none of them can
stop intake. A device whose numbering went back (a sequence reset) has the
numbers it reuses held in the dead-letter store instead of buffered, settled
once they are written there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from shelflink.device import (
    ContractError,
    DeviceMessage,
    Limits,
    Reason,
    Reply,
    Status,
    decode,
    encode,
)
from shelflink.device.batch import to_batch_item
from shelflink.device.codec import channel_of
from shelflink.device.sequence import SequenceStore
from shelflink.device.topics import TopicError, parse_topic
from shelflink.device.topics import topic as topic_of
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_errors import BufferFullError, DurableBufferError
from shelflink.gateway.buffer_record import Record, record_of
from shelflink.gateway.dead_letter import DeadLetter, DeadLetterStore, HeldReason
from shelflink.gateway.registry import DeviceRegistry
from shelflink.gateway.sequence_tracker import SequenceReset, SequenceTracker, Verdict

logger = logging.getLogger(__name__)

Settled = Callable[[], None]
# Records waiting for their commit. Beyond this the adapter is made to wait,
# which stops it reading from the broker: backpressure instead of memory.
MAX_IN_FLIGHT = 20_000


@dataclass(frozen=True, slots=True)
class _Pending:
    record: Record
    kind: str
    on_settled: Settled


@dataclass(slots=True)
class IntakeCounters:
    """Plain counters, read by the metrics collector at scrape time."""

    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (device, type)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (device, reason)
    sequence_resets: Counter[str] = field(default_factory=Counter)  # by device
    storage_failures: int = 0


def _device_of_topic(topic: str) -> str:
    try:
        return parse_topic(topic).device_id
    except TopicError:
        # Unparseable topics are still counted, under one label, so that
        # garbage cannot create unbounded label values.
        return "(bad-topic)"


class Intake:
    def __init__(
        self,
        registry: DeviceRegistry,
        tracker: SequenceTracker,
        buffer: DurableBuffer,
        dead_letters: DeadLetterStore,
        limits: Limits,
        clock_ms: Callable[[], int],
        gateway_sequence: SequenceStore,
        observer: Callable[[DeviceMessage], None] | None = None,
    ) -> None:
        self.registry = registry
        self.tracker = tracker
        self.buffer = buffer
        self.dead_letters = dead_letters
        self.limits = limits
        self.clock_ms = clock_ms
        # A status carries the device's *next* seq, which two statuses can share
        # (birth, then shutdown with no data between). Buffered, a status is keyed
        # by the gateway's own counter instead, so no status hides another.
        self.gateway_sequence = gateway_sequence
        self.counters = IntakeCounters()
        # The edge: sees every message once, after de-duplication, as it arrives.
        self.observer = observer
        # Records gathered during one turn of the event loop go to the buffer
        # in one append: a task and an append per message cost more than the
        # decoding does.
        self._gathering: list[_Pending] = []
        self._in_flight = 0
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # Resets detected and not yet turned into events (the caller owns the events).
        self._new_resets: list[SequenceReset] = []

    async def restore_resets(self) -> None:
        """Hold again what resets open before a restart held; forget retired devices'."""
        for reset in await self.dead_letters.resets():
            if reset.device not in self.registry.devices:
                # The id was removed from the store: the board has a new one now.
                logger.info("sequence reset of %s closed: no longer configured", reset.device)
                self.dead_letters.save_reset(reset.device, None)
                continue
            self.tracker.restore(reset)
            logger.warning(
                "sequence reset of %s still open: holding %d..%d (boot %s)",
                reset.device, reset.first, reset.last, reset.boot,
            )  # fmt: skip

    def take_resets(self) -> list[SequenceReset]:
        """Resets detected since the last call, each returned once."""
        resets, self._new_resets = self._new_resets, []
        return resets

    async def receive(self, topic: str, payload: bytes, on_settled: Settled) -> None:
        """Judge one raw MQTT message; returns once it is queued for commit (or settled)."""
        now = self.clock_ms()
        try:
            where, message = decode(topic, payload, now_ms=now, limits=self.limits)
            state = self.registry.check(where, message)
        except ContractError as error:
            device = _device_of_topic(topic)
            if device != "(bad-topic)" and device not in self.registry.devices:
                device = "(unknown)"  # bounded label values, see _device_of_topic
            self.reject(topic, device, error, payload, now)
            on_settled()
            return
        self.registry.seen(state, message, now)
        await self.accept(message, now, on_settled)

    async def accept(self, message: DeviceMessage, now_ms: int, on_settled: Settled) -> None:
        """A message that passed the contract: de-duplicate, then make it durable."""
        if isinstance(message, Status):
            if message.online:
                self._birth(message, now_ms)
        else:
            verdict = self.tracker.observe(message.device, message.seq, now_ms)
            if verdict is Verdict.DUPLICATE:
                self.counters.rejected[(message.device, Reason.DUPLICATE.value)] += 1
                on_settled()
                return
            # A reply never leaves the store, so there is nothing to hold.
            if verdict is Verdict.HELD and not isinstance(message, Reply):
                self._hold(message, now_ms, on_settled)
                return
        if self.observer is not None:
            self.observer(message)
        item = to_batch_item(message)
        if item is None:  # a command reply: handled by the gateway, not uplinked
            on_settled()
            return
        record = record_of(item)
        if isinstance(message, Status):
            record = dataclasses.replace(record, seq=self.gateway_sequence.next())
        while self._in_flight >= MAX_IN_FLIGHT:
            self._room.clear()
            await self._room.wait()
        self._in_flight += 1
        if not self._gathering:
            asyncio.get_running_loop().call_soon(self._dispatch)
        self._gathering.append(_Pending(record, message.type, on_settled))

    def _birth(self, status: Status, now_ms: int) -> None:
        device = status.device
        before = self.tracker.device(device).reset
        reset = self.tracker.birth(device, status.boot_id, status.seq, now_ms)
        after = self.tracker.device(device).reset
        if reset is not None:
            self.counters.sequence_resets[device] += 1
            self._new_resets.append(reset)
            logger.error(
                "sequence reset on %s: boot %s starts at %d but this id already used up to %d "
                "(boot %s); holding %d..%d in the dead letters. Give the board a new device "
                "id, or restore its sequence file",
                device, reset.boot, reset.next_seq, reset.last, reset.old_boot,
                reset.first, reset.last,
            )  # fmt: skip
        elif before is not None and after is None:
            logger.warning(
                "sequence reset on %s over: boot %s starts at %d, above every number used",
                device, status.boot_id, status.seq,
            )  # fmt: skip
        if after != before:
            self.dead_letters.save_reset(device, after)

    def _hold(self, message: DeviceMessage, now_ms: int, on_settled: Settled) -> None:
        reset = self.tracker.device(message.device).reset
        assert reset is not None
        self.counters.rejected[(message.device, HeldReason.SEQUENCE_RESET.value)] += 1
        # The edge still sees it: the shelf stays watched while an operator acts.
        if self.observer is not None:
            self.observer(message)
        raw = encode(message)
        where = topic_of(self.registry.store_id, message.device, channel_of(message))
        detail = (
            f"seq {message.seq} is in {reset.first}..{reset.last}, numbers this id used "
            f"before boot {reset.boot}"
        )
        logger.debug("held %s seq %d: sequence reset", message.device, message.seq)
        letter = DeadLetter(
            now_ms, where, message.device, HeldReason.SEQUENCE_RESET, detail, raw, len(raw)
        )
        self.dead_letters.hold(letter, on_settled)

    def _dispatch(self) -> None:
        batch, self._gathering = self._gathering, []
        task = asyncio.create_task(self._commit(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            try:
                await self.buffer.append([p.record for p in batch])
            except BufferFullError:
                # All or nothing refused: retry one by one so that the policy
                # refuses only the telemetry that does not fit.
                for pending in batch:
                    await self._commit_one(pending)
                return
            except DurableBufferError:
                # Not acknowledged: the broker redelivers after a reconnect.
                self.counters.storage_failures += 1
                logger.exception("buffer write of %d records failed", len(batch))
                return
            # The buffer ignores records it already holds (a redelivery after a
            # restart); those are counted as accepted again, harmlessly.
            for pending in batch:
                self.counters.accepted[(pending.record.device, pending.kind)] += 1
                pending.on_settled()
        finally:
            self._in_flight -= len(batch)
            self._room.set()

    async def _commit_one(self, pending: _Pending) -> None:
        record = pending.record
        try:
            await self.buffer.append([record])
        except BufferFullError as exc:
            # The documented policy refused it (telemetry with a full buffer).
            self.counters.rejected[(record.device, Reason.BUFFER_FULL.value)] += 1
            logger.warning("buffer full, dropped %s seq %d: %s", record.device, record.seq, exc)
            pending.on_settled()
            return
        except DurableBufferError:
            self.counters.storage_failures += 1
            logger.exception("buffer write failed for %s seq %d", record.device, record.seq)
            return
        self.counters.accepted[(record.device, pending.kind)] += 1
        pending.on_settled()

    def reject(
        self, topic: str, device: str, error: ContractError, payload: bytes, now_ms: int
    ) -> None:
        self.counters.rejected[(device, error.reason.value)] += 1
        logger.info("rejected %s from %s: %s", error.reason.value, topic, error.detail)
        self.dead_letters.add(
            DeadLetter(
                received_ms=now_ms,
                topic=topic,
                device=None if device.startswith("(") else device,
                reason=error.reason,
                detail=error.detail,
                raw=payload,
                raw_size=len(payload),
            )
        )

    async def drain(self) -> None:
        """Wait for every queued record to be committed (shutdown, tests)."""
        while self._tasks or self._gathering:
            if self._gathering and not self._tasks:
                self._dispatch()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
