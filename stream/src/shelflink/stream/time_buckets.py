"""Per-lane counts in fixed time buckets, kept in a ring: bounded memory, windowed sums.

Every lane shares one bucket clock (the store's event time). A bucket is
``bucket_ms`` long and the ring holds ``buckets`` of them; older ones are
overwritten as time moves on, so memory is ``channels × lanes × buckets``
floats whatever the run's length. Channels (removals, sales, readings...)
share the clock, so moving it is one step for all of them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class BucketRing:
    """``channels × lanes × buckets`` counters indexed by bucket number ``ts // bucket_ms``."""

    def __init__(self, channels: int, lanes: int, bucket_ms: int, buckets: int) -> None:
        if bucket_ms < 1 or buckets < 1 or channels < 1:
            raise ValueError("channels, bucket_ms and buckets must be at least 1")
        self.bucket_ms = bucket_ms
        self.buckets = buckets
        self.counts = np.zeros((channels, lanes, buckets))
        self.head: int | None = None  # the newest bucket number held

    def advance(self, ts_ms: int) -> None:
        """Move the newest bucket up to ``ts_ms``'s, clearing the buckets it reuses."""
        b = ts_ms // self.bucket_ms
        head = self.head
        if head is None:
            self.head = b
            return
        if b <= head:
            return
        if b - head >= self.buckets:
            self.counts[:] = 0.0
        else:
            self.counts[:, :, np.arange(head + 1, b + 1) % self.buckets] = 0.0
        self.head = b

    def _slot(self, ts_ms: int) -> int | None:
        """The ring position of ``ts_ms``'s bucket, None if it is older than the ring."""
        self.advance(ts_ms)
        b = ts_ms // self.bucket_ms
        assert self.head is not None
        if b <= self.head - self.buckets:
            return None
        return b % self.buckets

    def add(self, channel: int, ts_ms: int, index: I64, values: F64) -> None:
        """Add ``values`` to lanes ``index`` (no repeats) in ``ts_ms``'s bucket.

        A time older than the ring is dropped: it would land in a reused bucket.
        """
        slot = self._slot(ts_ms)
        if slot is not None:
            self.counts[channel, index, slot] += values

    def add_all(self, channel: int, ts_ms: int, values: F64 | npt.NDArray[np.bool_]) -> None:
        """Add one value per lane (full width) in ``ts_ms``'s bucket."""
        slot = self._slot(ts_ms)
        if slot is not None:
            self.counts[channel, :, slot] += values

    def window_sum(self, channel: int, now_ms: int, span: int, lag: int = 0) -> F64:
        """Per lane, the sum over the ``span`` buckets ending ``lag`` buckets before now's."""
        counts = self.counts[channel]
        if self.head is None:
            return np.zeros(counts.shape[0])
        end = now_ms // self.bucket_ms - lag
        lo = max(end - span + 1, self.head - self.buckets + 1)
        hi = min(end, self.head)
        if lo > hi:
            return np.zeros(counts.shape[0])
        if hi - lo + 1 == self.buckets:
            out: F64 = counts.sum(axis=1)
            return out
        start, stop = lo % self.buckets, hi % self.buckets
        if start <= stop:
            out = counts[:, start : stop + 1].sum(axis=1)
        else:
            out = counts[:, start:].sum(axis=1) + counts[:, : stop + 1].sum(axis=1)
        return out
