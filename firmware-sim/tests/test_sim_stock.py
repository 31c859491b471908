"""The arithmetic under the model: allocation and stock-out labels, against plain loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.sim.ground_truth import (
    NO_STOCKOUT,
    StockoutTracker,
    first_stockout,
    stockout_carry,
    ticks_to_stockout,
)
from shelflink.sim.stock import allocate, group_exclusive_cumsum, restock_gaps

requests = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(requests=requests, supply=st.lists(st.integers(0, 20), min_size=5, max_size=5))
def test_allocate_serves_requests_first_come_first_served(
    requests: list[tuple[int, int]], supply: list[int]
) -> None:
    group = np.array([g for g, _ in requests], dtype=np.int64)
    want = np.array([r for _, r in requests], dtype=np.int64)
    left = list(supply)
    expected = []
    for g, r in requests:
        got = min(r, left[g])
        left[g] -= got
        expected.append(got)
    granted = allocate(np.array(supply, dtype=np.int64), group, want)
    assert granted.tolist() == expected


@settings(max_examples=100, deadline=None)
@given(requests=requests)
def test_group_exclusive_cumsum_matches_a_loop(requests: list[tuple[int, int]]) -> None:
    group = np.array([g for g, _ in requests], dtype=np.int64)
    values = np.array([v for _, v in requests], dtype=np.int64)
    running: dict[int, int] = {}
    expected = []
    for g, v in requests:
        expected.append(running.get(g, 0))
        running[g] = running.get(g, 0) + v
    assert group_exclusive_cumsum(group, values).tolist() == expected


def test_staff_skip_lanes_that_are_nearly_full() -> None:
    gaps = restock_gaps(np.array([10, 9, 0, 7]), np.array([10, 10, 10, 10]), 0.25)
    assert gaps.tolist() == [0, 0, 10, 3]


units_matrix = st.lists(
    st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=1, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(rows=units_matrix, cut=st.integers(0, 40))
def test_labels_computed_in_chunks_from_the_end_equal_the_whole(
    rows: list[list[int]], cut: int
) -> None:
    units = np.array(rows, dtype=np.int64)
    whole = ticks_to_stockout(units, np.full(3, NO_STOCKOUT, dtype=np.int64))
    for lane in range(3):
        for t in range(units.shape[0]):
            zeros = [u for u in range(t, units.shape[0]) if units[u, lane] == 0]
            assert whole[t, lane] == (zeros[0] - t if zeros else NO_STOCKOUT)
    cut = min(cut, units.shape[0])
    head, tail = units[:cut], units[cut:]
    tail_labels = ticks_to_stockout(tail, np.full(3, NO_STOCKOUT, dtype=np.int64))
    carry = stockout_carry(tail, np.full(3, NO_STOCKOUT, dtype=np.int64))
    head_labels = ticks_to_stockout(head, carry)
    assert np.vstack([head_labels, tail_labels]).tolist() == whole.tolist()
    assert first_stockout(units).tolist() == [
        int(np.argmax(units[:, i] == 0)) if (units[:, i] == 0).any() else NO_STOCKOUT
        for i in range(3)
    ]


@settings(max_examples=100, deadline=None)
@given(rows=units_matrix, cut=st.integers(1, 39))
def test_stockout_intervals_run_from_first_empty_tick_to_first_refilled_tick(
    rows: list[list[int]], cut: int
) -> None:
    units = np.array(rows, dtype=np.int64)
    ts = np.arange(units.shape[0], dtype=np.int64) * 60_000
    tracker = StockoutTracker(3)
    closed = [tracker.update(units[:cut], ts[:cut]), tracker.update(units[cut:], ts[cut:])]
    found = sorted(
        (int(lane), int(start), int(end))
        for part in (*closed, tracker.still_open())
        for lane, start, end in zip(part.lane, part.start_ms, part.end_ms, strict=True)
    )
    expected = []
    for lane in range(3):
        start = None
        for t in range(units.shape[0]):
            if units[t, lane] == 0 and start is None:
                start = int(ts[t])
            elif units[t, lane] > 0 and start is not None:
                expected.append((lane, start, int(ts[t])))
                start = None
        if start is not None:
            expected.append((lane, start, NO_STOCKOUT))
    assert found == sorted(expected)
