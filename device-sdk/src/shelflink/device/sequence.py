"""Sequence numbers that are never reused, not even after ``kill -9`` or power loss.

Writing every number to flash would wear it out and cost an fsync per message,
so the store reserves numbers ahead in blocks: the file holds the first number
*not* yet reserved. After a crash the device starts from that mark, skipping
whatever was left of the block. Skips are announced in the birth status, so a
receiver tells them apart from loss.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from shelflink.device.models import SEQ_MAX

DEFAULT_BLOCK = 1_000


class SequenceError(RuntimeError):
    """The sequence file is unreadable or the number space is exhausted."""


def _write_durably(path: Path, value: int) -> None:
    # write-to-temp, fsync, rename, fsync the folder: the mark is either the old
    # or the new number after a power cut, never a torn file.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"{value}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _read_mark(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    except UnicodeDecodeError:
        # Binary junk (a flash page gone bad) is a corrupt file like any other.
        raise SequenceError(f"sequence file {path} is not ASCII text: corrupt") from None
    try:
        value = int(text)
    except ValueError:
        raise SequenceError(f"sequence file {path} holds {text!r}, not a number") from None
    if not 0 <= value <= SEQ_MAX:
        raise SequenceError(f"sequence file {path} holds {value}, out of range")
    return value


class SequenceStore:
    """Hands out 0, 1, 2, ... per device, persisted ahead in blocks of ``block``.

    Thread-safe, because the paho client may publish from its network thread.
    """

    def __init__(self, path: Path | str, *, block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._block = block
        self._lock = threading.Lock()
        self._next = _read_mark(self.path)
        # Everything below the stored mark may have been used by an earlier run.
        self.boot_start = self._next
        self._reserved = self._next
        self._reserve()

    def _reserve(self) -> None:
        if self._reserved + self._block > SEQ_MAX:
            raise SequenceError("sequence numbers exhausted")
        self._reserved += self._block
        _write_durably(self.path, self._reserved)

    def peek(self) -> int:
        """The next number :meth:`next` will hand out, without using it."""
        with self._lock:
            return self._next

    def next(self) -> int:
        with self._lock:
            if self._next >= self._reserved:
                self._reserve()
            value = self._next
            self._next += 1
            return value
