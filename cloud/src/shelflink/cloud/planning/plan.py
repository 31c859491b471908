"""One dealer's replenishment plan: forecast, policy and fair share over all its pairs.

One call plans one dealer: its stores, its SKUs, its warehouse stock.
Dealers are independent (a store is served by one dealer and a dealer ships
only from its own warehouse), so the caller partitions by dealer and may run
dealers in separate processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shelflink.cloud.planning.allocation import allocate_fair_share
from shelflink.cloud.planning.codes import Reason, reason_labels
from shelflink.cloud.planning.forecast import forecast_demand
from shelflink.cloud.planning.inputs import (
    AnyInts,
    BoolArray,
    FloatArray,
    IntArray,
    PairInputs,
    PlanningSettings,
    SkuInputs,
    StoreInputs,
    UInt8Array,
    validate,
)
from shelflink.cloud.planning.policy import decide_orders, pair_safety_factors
from shelflink.cloud.planning.service_level import safety_factor, safety_factors

Progress = Callable[[int, int], None]

# Pairs forecast at a time: bounds the float64 working copies whatever the
# size of the partition, and keeps a day's vectors (256 KB each) in cache,
# which measured faster than larger chunks.
CHUNK_PAIRS = 32_768


@dataclass(frozen=True, slots=True)
class ReplenishmentPlan:
    """Per store×SKU pair, in the order of the inputs (all arrays ``(pairs,)``)."""

    quantity: IntArray  # units to ship: whole cases, never negative
    requested: IntArray  # units the policy asked for before fair share
    reason: UInt8Array  # Reason codes
    order_up_to: IntArray  # S, units
    safety_stock: FloatArray  # units
    forecast_per_day: FloatArray  # mean units per day over the protection period
    sigma: FloatArray  # sigma of demand over the protection period, units
    demand_class: UInt8Array  # DemandClass codes
    expedite: BoolArray  # ordered now because of a stock-out risk

    def reason_labels(self) -> NDArray[np.str_]:
        """``reason`` as the labels the dealer reads."""
        return reason_labels(self.reason)


def plan(
    stores: StoreInputs,
    skus: SkuInputs,
    pairs: PairInputs,
    weekdays: AnyInts,
    *,
    horizon_start_weekday: int | None = None,
    settings: PlanningSettings | None = None,
    chunk_pairs: int = CHUNK_PAIRS,
    progress: Progress | None = None,
) -> ReplenishmentPlan:
    """Plan one dealer's orders.

    ``weekdays[t]`` is the weekday (0 = Monday) of history day ``t``; the
    protection period starts on ``horizon_start_weekday``, by default the day
    after the last history day (today, when the history ends yesterday).
    ``progress(done, total)`` is called in pairs after every chunk.
    """
    settings = settings or PlanningSettings()
    weekdays = np.asarray(weekdays, dtype=np.int64)
    validate(stores, skus, pairs, weekdays, settings)
    if horizon_start_weekday is None:
        horizon_start_weekday = int(weekdays[-1] + 1) % 7
    total = pairs.store.shape[0]
    case_pack = np.asarray(skus.case_pack, dtype=np.int64)
    min_order_cases = -(-np.asarray(skus.min_order_units, dtype=np.int64) // case_pack)
    protection_days = np.asarray(stores.lead_time_days, dtype=np.int64) + np.asarray(
        stores.review_days, dtype=np.int64
    )
    z_service = safety_factors(skus.service_level)
    z_expedite = safety_factor(settings.expedite_service_level)
    held_sku = np.asarray(skus.cold_chain, dtype=np.bool_)

    cases = np.zeros(total, dtype=np.int64)
    reason = np.zeros(total, dtype=np.uint8)
    order_up_to = np.zeros(total, dtype=np.int64)
    safety_stock = np.zeros(total)
    forecast_per_day = np.zeros(total)
    sigma = np.zeros(total)
    demand_class = np.zeros(total, dtype=np.uint8)
    expedite = np.zeros(total, dtype=np.bool_)
    position = np.zeros(total, dtype=np.int64)

    for start in range(0, total, chunk_pairs):
        chunk = slice(start, min(start + chunk_pairs, total))
        store = np.asarray(pairs.store[chunk], dtype=np.int64)
        sku = np.asarray(pairs.sku[chunk], dtype=np.int64)
        forecast = forecast_demand(pairs.history[chunk], weekdays, settings)
        days = protection_days[store]
        expected = forecast.expected_demand(horizon_start_weekday, days)
        chunk_sigma = forecast.sigma_over(days)
        on_hand = (
            np.asarray(pairs.on_shelf[chunk], dtype=np.int64)
            + np.asarray(pairs.backroom[chunk], dtype=np.int64)
            + np.asarray(pairs.in_transit[chunk], dtype=np.int64)
        )
        risk = np.asarray(pairs.stockout_risk[chunk], dtype=np.bool_)
        decision = decide_orders(
            expected=expected,
            sigma=chunk_sigma,
            z=pair_safety_factors(z_service[sku], risk, z_expedite),
            position=on_hand,
            case_pack=case_pack[sku],
            min_order_cases=min_order_cases[sku],
            order_today=np.asarray(stores.order_today, dtype=np.bool_)[store],
            stockout_risk=risk,
            held=held_sku[sku] & np.asarray(pairs.fridge_alarm[chunk], dtype=np.bool_),
        )
        cases[chunk] = decision.cases
        reason[chunk] = decision.reason
        order_up_to[chunk] = decision.order_up_to
        safety_stock[chunk] = decision.safety_stock
        forecast_per_day[chunk] = expected / days
        sigma[chunk] = chunk_sigma
        demand_class[chunk] = forecast.demand_class
        expedite[chunk] = decision.expedite
        position[chunk] = on_hand
        if progress is not None:
            progress(chunk.stop, total)

    sku_all = np.asarray(pairs.sku, dtype=np.int64)
    allocated = allocate_fair_share(
        requested_cases=cases,
        sku=sku_all,
        position=position,
        forecast_per_day=forecast_per_day,
        priority=expedite,
        case_pack=case_pack,
        min_order_cases=min_order_cases,
        warehouse_units=np.asarray(skus.warehouse_units, dtype=np.int64),
    )
    pack = case_pack[sku_all]
    reason[allocated < cases] = Reason.ALLOCATED_SHORT
    return ReplenishmentPlan(
        quantity=allocated * pack,
        requested=cases * pack,
        reason=reason,
        order_up_to=order_up_to,
        safety_stock=safety_stock,
        forecast_per_day=forecast_per_day,
        sigma=sigma,
        demand_class=demand_class,
        expedite=expedite,
    )
