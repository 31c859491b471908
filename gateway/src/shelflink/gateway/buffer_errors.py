"""The durable buffer's exceptions: callers catch these, never sqlite3's."""

from __future__ import annotations


class DurableBufferError(RuntimeError):
    """Root of every error the durable buffer raises."""


class BufferFullError(DurableBufferError):
    """An append was refused, whole: nothing of it was stored.

    Telemetry is refused when no unleased telemetry is left to drop; events,
    statuses and scans only beyond the hard ceiling (1.25 x ``max_bytes``).
    """

    def __init__(self, reason: str, *, needed: int, used: int, limit: int) -> None:
        super().__init__(f"{reason} (used {used} B, needs {needed} B more, limit {limit} B)")
        self.needed = needed
        self.used = used
        self.limit = limit


class BufferClosedError(DurableBufferError):
    """The buffer is not open (never opened, closing or closed)."""


class BufferReentrantError(DurableBufferError):
    """``async with`` on a buffer that is already open."""


class BufferStorageError(DurableBufferError):
    """SQLite failed (disk full, I/O error, locked by another process, corrupt file).

    The operation's transaction was rolled back: nothing of it is stored.
    """
