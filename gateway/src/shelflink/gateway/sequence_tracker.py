"""Per-device sequence bookkeeping: duplicates, late arrivals, loss and reboot skips.

QoS 1 is at-least-once and a reconnecting device resends what was in flight,
so numbers may arrive twice or out of order. A number missing from the
stream is therefore only *pending* at first; it is reported once it has been
missing for ``grace_ms``. A new boot's birth status says where the boot starts
(``seq`` in a status is the next number the device will use); numbers below
it that never came were skipped by the reboot (the device reserves numbers
ahead in blocks) and are reported as such, not as loss.

Pure: no I/O, no clock of its own; the caller passes ``now_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    NEW = "new"  # the next number, or a jump forward (the gap becomes pending)
    LATE = "late"  # fills a pending or reported gap: accepted
    DUPLICATE = "duplicate"  # already seen: dropped


class GapKind(StrEnum):
    LOSS = "loss"
    REBOOT_SKIP = "reboot_skip"


@dataclass(frozen=True, slots=True)
class GapReport:
    device: str
    first: int  # inclusive
    last: int  # inclusive
    kind: GapKind

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(slots=True)
class _Gap:
    first: int
    last: int
    kind: GapKind
    since_ms: int
    reported: bool = False


# Gaps are kept, even after they are reported, so that a late arrival is
# recognised as data and not as a duplicate. Bounded so that a device sending
# every other number cannot grow memory without limit; the oldest go first.
MAX_GAPS_PER_DEVICE = 1_000


@dataclass(slots=True)
class DeviceSequence:
    device: str
    high: int | None = None  # the highest number seen
    floor: int | None = None  # the first number seen; nothing below it is known
    boot_id: str | None = None
    gaps: list[_Gap] = field(default_factory=list)  # sorted, disjoint
    duplicates: int = 0
    late: int = 0

    def observe(self, seq: int, now_ms: int) -> Verdict:
        if self.high is None or self.floor is None:
            # The first number this gateway sees from the device: nothing before
            # it can be judged (the gateway may have been replaced or restarted).
            self.high = self.floor = seq
            return Verdict.NEW
        if seq < self.floor:
            # From before this gateway started tracking: it cannot tell new from
            # repeated, so it keeps the message; storage is idempotent on (device, seq).
            self.floor = seq
            self.late += 1
            return Verdict.LATE
        if seq > self.high:
            if seq > self.high + 1:
                self._add_gap(self.high + 1, seq - 1, GapKind.LOSS, now_ms)
            self.high = seq
            return Verdict.NEW
        if self._fill(seq):
            self.late += 1
            return Verdict.LATE
        self.duplicates += 1
        return Verdict.DUPLICATE

    def birth(self, boot_id: str, next_seq: int, now_ms: int) -> None:
        """A birth status: ``next_seq`` is where this connection's data starts."""
        new_boot = self.boot_id is not None and boot_id != self.boot_id
        self.boot_id = boot_id
        if self.high is None:
            # Messages queued before this birth may still come with lower numbers.
            return
        if new_boot and next_seq > self.high + 1:
            # The old boot's unsent rest of its reserved block; anything of the
            # old boot still in a broker queue may yet arrive and fills it.
            self._add_gap(self.high + 1, next_seq - 1, GapKind.REBOOT_SKIP, now_ms)
            self.high = next_seq - 1

    def due(self, now_ms: int, grace_ms: int) -> list[GapReport]:
        """Gaps missing for at least ``grace_ms`` and not reported yet."""
        reports = []
        for gap in self.gaps:
            if not gap.reported and now_ms - gap.since_ms >= grace_ms:
                gap.reported = True
                reports.append(GapReport(self.device, gap.first, gap.last, gap.kind))
        return reports

    def pending(self) -> int:
        return sum(g.last - g.first + 1 for g in self.gaps if not g.reported)

    def _add_gap(self, first: int, last: int, kind: GapKind, now_ms: int) -> None:
        self.gaps.append(_Gap(first, last, kind, now_ms))
        if len(self.gaps) > MAX_GAPS_PER_DEVICE:
            del self.gaps[0]

    def _fill(self, seq: int) -> bool:
        # Binary search over disjoint sorted gaps; a fill may split a gap in two.
        lo, hi = 0, len(self.gaps) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            gap = self.gaps[mid]
            if seq < gap.first:
                hi = mid - 1
            elif seq > gap.last:
                lo = mid + 1
            else:
                pieces = []
                if gap.first < seq:
                    pieces.append(_Gap(gap.first, seq - 1, gap.kind, gap.since_ms, gap.reported))
                if seq < gap.last:
                    pieces.append(_Gap(seq + 1, gap.last, gap.kind, gap.since_ms, gap.reported))
                self.gaps[mid : mid + 1] = pieces
                return True
        return False


@dataclass(slots=True)
class SequenceTracker:
    """All devices of one gateway."""

    grace_ms: int = 30_000
    devices: dict[str, DeviceSequence] = field(default_factory=dict)

    def device(self, device: str) -> DeviceSequence:
        state = self.devices.get(device)
        if state is None:
            state = self.devices[device] = DeviceSequence(device)
        return state

    def observe(self, device: str, seq: int, now_ms: int) -> Verdict:
        return self.device(device).observe(seq, now_ms)

    def birth(self, device: str, boot_id: str, next_seq: int, now_ms: int) -> None:
        self.device(device).birth(boot_id, next_seq, now_ms)

    def due(self, now_ms: int) -> list[GapReport]:
        return [r for d in self.devices.values() for r in d.due(now_ms, self.grace_ms)]
