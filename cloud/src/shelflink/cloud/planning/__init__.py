"""Replenishment planning: forecast, order-up-to policy and fair share, as arrays.

Pure numpy, no database: one call of ``plan`` takes one dealer's stores,
SKUs and store×SKU pairs as columns and returns a ``ReplenishmentPlan`` of
per-pair arrays. The pieces are public for callers that need one of them.
"""

from shelflink.cloud.planning.allocation import allocate_fair_share
from shelflink.cloud.planning.codes import (
    DemandClass,
    Reason,
    demand_class_labels,
    reason_labels,
)
from shelflink.cloud.planning.forecast import DemandForecast, forecast_demand
from shelflink.cloud.planning.inputs import PairInputs, PlanningSettings, SkuInputs, StoreInputs
from shelflink.cloud.planning.naive import plan_naive
from shelflink.cloud.planning.plan import ReplenishmentPlan, plan
from shelflink.cloud.planning.policy import PolicyDecision, decide_orders, order_up_to_level
from shelflink.cloud.planning.schedule import delivery_schedule
from shelflink.cloud.planning.service_level import safety_factor, safety_factors

__all__ = [
    "DemandClass",
    "DemandForecast",
    "PairInputs",
    "PlanningSettings",
    "PolicyDecision",
    "Reason",
    "ReplenishmentPlan",
    "SkuInputs",
    "StoreInputs",
    "allocate_fair_share",
    "decide_orders",
    "delivery_schedule",
    "demand_class_labels",
    "forecast_demand",
    "order_up_to_level",
    "plan",
    "plan_naive",
    "reason_labels",
    "safety_factor",
    "safety_factors",
]
