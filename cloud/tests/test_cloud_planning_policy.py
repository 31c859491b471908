"""The order-up-to policy, safety factors and delivery schedules, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from shelflink.cloud.planning import (
    PolicyDecision,
    Reason,
    decide_orders,
    delivery_schedule,
    order_up_to_level,
    safety_factor,
    safety_factors,
)

Z95 = 1.6448536269514722  # standard normal quantile of 0.95


def test_safety_factors_are_normal_quantiles() -> None:
    assert safety_factor(0.5) == 0.0
    assert safety_factor(0.95) == pytest.approx(Z95, abs=1e-12)
    assert safety_factor(0.99) == pytest.approx(2.3263478740408408, abs=1e-12)
    assert safety_factor(0.9) == pytest.approx(1.2815515655446004, abs=1e-12)
    levels = np.array([0.99, 0.95, 0.99, 0.5])
    np.testing.assert_array_equal(
        safety_factors(levels),
        [safety_factor(0.99), safety_factor(0.95), safety_factor(0.99), 0.0],
    )


def _decide(
    *,
    position: int = 5,
    min_order_cases: int = 1,
    order_today: bool = True,
    stockout_risk: bool = False,
    held: bool = False,
) -> PolicyDecision:
    """One pair: E[demand over P] 10, sigma 2, z(0.95), cases of 6."""
    return decide_orders(
        expected=np.array([10.0]),
        sigma=np.array([2.0]),
        z=np.array([Z95]),
        position=np.array([position], dtype=np.int64),
        case_pack=np.array([6], dtype=np.int64),
        min_order_cases=np.array([min_order_cases], dtype=np.int64),
        order_today=np.array([order_today]),
        stockout_risk=np.array([stockout_risk]),
        held=np.array([held]),
    )


def test_order_up_to_rounded_up_to_cases() -> None:
    decision = _decide()
    # SS = 1.6449 × 2 = 3.2897; S = ceil(10 + 3.2897) = 14; need = 14 - 5 = 9;
    # cases of 6: ceil(9 / 6) = 2, i.e. 12 units.
    assert decision.safety_stock[0] == pytest.approx(3.2897072539)
    assert decision.order_up_to[0] == 14
    assert decision.cases[0] == 2
    assert decision.reason[0] == Reason.OK


def test_no_need_when_the_position_reaches_the_order_up_to_level() -> None:
    decision = _decide(position=14)  # S = 14, need 0
    assert decision.cases[0] == 0
    assert decision.reason[0] == Reason.NO_NEED


def test_below_the_minimum_and_above_the_reorder_point_waits() -> None:
    # S = 14, position 12: need 2, one case, but the minimum is 2 cases; the
    # reorder point is E[demand over P] = 10 and 12 is not below it: wait.
    decision = _decide(position=12, min_order_cases=2)
    assert decision.cases[0] == 0
    assert decision.reason[0] == Reason.BELOW_MINIMUM


def test_below_the_minimum_and_below_the_reorder_point_orders_the_minimum() -> None:
    # Position 9 < reorder point 10: need 5, one case, lifted to the minimum of 2.
    decision = _decide(position=9, min_order_cases=2)
    assert decision.cases[0] == 2
    assert decision.reason[0] == Reason.OK


def test_the_reorder_point_is_strict() -> None:
    # Position 10 equals the reorder point: not below it, so no minimum order.
    decision = _decide(position=10, min_order_cases=2)
    assert decision.reason[0] == Reason.BELOW_MINIMUM


def test_an_expedited_pair_orders_the_minimum_and_outside_its_order_days() -> None:
    decision = _decide(position=12, min_order_cases=2, stockout_risk=True, order_today=False)
    assert decision.cases[0] == 2
    assert decision.expedite[0]
    assert decision.reason[0] == Reason.EXPEDITE


def test_not_an_order_day_without_risk_orders_nothing() -> None:
    decision = _decide(order_today=False)
    assert decision.cases[0] == 0
    assert decision.reason[0] == Reason.NOT_ORDER_DAY
    assert decision.order_up_to[0] == 14  # the figures are still reported


def test_a_risk_without_need_is_no_need_and_not_expedited() -> None:
    decision = _decide(position=40, stockout_risk=True)
    assert decision.reason[0] == Reason.NO_NEED
    assert not decision.expedite[0]


def test_cold_chain_alarm_holds_even_an_expedited_pair() -> None:
    decision = _decide(held=True, stockout_risk=True)
    assert decision.cases[0] == 0
    assert decision.reason[0] == Reason.HELD_COLD_CHAIN_ALARM
    assert not decision.expedite[0]


def test_float_noise_does_not_cost_a_unit() -> None:
    # (0.1 + 0.2) × 10 is 3.0000000000000004 in binary floating point: still 3 units.
    level = order_up_to_level(np.array([(0.1 + 0.2) * 10]), np.array([0.0]))
    assert level[0] == 3
    assert order_up_to_level(np.array([3.000001]), np.array([0.0]))[0] == 4


def test_reason_labels_are_what_the_dealer_reads() -> None:
    assert Reason.HELD_COLD_CHAIN_ALARM.label == "held_cold_chain_alarm"
    assert [reason.label for reason in Reason] == [
        "ok", "no_need", "below_minimum", "not_order_day", "held_cold_chain_alarm",
        "expedite", "allocated_short",
    ]  # fmt: skip


def test_delivery_schedule_from_delivery_weekdays() -> None:
    monday_thursday = [True, False, False, True, False, False, False]
    daily = [True] * 7
    saturday_only = [False] * 5 + [True, False]
    weekdays = np.array([monday_thursday, monday_thursday, daily, saturday_only])
    lead = np.array([1, 0, 2, 1])
    # Ordering on a Sunday (6): store 0 receives Monday, a delivery day; the next is
    # Thursday, 3 days later. Store 1 (no lead time) receives Sunday: off schedule,
    # next delivery Monday. Store 2 delivers daily. Store 3 receives Monday, next
    # delivery Saturday.
    order_today, review = delivery_schedule(weekdays, lead, 6)
    np.testing.assert_array_equal(order_today, [True, False, True, False])
    np.testing.assert_array_equal(review, [3, 1, 1, 5])
    # Ordering on a Friday (4) for store 3: arrives Saturday, next Saturday in 7 days.
    order_today, review = delivery_schedule(weekdays[3:], lead[3:], 4)
    assert order_today[0] and review[0] == 7


def test_a_store_without_delivery_days_is_refused() -> None:
    with pytest.raises(ValueError, match="delivery weekday"):
        delivery_schedule(np.zeros((1, 7), dtype=np.bool_), np.array([1]), 0)
