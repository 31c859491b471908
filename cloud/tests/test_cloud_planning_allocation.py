"""Fair share of short warehouse stock: hand cases and properties over random partitions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


@dataclass(frozen=True)
class Case:
    requested: IntArray
    sku: IntArray
    position: IntArray
    rate: np.typing.NDArray[np.float64]
    priority: np.typing.NDArray[np.bool_]
    pack: IntArray
    warehouse: IntArray


@st.composite
def cases(draw: st.DrawFn) -> Case:
    skus = draw(st.integers(1, 4))
    pairs = draw(st.integers(1, 30))
    ints = st.integers
    return Case(
        requested=np.array(draw(st.lists(ints(0, 6), min_size=pairs, max_size=pairs))),
        sku=np.array(draw(st.lists(ints(0, skus - 1), min_size=pairs, max_size=pairs))),
        position=np.array(draw(st.lists(ints(0, 40), min_size=pairs, max_size=pairs))),
        # Integer-ish rates make ties between stores common, which is the point.
        rate=np.array(
            draw(st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.7]), min_size=pairs, max_size=pairs))
        ),
        priority=np.array(draw(st.lists(st.booleans(), min_size=pairs, max_size=pairs))),
        pack=np.array(draw(st.lists(ints(1, 12), min_size=skus, max_size=skus))),
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
        warehouse_units=case.warehouse,
    )


@settings(max_examples=150, deadline=None)
@given(cases())
def test_allocation_never_exceeds_stock_nor_need_and_uses_what_it_can(case: Case) -> None:
    allocated = _run(case)
    assert np.all(allocated >= 0)
    assert np.all(allocated <= case.requested)
    skus = case.pack.shape[0]
    given_cases = np.bincount(case.sku, weights=allocated, minlength=skus)
    asked_cases = np.bincount(case.sku, weights=case.requested, minlength=skus)
    available = case.warehouse // case.pack
    assert np.all(given_cases * case.pack <= case.warehouse)
    # Every whole case is shipped while someone still asks for one.
    np.testing.assert_array_equal(given_cases, np.minimum(asked_cases, available))
    np.testing.assert_array_equal(allocated, _run(case))  # deterministic


@settings(max_examples=150, deadline=None)
@given(cases())
def test_no_case_could_move_to_a_store_with_less_cover(case: Case) -> None:
    allocated = _run(case)
    pack = case.pack[case.sku]
    cover_after = (case.position + allocated * pack) / case.rate
    cover_before_last = (case.position + (allocated - 1) * pack) / case.rate
    for i in range(len(allocated)):
        if allocated[i] == case.requested[i]:
            continue  # fully served
        for j in range(len(allocated)):
            if case.sku[j] != case.sku[i] or allocated[j] == 0:
                continue
            # An expedited store that is not fully served took precedence over all others.
            assert not (case.priority[i] and not case.priority[j])
            if case.priority[i] == case.priority[j]:
                # j's last case went to a cover no higher than i's cover without it.
                assert cover_before_last[j] <= cover_after[i]
