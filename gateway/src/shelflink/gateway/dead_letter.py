"""The gateway's dead-letter store: rejected messages kept for inspection, bounded.

A store's worth of broken firmware can send thousands of bad messages a
second, so the store is bounded twice: at most ``max_rows`` rows on disk (the
oldest go first) and at most ``max_pending`` rejections waiting to be written
(beyond that they are counted, not kept). Raw bytes are cut at
``max_raw_bytes``. Writes are batched on one named SQLite thread.

Good messages that must not be buffered yet (the numbers a reset device reuses)
are *held* in a table of their own, whole, so that no flood of rejections can
push them out: each is acknowledged only once its write is synced, and only
``max_held_rows`` bounds them. The open sequence resets that hold them are kept
beside them, so both survive a restart together. Apart from that bound, held
rows leave the file only through an operator: :meth:`DeadLetterStore.held_rows`
and :meth:`DeadLetterStore.delete_held` serve a replay under the board's new id,
from another process while the gateway may be running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from shelflink.device import Reason
from shelflink.gateway.sequence_tracker import SequenceReset

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
FLUSH_INTERVAL_S = 0.2
RETRY_S = 5.0  # after a failed write: a broken disk should not flood the log

_LETTER_COLUMNS = """
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BLOB NOT NULL,
    raw_size INTEGER NOT NULL
"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS dead_letter ({_LETTER_COLUMNS});
CREATE TABLE IF NOT EXISTS held ({_LETTER_COLUMNS});
CREATE TABLE IF NOT EXISTS sequence_reset (
    device TEXT PRIMARY KEY,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    old_boot TEXT NOT NULL,
    boot TEXT NOT NULL,
    detected_ms INTEGER NOT NULL
);
"""
_INSERT = (
    " (received_ms, topic, device, reason, detail, raw, raw_size) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = "SELECT received_ms, topic, device, reason, detail, raw, raw_size FROM "


class HeldReason(StrEnum):
    """Why a good message is held instead of buffered (counted like a rejection reason)."""

    SEQUENCE_RESET = "sequence_reset"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ms: int
    topic: str
    device: str | None  # from the topic when it parsed; None otherwise
    reason: Reason | HeldReason
    detail: str
    raw: bytes  # possibly truncated; raw_size is the original length
    raw_size: int


@dataclass(frozen=True, slots=True)
class HeldRow:
    """A held message with its row id, the handle to delete it by once it is dealt with."""

    id: int
    letter: DeadLetter


class DeadLetterStore:
    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 10_000,
        max_raw_bytes: int = 4096,
        max_pending: int = 1_000,
        max_held_rows: int = 100_000,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_raw_bytes = max_raw_bytes
        self.max_pending = max_pending
        self.max_held_rows = max_held_rows
        self.overflow = 0  # rejections counted but not kept: the write queue was full
        self.held_evicted = 0  # held messages removed by max_held_rows, oldest first
        self._pending: list[DeadLetter] = []
        self._held: list[tuple[DeadLetter, Callable[[], None]]] = []
        self._resets: dict[str, SequenceReset | None] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def __aenter__(self) -> Self:
        if self._executor is not None:
            raise RuntimeError("DeadLetterStore is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dead-letter")
        await self._in_thread(self._open)
        self._flusher = asyncio.create_task(self._flush_forever(), name="dead-letter-flush")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            await self.flush()
            await self._in_thread(self._close)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = None

    def add(self, letter: DeadLetter) -> None:
        """Queue a rejection; never blocks, never raises (bad input must not stop intake)."""
        if len(self._pending) >= self.max_pending:
            self.overflow += 1
            return
        if len(letter.raw) > self.max_raw_bytes:
            letter = replace(letter, raw=letter.raw[: self.max_raw_bytes])
        self._pending.append(letter)
        self._wake.set()

    def hold(self, letter: DeadLetter, on_written: Callable[[], None]) -> None:
        """Queue a good message to be kept whole; ``on_written`` runs once it is on disk.

        Not subject to ``max_pending``: the caller acknowledges only in
        ``on_written``, so the broker's in-flight window bounds what waits here.
        """
        self._held.append((letter, on_written))
        self._wake.set()

    def save_reset(self, device: str, reset: SequenceReset | None) -> None:
        """Keep a device's open reset (``None``: it is over), written before later holds."""
        self._resets[device] = reset
        self._wake.set()

    async def flush(self) -> None:
        batch, held, resets = self._pending, self._held, self._resets
        self._pending, self._held, self._resets = [], [], {}
        if not (batch or held or resets):
            return
        try:
            evicted = await self._in_thread(self._write, batch, [h for h, _ in held], resets)
        except Exception:
            # Held messages are not acknowledged yet and resets must not go back
            # in time: both are tried again. Rejections are diagnostics: counted.
            self._held[:0] = held
            self._resets = {**resets, **self._resets}
            self.overflow += len(batch)
            raise
        self.held_evicted += evicted
        for _, on_written in held:
            on_written()

    async def recent(self, limit: int = 100) -> list[DeadLetter]:
        await self.flush()
        return await self._in_thread(self._read, "dead_letter", limit, None)

    async def held(self, device: str | None = None, limit: int = 100_000) -> list[DeadLetter]:
        """Held messages, oldest first (the order to replay them in)."""
        await self.flush()
        return await self._in_thread(self._read, "held", limit, device)

    async def held_rows(
        self, device: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[HeldRow]:
        """One page of a device's held messages after ``after_id``, oldest first."""
        await self.flush()
        return await self._in_thread(self._read_held_rows, device, after_id, limit)

    async def count_held(self, device: str) -> int:
        await self.flush()
        return await self._in_thread(self._count_held, device)

    async def delete_held(self, device: str, ids: Collection[int]) -> int:
        """Remove these held rows of ``device`` (others are left alone); returns how many went."""
        if not ids:
            return 0
        return await self._in_thread(self._delete_held, device, list(ids))

    async def resets(self) -> list[SequenceReset]:
        """The open resets as last saved."""
        await self.flush()
        return await self._in_thread(self._read_resets)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except (sqlite3.Error, OSError):
                logger.exception("dead-letter write failed; retrying in %.0f s", RETRY_S)
                self._wake.set()
                await asyncio.sleep(RETRY_S)
            # Coalesce a flood into one write per interval.
            await asyncio.sleep(FLUSH_INTERVAL_S)

    async def _in_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            raise RuntimeError("DeadLetterStore is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- in the SQLite thread ------------------------------------------------------

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # Dead letters are diagnostics: losing the last few on a power cut is
        # acceptable, an fsync per flush on a busy gateway is not.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(
        self,
        batch: list[DeadLetter],
        held: list[DeadLetter],
        resets: dict[str, SequenceReset | None],
    ) -> int:
        assert self._db is not None
        db = self._db
        durable = bool(held or resets)
        if durable:
            # These are acknowledged to the device's broker once written: sync them.
            db.execute("PRAGMA synchronous=FULL")
        evicted = 0
        try:
            with db:
                db.execute("BEGIN")
                for device, reset in resets.items():
                    db.execute("DELETE FROM sequence_reset WHERE device = ?", (device,))
                    if reset is not None:
                        db.execute(
                            "INSERT INTO sequence_reset VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                device, reset.first, reset.last, reset.next_seq,
                                reset.old_boot, reset.boot, reset.detected_ms,
                            ),
                        )  # fmt: skip
                if batch:
                    db.executemany("INSERT INTO dead_letter" + _INSERT, map(_row, batch))
                    db.execute(
                        "DELETE FROM dead_letter WHERE id <= (SELECT MAX(id) FROM dead_letter) - ?",
                        (self.max_rows,),
                    )
                if held:
                    db.executemany("INSERT INTO held" + _INSERT, map(_row, held))
                    evicted = db.execute(
                        "DELETE FROM held WHERE id <= (SELECT MAX(id) FROM held) - ?",
                        (self.max_held_rows,),
                    ).rowcount
        finally:
            if durable:
                db.execute("PRAGMA synchronous=NORMAL")
        return evicted

    def _read(self, table: str, limit: int, device: str | None) -> list[DeadLetter]:
        assert self._db is not None
        if table == "held":
            rows = self._db.execute(
                _SELECT + "held WHERE ?1 IS NULL OR device = ?1 ORDER BY id LIMIT ?2",
                (device, limit),
            ).fetchall()
            return [DeadLetter(r[0], r[1], r[2], HeldReason(r[3]), *r[4:]) for r in rows]
        rows = self._db.execute(
            _SELECT + "dead_letter ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], Reason(r[3]), *r[4:]) for r in rows]

    def _read_held_rows(self, device: str, after_id: int, limit: int) -> list[HeldRow]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT id, received_ms, topic, device, reason, detail, raw, raw_size FROM held"
            " WHERE device = ? AND id > ? ORDER BY id LIMIT ?",
            (device, after_id, limit),
        ).fetchall()
        return [HeldRow(r[0], DeadLetter(r[1], r[2], r[3], HeldReason(r[4]), *r[5:])) for r in rows]

    def _count_held(self, device: str) -> int:
        assert self._db is not None
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM held WHERE device = ?", (device,)
        ).fetchone()
        return int(count)

    def _delete_held(self, device: str, ids: list[int]) -> int:
        assert self._db is not None
        # synchronous=NORMAL is enough: a deletion lost to a power cut only means
        # the row is replayed again, and the receiver drops it as a repeat.
        with self._db:
            self._db.execute("BEGIN")
            return sum(
                self._db.execute(
                    "DELETE FROM held WHERE id = ? AND device = ?", (row_id, device)
                ).rowcount
                for row_id in ids
            )

    def _read_resets(self) -> list[SequenceReset]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT device, first, last, next_seq, old_boot, boot, detected_ms"
            " FROM sequence_reset ORDER BY device"
        ).fetchall()
        return [SequenceReset(*row) for row in rows]


def _row(d: DeadLetter) -> tuple[object, ...]:
    return (d.received_ms, d.topic, d.device, d.reason.value, d.detail, d.raw, d.raw_size)
