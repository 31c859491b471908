"""The durable buffer's rules as pure functions: size accounting, the full policy, the alarm.

No I/O here; :mod:`shelflink.gateway.buffer_store` applies these inside its
transactions, and the tests exercise them with tables of cases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from shelflink.gateway.buffer_record import DropReport

# SQLite's own cost of one row beyond its body: the table cell (row header,
# rowid, priority, field, seq, ts, lease column), the UNIQUE (device, seq,
# field) index entry and the unleased-queue index entry, with B-tree page
# slack. The device id is stored twice (row and UNIQUE index), so it is
# counted twice. Calibrated against page_count - freelist_count on realistic
# shelf readings: see docs/buffer.md, "Size accounting".
ROW_OVERHEAD: Final = 64

# The same formula in SQL, used once on open to rebuild the in-memory total.
ROW_BYTES_SQL: Final = f"(length(body) + 2 * length(CAST(device AS BLOB)) + {ROW_OVERHEAD})"

CEILING_FACTOR: Final = 1.25


def row_bytes(device: str, body: bytes) -> int:
    """Accounted size of one buffered record."""
    return len(body) + 2 * len(device.encode()) + ROW_OVERHEAD


@dataclass(frozen=True, slots=True)
class Capacity:
    """How much the buffer may hold, and when it raises its alarm.

    ``max_bytes`` bounds everything when telemetry arrives; events, statuses and
    scans may go on into the headroom up to ``hard_ceiling`` once no droppable
    telemetry is left, because refusing them would lose business data.
    """

    max_bytes: int
    high_water: float = 0.8
    low_water: float = 0.7

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if not 0.0 < self.low_water < self.high_water <= 1.0:
            raise ValueError("need 0 < low_water < high_water <= 1")

    @property
    def hard_ceiling(self) -> int:
        return int(self.max_bytes * CEILING_FACTOR)

    def limit(self, *, has_telemetry: bool) -> int:
        """The most the buffer may hold after admitting an append of this kind."""
        return self.max_bytes if has_telemetry else self.hard_ceiling

    def to_free(self, used: int, incoming: int) -> int:
        """Bytes of old telemetry to drop so that ``incoming`` fits under ``max_bytes``."""
        return max(0, used + incoming - self.max_bytes)

    def alarm(self, raised: bool, used: int) -> bool:
        """The alarm state after a change of ``used``: on at high water, off below low water.

        The gap between the two marks keeps the alarm from flapping while the
        uplink drains and the shelves refill around one threshold.
        """
        fill = used / self.max_bytes
        if raised:
            return fill >= self.low_water
        return fill >= self.high_water


@dataclass(frozen=True, slots=True)
class DropCandidate:
    """An unleased telemetry row, offered oldest first."""

    id: int
    device: str
    seq: int
    size: int


def oldest_enough(
    candidates: Iterable[DropCandidate], need: int
) -> tuple[list[DropCandidate], int]:
    """The oldest candidates that free at least ``need`` bytes (all of them if they cannot)."""
    chosen: list[DropCandidate] = []
    freed = 0
    if need <= 0:
        return chosen, freed
    for candidate in candidates:
        chosen.append(candidate)
        freed += candidate.size
        if freed >= need:
            break
    return chosen, freed


def seq_ranges(seqs: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Inclusive runs of consecutive numbers: [1, 2, 3, 7, 9, 10] -> ((1, 3), (7, 7), (9, 10))."""
    return merge_ranges((s, s) for s in seqs)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, with overlapping or adjacent ranges joined."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def drop_reports(dropped: Iterable[tuple[str, int, int, int]]) -> list[DropReport]:
    """One report per device from ``(device, records, first_seq, last_seq)`` pieces."""
    records: defaultdict[str, int] = defaultdict(int)
    ranges: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
    for device, count, first, last in dropped:
        records[device] += count
        ranges[device].append((first, last))
    return [
        DropReport(device=device, records=records[device], seq_ranges=merge_ranges(ranges[device]))
        for device in sorted(records)
    ]


def report_pieces(chosen: Iterable[DropCandidate]) -> Iterator[tuple[str, int, int, int]]:
    """``(device, records, first_seq, last_seq)`` per run of consecutive seqs, to persist."""
    by_device: defaultdict[str, list[int]] = defaultdict(list)
    for candidate in chosen:
        by_device[candidate.device].append(candidate.seq)
    for device, seqs in by_device.items():
        seqs.sort()
        start = 0
        for first, last in seq_ranges(seqs):
            # A device may hold the same seq under two fields; count rows, not numbers.
            end = start
            while end < len(seqs) and seqs[end] <= last:
                end += 1
            yield device, end - start, first, last
            start = end
