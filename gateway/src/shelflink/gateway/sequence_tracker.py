"""Per-device sequence bookkeeping: duplicates, late arrivals, loss, reboot skips, resets.

QoS 1 is at-least-once and a reconnecting device resends what was in flight,
so numbers may arrive twice or out of order. A number missing from the
stream is therefore only *pending* at first; it is reported once it has been
missing for ``grace_ms``. A new boot's birth status says where the boot starts
(``seq`` in a status is the next number the device will use); numbers below
it that never came were skipped by the reboot (the device reserves numbers
ahead in blocks) and are reported as such, not as loss.

Because devices reserve ahead, a genuine new boot always starts above every
number the id used before. A new boot that starts at or below the highest
number seen is a *sequence reset* (a replaced board flashed with the old id, a
wiped sequence file): its readings would be taken for duplicates of the old
ones. From then on the reused range is *held* (kept aside by the caller, not
dropped) until a later boot of the device starts above everything it used.

Pure: no I/O, no clock of its own; the caller passes ``now_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Verdict(StrEnum):
    NEW = "new"  # the next number, or a jump forward (the gap becomes pending)
    LATE = "late"  # fills a pending or reported gap: accepted
    DUPLICATE = "duplicate"  # already seen: dropped
    HELD = "held"  # in the range a reset device reuses: kept aside, neither dropped nor buffered


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


@dataclass(frozen=True, slots=True)
class SequenceReset:
    """An open sequence reset: numbers ``first..last`` of this id are held."""

    device: str
    first: int  # the lowest number held: where the resetting boot started
    last: int  # the highest number seen before the reset
    next_seq: int  # where the latest boot of the reset device said it starts
    old_boot: str  # the boot that used the numbers first
    boot: str  # the boot reusing them (or its successor)
    detected_ms: int


# Gaps are kept, even after they are reported, so that a late arrival is
# recognised as data and not as a duplicate. Bounded so that a device sending
# every other number cannot grow memory without limit; the oldest go first.
MAX_GAPS_PER_DEVICE = 1_000
# Earlier boots of a device, so that a late copy of an old birth (a redelivery
# after a newer boot's birth) is not taken for a new boot.
MAX_PAST_BOOTS = 8


@dataclass(slots=True)
class DeviceSequence:
    device: str
    high: int | None = None  # the highest number seen
    floor: int | None = None  # the first number seen; nothing below it is known
    boot_id: str | None = None
    past_boots: list[str] = field(default_factory=list)
    gaps: list[_Gap] = field(default_factory=list)  # sorted, disjoint
    reset: SequenceReset | None = None
    reset_top: int = -1  # the highest number the reset device is known to have used
    duplicates: int = 0
    late: int = 0
    held: int = 0

    def observe(self, seq: int, now_ms: int) -> Verdict:
        reset = self.reset
        if reset is not None:
            self.reset_top = max(self.reset_top, seq)
            if reset.first <= seq <= reset.last:
                # Old data, a repeat, or the reset device's new reading under an
                # old number: no way to tell, so nothing here may be dropped.
                self.held += 1
                return Verdict.HELD
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

    def birth(self, boot_id: str, next_seq: int, now_ms: int) -> SequenceReset | None:
        """A birth status: ``next_seq`` is where this connection's data starts.

        Returns the reset this birth reveals, once per reset.
        """
        if boot_id == self.boot_id or boot_id in self.past_boots:
            # A reconnect or a redelivered birth of this boot (possibly after its
            # own data), or a late copy of an earlier boot's: nothing new.
            return None
        previous, self.boot_id = self.boot_id, boot_id
        if previous is not None:
            self.past_boots.append(previous)
            del self.past_boots[:-MAX_PAST_BOOTS]
        if self.reset is not None:
            reset = self._reset_boot(previous, boot_id, next_seq, now_ms)
            if reset is not None or self.reset is not None:
                return reset
        if self.high is None or previous is None:
            # Nothing to compare with: no data yet, or the first birth since this
            # gateway started, which may well be late after data of its own boot.
            return None
        if next_seq <= self.high:
            return self._open_reset(next_seq, self.high, next_seq, previous, boot_id, now_ms)
        if next_seq > self.high + 1:
            # The old boot's unsent rest of its reserved block; anything of the
            # old boot still in a broker queue may yet arrive and fills it.
            self._add_gap(self.high + 1, next_seq - 1, GapKind.REBOOT_SKIP, now_ms)
            self.high = next_seq - 1
        return None

    def restore(self, reset: SequenceReset) -> None:
        """An open reset kept from before a restart: hold its range again."""
        self.reset = reset
        self.reset_top = max(self.reset_top, reset.next_seq - 1)
        if self.boot_id is None:
            self.boot_id = reset.boot
        if reset.old_boot not in self.past_boots:
            self.past_boots.append(reset.old_boot)

    def _reset_boot(
        self, previous: str | None, boot_id: str, next_seq: int, now_ms: int
    ) -> SequenceReset | None:
        """A new boot of a device whose reset is open: closed, continued or reset again."""
        reset = self.reset
        assert reset is not None
        if next_seq > max(reset.last, self.reset_top):
            # Above everything the id has used: numbering is sane again.
            self.reset = None
            return None
        if next_seq > self.reset_top:
            # The reset device rebooted normally, still inside the held range.
            self.reset = replace(reset, boot=boot_id, next_seq=next_seq)
            self.reset_top = next_seq - 1
            return None
        # It went back again (wiped a second time): a new reset over both ranges.
        return self._open_reset(
            min(reset.first, next_seq), max(reset.last, self.reset_top), next_seq,
            previous or reset.boot, boot_id, now_ms,
        )  # fmt: skip

    def _open_reset(
        self, first: int, last: int, next_seq: int, old_boot: str, boot: str, now_ms: int
    ) -> SequenceReset:
        self.reset = SequenceReset(self.device, first, last, next_seq, old_boot, boot, now_ms)
        self.reset_top = next_seq - 1
        return self.reset

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

    def birth(self, device: str, boot_id: str, next_seq: int, now_ms: int) -> SequenceReset | None:
        return self.device(device).birth(boot_id, next_seq, now_ms)

    def restore(self, reset: SequenceReset) -> None:
        self.device(reset.device).restore(reset)

    def resets(self) -> list[SequenceReset]:
        """Open resets, one per device at most."""
        return [d.reset for d in self.devices.values() if d.reset is not None]

    def due(self, now_ms: int) -> list[GapReport]:
        return [r for d in self.devices.values() for r in d.due(now_ms, self.grace_ms)]
