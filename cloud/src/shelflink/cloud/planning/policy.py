"""The order-up-to policy: how many cases each pair asks for before allocation.

Per pair, with protection period ``P = lead time + review period`` days:

- safety stock ``SS = z × sigma_P``, ``z`` the normal quantile of the service
  level (raised to the expedite level when the edge reported a stock-out risk);
- order-up-to level ``S = ceil(E[demand over P] + SS)`` units;
- position = on shelf + backroom + in transit; need ``= max(0, S - position)``;
- cases ``= ceil(need / case_pack)``;
- minimum order: if ``0 < cases < min_order_cases``, the minimum is ordered
  when the position is below the reorder point ``E[demand over P]`` (without
  the minimum now, the store is expected to run dry before the following
  delivery) or when the pair is expedited; otherwise nothing
  (``below_minimum``): waiting only eats into safety stock.

Quantities are whole cases, hence whole units and never negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelflink.cloud.planning.codes import Reason
from shelflink.cloud.planning.inputs import BoolArray, FloatArray, IntArray, UInt8Array

# Float noise below a billionth of a unit must not cost a whole unit (or case).
ROUNDING_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """Per pair: cases asked for, the reason so far, and the figures behind them."""

    cases: IntArray
    reason: UInt8Array
    order_up_to: IntArray
    safety_stock: FloatArray
    expedite: BoolArray


def pair_safety_factors(
    z_service: FloatArray, stockout_risk: BoolArray, z_expedite: float
) -> FloatArray:
    """The service level's z, raised to the expedite level's z on a stock-out risk."""
    raised: FloatArray = np.where(stockout_risk, np.maximum(z_service, z_expedite), z_service)
    return raised


def order_up_to_level(expected: FloatArray, safety_stock: FloatArray) -> IntArray:
    """``S`` in whole units: the protection-period demand plus safety stock, rounded up."""
    level = np.ceil(expected + safety_stock - ROUNDING_TOLERANCE)
    result: IntArray = np.maximum(level, 0.0).astype(np.int64)
    return result


def decide_orders(
    *,
    expected: FloatArray,
    sigma: FloatArray,
    z: FloatArray,
    position: IntArray,
    case_pack: IntArray,
    min_order_cases: IntArray,
    order_today: BoolArray,
    stockout_risk: BoolArray,
    held: BoolArray,
) -> PolicyDecision:
    """Apply the policy to per-pair arrays (all of shape ``(pairs,)``).

    ``expected`` and ``sigma`` are demand over the protection period and its
    standard deviation; ``held`` marks chilled pairs whose fridge is in alarm.
    """
    safety_stock = z * sigma
    order_up_to = order_up_to_level(expected, safety_stock)
    need = np.maximum(order_up_to - position, 0)
    cases = (need + case_pack - 1) // case_pack
    expedite = stockout_risk & ~held & (need > 0)
    short_of_minimum = (cases > 0) & (cases < min_order_cases)
    lift_to_minimum = short_of_minimum & (expedite | (position < expected))
    cases = np.where(lift_to_minimum, min_order_cases, cases)
    skipped = ~order_today & ~expedite
    reason = np.select(
        [held, need == 0, skipped, short_of_minimum & ~lift_to_minimum, expedite],
        [Reason.HELD_COLD_CHAIN_ALARM, Reason.NO_NEED, Reason.NOT_ORDER_DAY,
         Reason.BELOW_MINIMUM, Reason.EXPEDITE],
        default=Reason.OK,
    ).astype(np.uint8)  # fmt: skip
    ordering = (reason == Reason.OK) | (reason == Reason.EXPEDITE)
    cases = np.where(ordering, cases, 0).astype(np.int64)
    return PolicyDecision(cases, reason, order_up_to, safety_stock, expedite)
