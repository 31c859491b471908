"""Sequence bookkeeping: what is accepted, dropped, and reported as loss or reboot skip."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shelflink.gateway.sequence_tracker import (
    DeviceSequence,
    GapKind,
    GapReport,
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
