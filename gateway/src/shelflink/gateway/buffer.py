"""The gateway's durable buffer: every accepted reading stays on disk until the cloud commits it.

:class:`DurableBuffer` is the asyncio face of an SQLite file in WAL mode.
``append`` returns only after its records are committed (fsynced) to disk,
which is what "accepted" means; appends from many coroutines inside a short
window share one transaction (group commit). SQLite is blocking, so every
call into it runs in one dedicated thread named ``buffer-sqlite``; the event
loop never waits on the disk.

The uplink takes records out with ``lease``/``ack``: a lease is a numbered
batch that stays on disk, and survives restarts, until the cloud acknowledges
it. When the buffer is full, the oldest unleased telemetry is dropped and
reported (``drain_drop_reports``); events, statuses and scans never are.
See docs/buffer.md for the schema, the policy and measured numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar, TypeVarTuple

from shelflink.gateway.buffer_errors import (
    BufferClosedError,
    BufferReentrantError,
    BufferStorageError,
    DurableBufferError,
)
from shelflink.gateway.buffer_policy import Capacity, drop_reports
from shelflink.gateway.buffer_record import DropReport, Lease, Record
from shelflink.gateway.buffer_schema import Synchronous
from shelflink.gateway.buffer_store import BufferStore, CommitResult, Counters, StoredDrop

log = logging.getLogger(__name__)

THREAD_NAME: Final = "buffer-sqlite"
DEFAULT_MAX_BYTES: Final = 1024 * 1024 * 1024
DEFAULT_COMMIT_INTERVAL_S: Final = 0.020
DEFAULT_COMMIT_MAX_RECORDS: Final = 5_000

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True, slots=True)
class BufferStats:
    """A snapshot for metrics; reading it does no I/O (counters refresh on every commit)."""

    records: int
    bytes: int  # accounted size, see docs/buffer.md "Size accounting"
    max_bytes: int
    oldest_ts_ms: int | None  # ts of the longest-waiting record; None when empty
    leased_batches: int
    leased_records: int
    pending_records: int  # appended, not yet committed
    dropped_total: int  # telemetry records dropped by the full policy since open
    dropped_by_device: Mapping[str, int]
    high_water: bool  # the alarm: on at high water, off again below low water
    commits: int  # group commits since open
    commit_seconds: float  # time inside those commits (SQLite and fsync), since open


class _State(enum.Enum):
    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class _Append:
    records: tuple[Record, ...]
    done: asyncio.Future[int]


class DurableBuffer:
    """An on-disk, bounded, prioritised queue of records; an async context manager.

    Reusable (open, close, open again), not reentrant. ``on_high_water`` is
    called on the event loop with the new alarm state at every transition (and
    with True on open if the buffer is already above high water); keep it
    quick, it runs inside the commit path.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        high_water: float = 0.8,
        low_water: float = 0.7,
        commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S,
        commit_max_records: int = DEFAULT_COMMIT_MAX_RECORDS,
        on_high_water: Callable[[bool], None] | None = None,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if commit_interval_s < 0 or commit_max_records < 1:
            raise ValueError("need commit_interval_s >= 0 and commit_max_records >= 1")
        self.path = Path(path)
        self.capacity = Capacity(max_bytes=max_bytes, high_water=high_water, low_water=low_water)
        self._interval = commit_interval_s
        self._max_records = commit_max_records
        self._on_high_water = on_high_water
        # FULL is the product setting; NORMAL exists so the benchmark can show what FULL costs.
        self._synchronous: Synchronous = synchronous
        self._state = _State.NEW
        self._executor: ThreadPoolExecutor | None = None
        self._store: BufferStore | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._pending: deque[_Append] = deque()
        self._pending_records = 0
        self._window_ends: float | None = None  # loop time the current group commit closes
        self._wake = asyncio.Event()
        self._counters: Counters | None = None
        self._high_water = False
        self._unreported: list[StoredDrop] = []
        self._settled: list[int] = []  # drop reports handed out, to delete at the next commit

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state in (_State.OPENING, _State.OPEN, _State.CLOSING):
            raise BufferReentrantError(f"{self.path} is already open in this DurableBuffer")
        self._state = _State.OPENING
        self._reset()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        try:
            # Opening replays the WAL after a crash: every committed append is back.
            store = await self._in_thread(BufferStore, self.path, self.capacity, self._synchronous)
            self._unreported = await self._in_thread(store.unreported_drops)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            self._state = _State.CLOSED
            raise
        self._store = store
        self._state = _State.OPEN
        self._apply(store.counters())
        self._flusher = asyncio.create_task(self._flush_forever(), name="buffer-group-commit")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit every pending append, then close the file. Idempotent."""
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSING
        self._wake.set()
        try:
            if self._flusher is not None:
                await self._flusher
        finally:
            executor, store = self._executor, self._store
            self._store = self._executor = self._flusher = None
            self._state = _State.CLOSED
            if executor is not None and store is not None:
                # Queued behind any commit still running, so the thread never races itself.
                await asyncio.get_running_loop().run_in_executor(executor, store.close)
            if executor is not None:
                executor.shutdown(wait=True)

    # -- appends -----------------------------------------------------------------------------

    async def append(self, records: Iterable[Record]) -> int:
        """Store ``records`` durably; returns how many were new (the rest were already buffered).

        Returns only after the transaction holding them is committed. All or
        nothing: a refusal (:class:`BufferFullError`) or a storage failure
        (:class:`BufferStorageError`) stores none of them. Cancelling the call
        does not withdraw the records; appending them again is harmless.
        """
        if self._state is not _State.OPEN:
            raise BufferClosedError(f"{self.path}: append on a buffer that is {self._state.value}")
        batch = tuple(records)
        if not batch:
            return 0
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._pending.append(_Append(batch, done))
        self._pending_records += len(batch)
        self._open_window(loop)
        if self._pending_records >= self._max_records:
            self._wake.set()
        return await done

    def _open_window(self, loop: asyncio.AbstractEventLoop) -> None:
        # The first append after a commit opens the window the next ones join.
        if self._window_ends is None:
            self._window_ends = loop.time() + self._interval
            self._wake.set()

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Append] = []
        try:
            while True:
                if not self._pending and not self._settled:
                    if self._state is not _State.OPEN:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                ends = self._window_ends
                full = self._pending_records >= self._max_records
                if (
                    self._state is _State.OPEN
                    and not full
                    and ends is not None
                    and ends > loop.time()
                ):
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(ends):
                            await self._wake.wait()  # woken early when full or closing
                    continue
                batch, settled = self._take(loop)
                await self._commit(batch, settled)
                batch = []
        finally:
            # Only reached early if this task is cancelled: nobody may wait forever.
            gone = BufferClosedError(
                "buffer closed before the append was committed (it may be stored)"
            )
            for append in [*batch, *self._pending]:
                if not append.done.done():
                    append.done.set_exception(gone)
            self._pending.clear()
            self._pending_records = 0

    def _take(self, loop: asyncio.AbstractEventLoop) -> tuple[list[_Append], list[int]]:
        batch: list[_Append] = []
        taken = 0
        while self._pending and taken < self._max_records:
            append = self._pending.popleft()
            batch.append(append)
            taken += len(append.records)
        self._pending_records -= taken
        # What is left over has waited a full window already: commit it next, at once.
        self._window_ends = loop.time() if self._pending else None
        settled, self._settled = self._settled, []
        return batch, settled

    async def _commit(self, batch: list[_Append], settled: list[int]) -> None:
        store = self._require_store()
        try:
            result: CommitResult = await self._in_thread(
                store.commit, [a.records for a in batch], settled
            )
        except Exception as error:
            # The transaction was rolled back. Fail this batch, keep the flusher
            # alive for the next one: a dead flusher would hang every appender.
            if not isinstance(error, DurableBufferError):
                log.error("group commit failed unexpectedly", exc_info=error)
                wrapped = BufferStorageError(f"append not stored: {error!r}")
                wrapped.__cause__ = error
                error = wrapped
            self._settled[:0] = settled  # the deletions were rolled back too: retry them
            for append in batch:
                if not append.done.done():
                    append.done.set_exception(error)
            return
        self._unreported.extend(result.drops)
        self._apply(result.counters)
        for append, outcome in zip(batch, result.outcomes, strict=True):
            if append.done.done():  # its caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                append.done.set_exception(outcome)
            else:
                append.done.set_result(outcome)

    # -- the uplink's side -------------------------------------------------------------------

    async def lease(self, max_records: int, max_bytes: int) -> Lease | None:
        """Take the next unleased records, events first then oldest first, under a new batch_seq.

        ``max_bytes`` bounds the records' framed size inside a Batch, except
        that one record is always returned even if it alone is bigger. None
        when nothing is waiting. The batch_seq is persisted with the lease and
        never handed out again, not even after a restart.
        """
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        store = self._require_store()
        now_ms = time.time_ns() // 1_000_000
        lease, counters = await self._in_thread(store.lease, max_records, max_bytes, now_ms)
        self._apply(counters)
        return lease

    async def lease_newest(self, max_records: int, max_bytes: int, min_ts_ms: int) -> Lease | None:
        """Like :meth:`lease`, but the newest unleased records with ``ts >= min_ts_ms``.

        The uplink's live lane: while an old backlog replays at a limited rate,
        fresh readings still go out at once.
        """
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        store = self._require_store()
        now_ms = time.time_ns() // 1_000_000
        lease, counters = await self._in_thread(
            store.lease, max_records, max_bytes, now_ms, min_ts_ms
        )
        self._apply(counters)
        return lease

    async def leased(self) -> list[Lease]:
        """Leases not yet acked, oldest first; after a restart the uplink resends exactly these."""
        store = self._require_store()
        return await self._in_thread(store.leased)

    async def ack(self, batch_seq: int) -> int:
        """The cloud committed this batch: delete its records. Returns how many; 0 if unknown."""
        store = self._require_store()
        count, counters = await self._in_thread(store.ack, batch_seq)
        self._apply(counters)
        return count

    async def release(self, batch_seq: int) -> int:
        """Return a lease's records to the queue, in their old places; 0 if unknown.

        Only for when a batch's content must change (it was too big for the
        broker, say). A plain retry resends the same lease instead: a released
        record may go out again under another batch_seq, which the cloud then
        de-duplicates by (device, seq) rather than by batch.
        """
        store = self._require_store()
        count, counters = await self._in_thread(store.release, batch_seq)
        self._apply(counters)
        return count

    # -- reporting ---------------------------------------------------------------------------

    def drain_drop_reports(self) -> list[DropReport]:
        """Telemetry dropped by the full policy and not yet reported, one report per device.

        The reports are persisted in the transaction that dropped the data and
        deleted at the next commit after this call, so a crash in between
        reports them again (at least once). Append the ``buffer_dropped``
        event(s) right after this call, without awaiting in between, and the
        event commits in the same transaction that forgets the reports.
        """
        drops, self._unreported = self._unreported, []
        if drops and self._state is _State.OPEN:
            self._settled.extend(d[0] for d in drops)
            self._open_window(asyncio.get_running_loop())
        return drop_reports((device, n, first, last) for _, device, n, first, last in drops)

    def stats(self) -> BufferStats:
        """Current counters; no I/O, cheap enough for every Prometheus scrape."""
        c = self._counters
        if c is None:
            raise BufferClosedError(f"{self.path}: stats of a buffer that was never opened")
        return BufferStats(
            records=c.records,
            bytes=c.bytes,
            max_bytes=self.capacity.max_bytes,
            oldest_ts_ms=c.oldest_ts_ms,
            leased_batches=c.leased_batches,
            leased_records=c.leased_records,
            pending_records=self._pending_records,
            dropped_total=c.dropped_total,
            dropped_by_device=c.dropped_by_device,
            high_water=self._high_water,
            commits=c.commits,
            commit_seconds=c.commit_seconds,
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _apply(self, counters: Counters) -> None:
        self._counters = counters
        raised = self.capacity.alarm(self._high_water, counters.bytes)
        if raised == self._high_water:
            return
        self._high_water = raised
        log.log(
            logging.WARNING if raised else logging.INFO,
            "buffer %s high water: %d of %d bytes",
            "reached" if raised else "cleared",
            counters.bytes,
            self.capacity.max_bytes,
        )
        if self._on_high_water is not None:
            try:
                self._on_high_water(raised)
            except Exception:
                # A broken hook must not fail the commit that every appender waits on.
                log.exception("on_high_water hook failed")

    def _require_store(self) -> BufferStore:
        if self._store is None:
            raise BufferClosedError(f"{self.path}: the buffer is {self._state.value}")
        return self._store

    async def _in_thread(self, fn: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        if self._executor is None:
            raise BufferClosedError(f"{self.path}: the buffer is {self._state.value}")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
