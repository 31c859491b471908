"""Sequence bookkeeping: what is accepted, dropped, held, and reported as loss, reboot skip
or reset."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shelflink.gateway.sequence_tracker import (
    DeviceSequence,
    GapKind,
    GapReport,
    SequenceReset,
    SequenceTracker,
    Verdict,
)

GRACE = 30_000


def feed(state: DeviceSequence, seqs: list[int], now_ms: int = 0) -> list[Verdict]:
    return [state.observe(s, now_ms) for s in seqs]


def test_in_order_stream_is_all_new() -> None:
    state = DeviceSequence("d")
    assert feed(state, [5, 6, 7]) == [Verdict.NEW] * 3
    assert state.due(10**9, GRACE) == []


def test_duplicates_are_dropped_and_counted() -> None:
    state = DeviceSequence("d")
    assert feed(state, [1, 2, 2, 3, 1]) == [
        Verdict.NEW,
        Verdict.NEW,
        Verdict.DUPLICATE,
        Verdict.NEW,
        Verdict.DUPLICATE,
    ]
    assert state.duplicates == 2


def test_a_gap_is_pending_until_the_grace_period_ends() -> None:
    state = DeviceSequence("d")
    feed(state, [1, 5], now_ms=0)
    assert state.pending() == 3
    assert state.due(GRACE - 1, GRACE) == []
    assert state.due(GRACE, GRACE) == [GapReport("d", 2, 4, GapKind.LOSS)]
    assert state.due(2 * GRACE, GRACE) == [], "a gap is reported once"


def test_late_arrival_fills_the_gap_and_splits_it() -> None:
    state = DeviceSequence("d")
    feed(state, [1, 6])
    assert state.observe(3, 10) is Verdict.LATE
    assert state.observe(3, 11) is Verdict.DUPLICATE
    assert state.due(GRACE, GRACE) == [
        GapReport("d", 2, 2, GapKind.LOSS),
        GapReport("d", 4, 5, GapKind.LOSS),
    ]


def test_late_after_report_is_still_data() -> None:
    state = DeviceSequence("d")
    feed(state, [1, 4])
    state.due(GRACE, GRACE)
    assert state.observe(2, GRACE + 1) is Verdict.LATE


def test_reboot_skip_is_not_loss() -> None:
    state = DeviceSequence("d")
    state.birth("boot-a", 0, 0)
    feed(state, [0, 1, 2])
    # Crash: the device had reserved 0..999; the new boot starts at 1000.
    state.birth("boot-b", 1000, 100)
    assert state.observe(1000, 101) is Verdict.NEW
    assert state.due(GRACE + 100, GRACE) == [GapReport("d", 3, 999, GapKind.REBOOT_SKIP)]


def test_reconnect_of_the_same_boot_is_not_a_skip() -> None:
    state = DeviceSequence("d")
    state.birth("boot-a", 0, 0)
    feed(state, [0, 1])
    # Reconnect: messages 2..4 are still queued in the device and come after the birth.
    state.birth("boot-a", 5, 10)
    assert feed(state, [2, 3, 4]) == [Verdict.NEW] * 3
    assert state.due(10**9, GRACE) == []


def test_numbers_below_the_first_seen_are_kept() -> None:
    state = DeviceSequence("d")
    assert feed(state, [7, 3]) == [Verdict.NEW, Verdict.LATE]


@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32),
    loss=st.floats(0, 0.3),
    dup=st.floats(0, 0.3),
)
def test_every_delivered_number_is_accepted_once_and_loss_is_exact(
    n: int, seed: int, loss: float, dup: float
) -> None:
    rng = random.Random(seed)
    delivered = [s for s in range(n) if s == 0 or rng.random() >= loss]
    stream = delivered + [s for s in delivered if rng.random() < dup]
    # Reorder locally, as resends after a reconnect do, but keep 0 first.
    head, tail = stream[:1], stream[1:]
    for i in range(len(tail) - 1):
        j = min(len(tail) - 1, i + rng.randint(0, 5))
        tail[i], tail[j] = tail[j], tail[i]
    tracker = SequenceTracker(grace_ms=GRACE)
    accepted = [s for s in head + tail if tracker.observe("d", s, 0) is not Verdict.DUPLICATE]
    assert sorted(accepted) == sorted(set(delivered))
    lost = {s for r in tracker.due(GRACE) for s in range(r.first, r.last + 1)}
    assert lost == set(range(max(delivered) + 1)) - set(delivered)


# -- sequence resets: a device id whose numbering went back ------------------------


def used(state: DeviceSequence, boot: str, seqs: range) -> None:
    state.birth(boot, seqs.start, 0)
    assert feed(state, list(seqs)) == [Verdict.NEW] * len(seqs)


def test_a_new_boot_at_or_below_the_high_is_a_reset_and_its_range_is_held() -> None:
    state = DeviceSequence("d")
    used(state, "boot-a", range(10))
    # A replaced board flashed with the old id, or a wiped sequence file.
    reset = state.birth("boot-b", 0, 500)
    assert reset == SequenceReset("d", 0, 9, 0, "boot-a", "boot-b", 500)
    assert feed(state, [0, 1, 1, 9]) == [Verdict.HELD] * 4, "none dropped, repeats included"
    assert feed(state, [10, 11, 11]) == [Verdict.NEW, Verdict.NEW, Verdict.DUPLICATE]
    assert state.held == 4
    assert state.due(10**9, GRACE) == [], "held numbers are not loss"
    # The next number it will use equal to the high is a reset too.
    state = DeviceSequence("d")
    used(state, "boot-a", range(10))
    assert state.birth("boot-b", 9, 0) is not None


def test_a_reset_is_reported_once() -> None:
    state = DeviceSequence("d")
    used(state, "boot-a", range(10))
    assert state.birth("boot-b", 0, 0) is not None
    assert state.birth("boot-b", 0, 1) is None, "QoS 1 redelivery of the same birth"
    assert state.birth("boot-b", 3, 2) is None, "a reconnect of the same boot"
    assert state.birth("boot-a", 0, 3) is None, "a late copy of the old boot's birth"
    assert state.boot_id == "boot-b"
    assert state.observe(4, 4) is Verdict.HELD


def test_numbers_below_the_reset_range_are_judged_as_before() -> None:
    state = DeviceSequence("d")
    used(state, "boot-a", range(10))
    assert state.birth("boot-b", 6, 0) is not None
    # The new boot starts at 6, so 3 can only be a repeat of the old boot's 3.
    assert state.observe(3, 1) is Verdict.DUPLICATE
    assert state.observe(6, 1) is Verdict.HELD


def test_no_reset_without_a_known_earlier_boot() -> None:
    # The first birth after a gateway (re)start may come after data of its own
    # boot, with a lower seq: there is nothing to compare it with.
    state = DeviceSequence("d")
    feed(state, [100, 101, 102])
    assert state.birth("boot-a", 90, 0) is None
    assert state.observe(103, 1) is Verdict.NEW
    assert DeviceSequence("d").birth("boot-a", 0, 0) is None, "a fresh tracker"


def test_a_late_birth_of_the_same_boot_is_not_a_reset() -> None:
    state = DeviceSequence("d")
    used(state, "boot-a", range(6))
    assert state.birth("boot-a", 0, 1) is None, "birth redelivered after its own data"
    assert state.birth("boot-b", 1000, 2) is None, "a normal reboot"
    assert state.observe(1000, 3) is Verdict.NEW
    assert state.birth("boot-a", 0, 4) is None, "the old boot's birth, redelivered late"
    assert state.birth("boot-b", 1001, 5) is None, "still boot-b: no skip, no reset"
    assert state.reset is None
    assert state.observe(1001, 6) is Verdict.NEW


def test_a_reset_lasts_until_a_boot_starts_above_every_used_number() -> None:
    state = DeviceSequence("d")
    used(state, "boot-a", range(100))
    assert state.birth("boot-b", 0, 0) is not None
    feed(state, [0, 1, 2])
    # The replaced board reboots normally (its blocks), still inside 0..99.
    assert state.birth("boot-c", 50, 1) is None
    assert state.reset is not None and state.reset.boot == "boot-c"
    assert state.observe(50, 2) is Verdict.HELD
    assert feed(state, [100, 101]) == [Verdict.NEW, Verdict.NEW], "past the old high"
    # Its next boot starts above everything the id used: sane again.
    assert state.birth("boot-d", 150, 3) is None
    assert state.reset is None
    assert state.observe(50, 4) is Verdict.DUPLICATE, "a plain repeat again"
    assert state.observe(150, 5) is Verdict.NEW
    assert state.due(10**9, GRACE) == [GapReport("d", 102, 149, GapKind.REBOOT_SKIP)]


def test_wiped_again_is_a_new_reset_over_both_ranges() -> None:
    state = DeviceSequence("d")
    used(state, "boot-a", range(100))
    state.birth("boot-b", 40, 0)
    feed(state, [40, 41, 100, 120])
    reset = state.birth("boot-c", 0, 1)
    assert reset == SequenceReset("d", 0, 120, 0, "boot-b", "boot-c", 1)
    assert feed(state, [0, 110, 120]) == [Verdict.HELD] * 3


def test_a_restored_reset_holds_again_and_knows_its_boot() -> None:
    kept = SequenceReset("d", 0, 99, 0, "boot-a", "boot-b", 7)
    tracker = SequenceTracker(grace_ms=GRACE)
    tracker.restore(kept)
    assert tracker.resets() == [kept]
    assert tracker.birth("d", "boot-b", 0, 1) is None, "its retained birth after the restart"
    assert tracker.birth("d", "boot-a", 0, 2) is None
    assert tracker.observe("d", 5, 3) is Verdict.HELD
    assert tracker.birth("d", "boot-c", 1000, 4) is None
    assert tracker.resets() == []


@given(
    old=st.integers(1, 200),
    start=st.integers(0, 200),
    new=st.integers(1, 300),
    seed=st.integers(0, 2**32),
)
def test_after_a_reset_nothing_of_the_new_boot_is_dropped(
    old: int, start: int, new: int, seed: int
) -> None:
    rng = random.Random(seed)
    start = min(start, old - 1)
    tracker = SequenceTracker(grace_ms=GRACE)
    tracker.birth("d", "boot-a", 0, 0)
    for s in range(old):
        tracker.observe("d", s, 0)
    assert tracker.birth("d", "boot-b", start, 0) is not None
    stream = list(range(start, start + new))
    stream += [s for s in stream if rng.random() < 0.2]  # QoS 1 repeats
    verdicts = [(s, tracker.observe("d", s, 0)) for s in stream]
    assert all(v is Verdict.HELD for s, v in verdicts if s < old)
    passed = [s for s, v in verdicts if s >= old and v is not Verdict.DUPLICATE]
    assert sorted(passed) == list(range(old, start + new))
