"""The whole plan of a dealer: a hand-computed pair, properties, and the naive loop's agreement."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.cloud.planning import (
    DemandClass,
    PairInputs,
    Reason,
    ReplenishmentPlan,
    SkuInputs,
    StoreInputs,
    plan,
    plan_naive,
    safety_factor,
)
from shelflink.cloud.planning.bench import bench_planning
from shelflink.cloud.planning.inputs import IntArray


@dataclass(frozen=True)
class Partition:
    stores: StoreInputs
    skus: SkuInputs
    pairs: PairInputs
    weekdays: IntArray


def _one_pair(**pair: object) -> Partition:
    """One store (lead 2, review 1), one SKU (pack 4, minimum one case, 0.95), 14 days of 2."""
    defaults: dict[str, object] = {
        "history": np.full((1, 14), 2.0), "on_shelf": [3], "backroom": [0],
        "in_transit": [2], "stockout_risk": [False], "fridge_alarm": [False],
    }  # fmt: skip
    defaults.update(pair)
    return Partition(
        stores=StoreInputs(np.array([2]), np.array([1]), np.array([True])),
        skus=SkuInputs(
            case_pack=np.array([4]),
            min_order_units=np.array([4]),
            cold_chain=np.array([False]),
            service_level=np.array([0.95]),
            warehouse_units=np.array([100]),
        ),
        pairs=PairInputs(
            store=np.array([0]),
            sku=np.array([0]),
            history=np.asarray(defaults["history"], dtype=np.float64),
            on_shelf=np.array(defaults["on_shelf"]),
            backroom=np.array(defaults["backroom"]),
            in_transit=np.array(defaults["in_transit"]),
            stockout_risk=np.array(defaults["stockout_risk"], dtype=np.bool_),
            fridge_alarm=np.array(defaults["fridge_alarm"], dtype=np.bool_),
        ),
        weekdays=np.arange(14) % 7,
    )


def _plan(partition: Partition, **options: object) -> ReplenishmentPlan:
    return plan(
        partition.stores, partition.skus, partition.pairs, partition.weekdays,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_one_pair_by_hand() -> None:
    result = _plan(_one_pair())
    # 2 units every day: smooth, flat week, rate 28 / 14 = 2, residuals 0, so
    # sigma of a day is Poisson's sqrt(2). Protection period 2 + 1 = 3 days:
    # E = 6, sigma = sqrt(2) sqrt(3) = sqrt(6) = 2.449; SS = 1.6449 × 2.449 = 4.029;
    # S = ceil(10.029) = 11; position 3 + 0 + 2 = 5; need 6; cases of 4: 2 = 8 units.
    assert result.demand_class[0] == DemandClass.SMOOTH
    assert result.forecast_per_day[0] == 2.0
    assert result.sigma[0] == pytest.approx(math.sqrt(6.0))
    assert result.safety_stock[0] == pytest.approx(safety_factor(0.95) * math.sqrt(6.0))
    assert result.order_up_to[0] == 11
    assert result.requested[0] == 8
    assert result.quantity[0] == 8
    assert result.reason_labels().tolist() == ["ok"]


def test_a_stockout_risk_raises_the_service_level() -> None:
    result = _plan(_one_pair(stockout_risk=[True]))
    # z(0.99) = 2.3263: SS = 2.3263 × 2.449 = 5.698; S = ceil(11.698) = 12; need 7 → 8 units.
    assert result.safety_stock[0] == pytest.approx(safety_factor(0.99) * math.sqrt(6.0))
    assert result.order_up_to[0] == 12
    assert result.expedite[0]
    assert result.reason[0] == Reason.EXPEDITE


def test_a_chilled_sku_in_an_alarming_fridge_is_held() -> None:
    partition = _one_pair(fridge_alarm=[True])
    chilled = replace(partition, skus=replace(partition.skus, cold_chain=np.array([True])))
    result = _plan(chilled)
    assert result.quantity[0] == 0
    assert result.reason_labels().tolist() == ["held_cold_chain_alarm"]
    # The alarm alone does not hold an ambient SKU.
    assert _plan(partition).quantity[0] == 8


def test_short_warehouse_marks_the_pair() -> None:
    partition = _one_pair()
    short = replace(partition, skus=replace(partition.skus, warehouse_units=np.array([7])))
    result = _plan(short)
    # 7 units hold one whole case of 4 of the 2 cases asked for.
    assert result.requested[0] == 8
    assert result.quantity[0] == 4
    assert result.reason[0] == Reason.ALLOCATED_SHORT


def test_invalid_inputs_are_refused() -> None:
    partition = _one_pair(history=np.array([[1.0] * 13 + [-1.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        _plan(partition)
    partition = _one_pair()
    with pytest.raises(ValueError, match="weekday of every history day"):
        plan(partition.stores, partition.skus, partition.pairs, np.arange(7))
    low = replace(partition.skus, service_level=np.array([0.3]))
    with pytest.raises(ValueError, match="service levels"):
        plan(partition.stores, low, partition.pairs, partition.weekdays)
    outside = replace(partition.pairs, sku=np.array([1]))
    with pytest.raises(ValueError, match="sku index"):
        plan(partition.stores, partition.skus, outside, partition.weekdays)


@st.composite
def partitions(draw: st.DrawFn) -> Partition:
    """Small dealers: a few stores and SKUs, every combination of flags, short stock."""
    n_stores, n_skus = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    days = draw(st.integers(1, 35))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_pairs = n_stores * n_skus
    rates = rng.lognormal(-1.0, 1.5, n_pairs)
    history = rng.poisson(rates[:, None] * np.ones(days)).astype(np.float64)
    if draw(st.booleans()):  # shelf depletion: fractional units
        history = np.round(history * rng.uniform(0.8, 1.2, history.shape), 1)
    stock = rng.integers(0, 15, (3, n_pairs)) * (rng.random((3, n_pairs)) < [[1], [0.5], [0.3]])
    lead_time, review = rng.integers(0, 4, n_stores), rng.integers(1, 8, n_stores)
    if draw(st.booleans()):  # look-alike stores: ties in fair share
        history = np.tile(history[:n_skus], (n_stores, 1))
        stock = np.tile(stock[:, :n_skus], (1, n_stores))
        lead_time, review = np.full(n_stores, lead_time[0]), np.full(n_stores, review[0])
    case_pack = rng.integers(1, 13, n_skus)
    return Partition(
        stores=StoreInputs(
            lead_time_days=lead_time,
            review_days=review,
            order_today=rng.random(n_stores) < 0.7,
        ),
        skus=SkuInputs(
            case_pack=case_pack,
            min_order_units=case_pack * rng.integers(0, 4, n_skus),
            cold_chain=rng.random(n_skus) < 0.4,
            service_level=rng.choice(np.array([0.5, 0.9, 0.95, 0.99]), n_skus),
            warehouse_units=rng.integers(0, 60, n_skus),
        ),
        pairs=PairInputs(
            store=np.repeat(np.arange(n_stores), n_skus),
            sku=np.tile(np.arange(n_skus), n_stores),
            history=history,
            on_shelf=stock[0],
            backroom=stock[1],
            in_transit=stock[2],
            stockout_risk=rng.random(n_pairs) < 0.3,
            fridge_alarm=rng.random(n_pairs) < 0.3,
        ),
        weekdays=(np.arange(days) + draw(st.integers(0, 6))) % 7,
    )


@settings(max_examples=150, deadline=None)
@given(partitions())
def test_quantities_are_whole_cases_never_negative_and_respect_the_rules(
    partition: Partition,
) -> None:
    result = _plan(partition)
    pairs, skus = partition.pairs, partition.skus
    pack = skus.case_pack[pairs.sku]
    minimum = -(-skus.min_order_units[pairs.sku] // pack) * pack
    assert result.quantity.dtype == np.int64
    assert np.all(result.quantity >= 0)
    assert np.all(result.quantity % pack == 0)
    assert np.all(result.quantity <= result.requested)
    ordered = result.requested > 0
    # Whatever the policy asks for is at least the minimum order...
    assert np.all(result.requested[ordered] >= minimum[ordered])
    # ...and only fair share may ship less than asked.
    cut = result.quantity < result.requested
    np.testing.assert_array_equal(cut, result.reason == Reason.ALLOCATED_SHORT)
    # Fair share never cuts a line below what an order may carry.
    assert np.all((result.quantity == 0) | (result.quantity >= minimum))
    held = skus.cold_chain[pairs.sku] & pairs.fridge_alarm
    assert np.all(result.requested[held] == 0)
    assert np.all(result.reason[held] == Reason.HELD_COLD_CHAIN_ALARM)
    idle = ~partition.stores.order_today[pairs.store] & ~result.expedite
    assert np.all(result.requested[idle] == 0)
    shipped = np.bincount(pairs.sku, weights=result.quantity, minlength=len(skus.case_pack))
    assert np.all(shipped <= skus.warehouse_units)


def _assert_same_plan(left: ReplenishmentPlan, right: ReplenishmentPlan) -> None:
    for field in fields(ReplenishmentPlan):
        np.testing.assert_array_equal(
            getattr(left, field.name), getattr(right, field.name), err_msg=field.name
        )


@settings(max_examples=150, deadline=None)
@given(partitions())
def test_the_naive_loop_and_the_vectorised_plan_agree_exactly(partition: Partition) -> None:
    vectorised = _plan(partition)
    naive = plan_naive(partition.stores, partition.skus, partition.pairs, partition.weekdays)
    _assert_same_plan(vectorised, naive)


@settings(max_examples=30, deadline=None)
@given(partitions(), st.integers(1, 7))
def test_chunking_does_not_change_the_plan(partition: Partition, chunk: int) -> None:
    _assert_same_plan(_plan(partition), _plan(partition, chunk_pairs=chunk))


def test_the_benchmark_checks_itself_on_a_small_partition() -> None:
    progress: list[tuple[int, int]] = []
    figures = bench_planning(
        stores=30, skus=20, history_days=28, naive_sample=200, seed=3,
        progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    assert figures["pairs"] == 600
    assert figures["naive_pairs"] == 200  # 10 whole stores
    assert figures["sample_identical"] is True
    assert figures["pairs_per_s"] > 0 and figures["naive_pairs_per_s"] > 0
    assert progress[-1][0] == progress[-1][1]
