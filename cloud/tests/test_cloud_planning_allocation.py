"""Fair share of short warehouse stock: hand cases, a case-by-case walk, and properties."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.cloud.planning import allocate_fair_share
from shelflink.cloud.planning.inputs import IntArray


def _allocate(
    requested: list[int],
    position: list[int],
    rate: list[float],
    *,
    sku: list[int] | None = None,
    priority: list[bool] | None = None,
    pack: list[int] | None = None,
    minimum: list[int] | None = None,
    warehouse: list[int],
) -> IntArray:
    n = len(requested)
    return allocate_fair_share(
        requested_cases=np.array(requested, dtype=np.int64),
        sku=np.array(sku or [0] * n, dtype=np.int64),
        position=np.array(position, dtype=np.int64),
        forecast_per_day=np.array(rate, dtype=np.float64),
        priority=np.array(priority or [False] * n, dtype=np.bool_),
        case_pack=np.array(pack or [6], dtype=np.int64),
        min_order_cases=np.array(minimum or [1] * len(warehouse), dtype=np.int64),
        warehouse_units=np.array(warehouse, dtype=np.int64),
    )


def test_short_stock_equalises_days_of_cover() -> None:
    # Cases of 6, 20 units in the warehouse: 3 whole cases for 6 requested.
    # Cover before each case (units / rate):   A: 0, 6    B: 6, 12    C: 0, 3
    # Lowest first: A's 1st (0), C's 1st (0, A wins the tie as the lower index),
    # C's 2nd (3). Afterwards A = 6/1, B = 6/1, C = 12/2: six days each.
    allocated = _allocate([2, 2, 2], [0, 6, 0], [1.0, 1.0, 2.0], warehouse=[20])
    np.testing.assert_array_equal(allocated, [1, 0, 2])


def test_expedited_pairs_are_served_first() -> None:
    # B is expedited: its two cases (cover 6, 12) go before A's and C's.
    allocated = _allocate(
        [2, 2, 2], [0, 6, 0], [1.0, 1.0, 2.0], priority=[False, True, False], warehouse=[20]
    )
    np.testing.assert_array_equal(allocated, [1, 2, 0])


def test_enough_stock_serves_every_request() -> None:
    allocated = _allocate([2, 2, 2], [0, 6, 0], [1.0, 1.0, 2.0], warehouse=[36])
    np.testing.assert_array_equal(allocated, [2, 2, 2])


def test_skus_are_allocated_independently() -> None:
    # SKU 0 (pack 6) has 1 case for two stores, SKU 1 (pack 4) plenty.
    allocated = _allocate(
        [1, 1, 3, 3], [5, 0, 0, 0], [1.0, 1.0, 1.0, 1.0],
        sku=[0, 0, 1, 1], pack=[6, 4], warehouse=[6, 100],
    )  # fmt: skip
    np.testing.assert_array_equal(allocated, [0, 1, 3, 3])


def test_a_minimum_of_two_cases_goes_whole_to_the_store_with_least_cover() -> None:
    # Minimum 2 cases, 3 cases in stock, each store asks for 2. Cover before
    # each block: A 0, B 6, C 0. A's block comes first (the tie with C goes to
    # the lower index); 1 case is left, too little for C's or B's block, so it
    # stays in the warehouse rather than becoming a line no order may carry.
    allocated = _allocate([2, 2, 2], [0, 6, 0], [1.0, 1.0, 2.0], minimum=[2], warehouse=[18])
    np.testing.assert_array_equal(allocated, [2, 0, 0])


def test_a_case_too_few_for_a_block_goes_to_a_store_already_served() -> None:
    # Minimum 2 cases, 3 in stock. A asks 3 (cover 0, then 12 after its
    # block), B asks 2 (cover 3). A's block, then B's block does not fit the
    # 1 case left and is skipped; A's third case does, so nothing is stranded.
    allocated = _allocate([3, 2], [0, 3], [1.0, 1.0], minimum=[2], warehouse=[18])
    np.testing.assert_array_equal(allocated, [3, 0])


def test_expedited_blocks_come_first() -> None:
    # Minimum 2 of 3 cases; B is expedited, so its block goes before A's lower cover.
    allocated = _allocate(
        [2, 2], [0, 30], [1.0, 1.0], priority=[False, True], minimum=[2], warehouse=[18]
    )
    np.testing.assert_array_equal(allocated, [0, 2])


def test_a_request_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="minimum order"):
        _allocate([1, 2], [0, 0], [1.0, 1.0], minimum=[2], warehouse=[6])


@dataclass(frozen=True)
class Case:
    requested: IntArray
    sku: IntArray
    position: IntArray
    rate: np.typing.NDArray[np.float64]
    priority: np.typing.NDArray[np.bool_]
    pack: IntArray
    minimum: IntArray
    warehouse: IntArray


@st.composite
def cases(draw: st.DrawFn) -> Case:
    skus = draw(st.integers(1, 4))
    pairs = draw(st.integers(1, 30))
    ints = st.integers
    minimum = np.array(draw(st.lists(ints(0, 3), min_size=skus, max_size=skus)))
    sku = np.array(draw(st.lists(ints(0, skus - 1), min_size=pairs, max_size=pairs)))
    # As the policy asks: nothing, or the minimum (at least a case) and more.
    extra = np.array(draw(st.lists(ints(-1, 5), min_size=pairs, max_size=pairs)))
    requested = np.where(extra < 0, 0, np.maximum(minimum[sku], 1) + extra)
    return Case(
        requested=requested,
        sku=sku,
        position=np.array(draw(st.lists(ints(0, 40), min_size=pairs, max_size=pairs))),
        # Integer-ish rates make ties between stores common, which is the point.
        rate=np.array(
            draw(st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.7]), min_size=pairs, max_size=pairs))
        ),
        priority=np.array(draw(st.lists(st.booleans(), min_size=pairs, max_size=pairs))),
        pack=np.array(draw(st.lists(ints(1, 12), min_size=skus, max_size=skus))),
        minimum=minimum,
        warehouse=np.array(draw(st.lists(ints(0, 200), min_size=skus, max_size=skus))),
    )


def _run(case: Case) -> IntArray:
    return allocate_fair_share(
        requested_cases=case.requested,
        sku=case.sku,
        position=case.position,
        forecast_per_day=case.rate,
        priority=case.priority,
        case_pack=case.pack,
        min_order_cases=case.minimum,
        warehouse_units=case.warehouse,
    )


def _key(case: Case, i: int, cases: int) -> tuple[bool, float, int]:
    """Expedited first, then the pair's days of cover holding ``cases``, then its index."""
    units = int(case.position[i]) + cases * int(case.pack[case.sku[i]])
    return (not case.priority[i], units / float(case.rate[i]), i)


def _walk(case: Case) -> list[int]:
    """The rule as written: one increment at a time, skipping one that does not fit."""
    allocated = [int(r) for r in case.requested]
    for k in range(case.pack.shape[0]):
        members = [i for i in range(len(allocated)) if case.sku[i] == k and allocated[i] > 0]
        left = int(case.warehouse[k] // case.pack[k])
        if sum(allocated[i] for i in members) <= left:
            continue
        block = max(int(case.minimum[k]), 1)
        for i in members:
            allocated[i] = 0
        heap = [_key(case, i, 0) for i in members]
        heapq.heapify(heap)
        while heap and left > 0:
            i = heapq.heappop(heap)[2]
            size = block if allocated[i] == 0 else 1
            if size > left:
                continue  # skipped, and the store's further cases with it
            allocated[i] += size
            left -= size
            if allocated[i] < case.requested[i]:
                heapq.heappush(heap, _key(case, i, allocated[i]))
    return allocated


@settings(max_examples=150, deadline=None)
@given(cases())
def test_the_vectorised_allocation_is_the_case_by_case_walk(case: Case) -> None:
    allocated = _run(case)
    assert allocated.tolist() == _walk(case)
    np.testing.assert_array_equal(allocated, _run(case))  # deterministic


@settings(max_examples=150, deadline=None)
@given(cases())
def test_allocation_is_orderable_within_stock_and_need_and_strands_nothing(case: Case) -> None:
    allocated = _run(case)
    block = np.maximum(case.minimum, 1)[case.sku]
    assert np.all((allocated == 0) | (allocated >= block))
    assert np.all(allocated <= case.requested)
    skus = case.pack.shape[0]
    given_cases = np.bincount(case.sku, weights=allocated, minlength=skus).astype(np.int64)
    asked_cases = np.bincount(case.sku, weights=case.requested, minlength=skus).astype(np.int64)
    available = case.warehouse // case.pack
    assert np.all(given_cases <= available)
    left = available - given_cases
    # What a store still short could take next: its block, or one more case.
    increment = np.where(allocated == 0, block, 1)
    under_served = allocated < case.requested
    assert np.all(left[case.sku[under_served]] < increment[under_served])
    # With a minimum of one case, every whole case is shipped while someone asks.
    single = case.minimum <= 1
    np.testing.assert_array_equal(given_cases[single], np.minimum(asked_cases, available)[single])


@settings(max_examples=150, deadline=None)
@given(cases())
def test_no_increment_could_move_to_a_store_with_less_cover(case: Case) -> None:
    allocated = _run(case)
    pack = case.pack[case.sku]
    block = np.maximum(case.minimum, 1)[case.sku]
    cover_after = (case.position + allocated * pack) / case.rate
    # Cover before the last increment: the block's, or the last single case's.
    last_from = np.where(allocated > block, allocated - 1, 0)
    cover_before_last = (case.position + last_from * pack) / case.rate
    for i in range(len(allocated)):
        if allocated[i] == case.requested[i]:
            continue  # fully served
        for j in range(len(allocated)):
            if case.sku[j] != case.sku[i] or allocated[j] == 0:
                continue
            # An expedited store that is not fully served took precedence over all others.
            assert not (case.priority[i] and not case.priority[j])
            if case.priority[i] != case.priority[j]:
                continue
            if allocated[i] == 0 and allocated[j] > block[j]:
                continue  # i's block did not fit; j's single case did
            # j's last increment went to a cover no higher than i's cover without it.
            assert cover_before_last[j] <= cover_after[i]
