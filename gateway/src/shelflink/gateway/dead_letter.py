"""The gateway's dead-letter store: rejected messages kept for inspection, bounded.

A store's worth of broken firmware can send thousands of bad messages a
second, so the store is bounded twice: at most ``max_rows`` rows on disk (the
oldest go first) and at most ``max_pending`` rejections waiting to be written
(beyond that they are counted, not kept). Raw bytes are cut at
``max_raw_bytes``. Writes are batched on one named SQLite thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from shelflink.device import Reason

_T = TypeVar("_T")
FLUSH_INTERVAL_S = 0.2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BLOB NOT NULL,
    raw_size INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ms: int
    topic: str
    device: str | None  # from the topic when it parsed; None otherwise
    reason: Reason
    detail: str
    raw: bytes  # possibly truncated; raw_size is the original length
    raw_size: int


class DeadLetterStore:
    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 10_000,
        max_raw_bytes: int = 4096,
        max_pending: int = 1_000,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_raw_bytes = max_raw_bytes
        self.max_pending = max_pending
        self.overflow = 0  # rejections counted but not kept: the write queue was full
        self._pending: list[DeadLetter] = []
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
            letter = DeadLetter(
                letter.received_ms,
                letter.topic,
                letter.device,
                letter.reason,
                letter.detail,
                letter.raw[: self.max_raw_bytes],
                letter.raw_size,
            )
        self._pending.append(letter)
        self._wake.set()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            await self._in_thread(self._write, batch)

    async def recent(self, limit: int = 100) -> list[DeadLetter]:
        await self.flush()
        return await self._in_thread(self._read, limit)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
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
        db.execute(_SCHEMA)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self, batch: list[DeadLetter]) -> None:
        assert self._db is not None
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO dead_letter"
                " (received_ms, topic, device, reason, detail, raw, raw_size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (d.received_ms, d.topic, d.device, d.reason.value, d.detail, d.raw, d.raw_size)
                    for d in batch
                ],
            )
            self._db.execute(
                "DELETE FROM dead_letter WHERE id <= (SELECT MAX(id) FROM dead_letter) - ?",
                (self.max_rows,),
            )

    def _read(self, limit: int) -> list[DeadLetter]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT received_ms, topic, device, reason, detail, raw, raw_size"
            " FROM dead_letter ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], Reason(r[3]), r[4], r[5], r[6]) for r in rows]
