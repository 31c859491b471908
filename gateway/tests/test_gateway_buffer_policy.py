"""The buffer's rules without a disk: ranges, drop choice, the alarm's hysteresis."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelflink.gateway.buffer_policy import (
    ROW_OVERHEAD,
    Capacity,
    DropCandidate,
    drop_reports,
    merge_ranges,
    oldest_enough,
    report_pieces,
    row_bytes,
    seq_ranges,
)
from shelflink.gateway.buffer_record import DropReport


@pytest.mark.parametrize(
    ("seqs", "ranges"),
    [
        ([], ()),
        ([5], ((5, 5),)),
        ([1, 2, 3, 7, 9, 10], ((1, 3), (7, 7), (9, 10))),
        ([10, 9, 1, 3, 2, 7], ((1, 3), (7, 7), (9, 10))),
        ([4, 4, 5], ((4, 5),)),
    ],
)
def test_seq_ranges(seqs: list[int], ranges: tuple[tuple[int, int], ...]) -> None:
    assert seq_ranges(seqs) == ranges


@given(st.sets(st.integers(0, 300)))
def test_ranges_cover_exactly_the_numbers(seqs: set[int]) -> None:
    ranges = seq_ranges(seqs)
    assert {n for first, last in ranges for n in range(first, last + 1)} == seqs
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges)), "disjoint"


def test_merge_joins_adjacent_and_overlapping_ranges() -> None:
    assert merge_ranges([(5, 6), (1, 2), (3, 3), (8, 9), (9, 12)]) == ((1, 3), (5, 6), (8, 12))


def test_drop_reports_merge_pieces_per_device() -> None:
    pieces = [("b", 2, 1, 2), ("a", 1, 7, 7), ("b", 3, 3, 5), ("a", 1, 9, 9)]
    assert drop_reports(pieces) == [
        DropReport(device="a", records=2, seq_ranges=((7, 7), (9, 9))),
        DropReport(device="b", records=5, seq_ranges=((1, 5),)),
    ]


def test_report_pieces_count_rows_not_numbers() -> None:
    # The same device and seq under two fields (shelf and fridge) is two rows.
    chosen = [
        DropCandidate(1, "d", 4, 10),
        DropCandidate(2, "d", 4, 10),
        DropCandidate(3, "d", 5, 10),
    ]
    assert list(report_pieces(chosen)) == [("d", 3, 4, 5)]


@pytest.mark.parametrize(
    ("need", "taken", "freed"),
    [(0, 0, 0), (-5, 0, 0), (1, 1, 10), (10, 1, 10), (11, 2, 30), (60, 3, 60), (61, 3, 60)],
)
def test_oldest_enough_takes_the_shortest_prefix(need: int, taken: int, freed: int) -> None:
    candidates = [DropCandidate(i, "d", i, size) for i, size in enumerate([10, 20, 30])]
    chosen, got = oldest_enough(iter(candidates), need)
    assert chosen == candidates[:taken]
    assert got == freed


def test_oldest_enough_does_not_read_more_than_it_needs() -> None:
    read: list[int] = []

    def lazily() -> Iterator[DropCandidate]:
        for i in range(1_000):
            read.append(i)
            yield DropCandidate(i, "d", i, 100)

    oldest_enough(lazily(), 250)
    assert read == [0, 1, 2]


@pytest.mark.parametrize(
    ("raised", "fill", "after"),
    [
        (False, 0.0, False),
        (False, 0.79, False),
        (False, 0.8, True),
        (False, 1.2, True),
        (True, 0.8, True),
        (True, 0.7, True),
        (True, 0.69, False),
        (True, 0.0, False),
    ],
)
def test_alarm_hysteresis(raised: bool, fill: float, after: bool) -> None:
    capacity = Capacity(max_bytes=10_000)
    assert capacity.alarm(raised, round(fill * 10_000)) is after


def test_capacity_limits() -> None:
    capacity = Capacity(max_bytes=1000)
    assert capacity.hard_ceiling == 1250
    assert capacity.limit(has_telemetry=True) == 1000
    assert capacity.limit(has_telemetry=False) == 1250
    assert capacity.to_free(used=900, incoming=150) == 50
    assert capacity.to_free(used=100, incoming=150) == 0


@pytest.mark.parametrize(
    "bad",
    [{"max_bytes": 0}, {"high_water": 0.7, "low_water": 0.7}, {"high_water": 1.1}],
)
def test_capacity_refuses_nonsense(bad: dict[str, float]) -> None:
    settings = {"max_bytes": 1000, "high_water": 0.8, "low_water": 0.7, **bad}
    with pytest.raises(ValueError):
        Capacity(int(settings["max_bytes"]), settings["high_water"], settings["low_water"])


def test_row_bytes_counts_the_device_in_utf8_twice() -> None:
    assert row_bytes("ab", b"x" * 10) == 10 + 4 + ROW_OVERHEAD
    assert row_bytes("é", b"") == 4 + ROW_OVERHEAD
