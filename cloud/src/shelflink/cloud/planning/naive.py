"""The same plan as ``plan``, written as a plain loop over pairs: the benchmark's baseline.

Nothing here is shared with the vectorised code except the inputs, the
settings and the codes: every sum, rule and the increment-by-increment fair share are
written out again per pair, in plain Python floats and ints. The additions
happen in the same order as in the vectorised code, so both give the same
numbers to the last bit and the tests compare them exactly.
"""

from __future__ import annotations

import heapq
import math
from statistics import NormalDist

import numpy as np

from shelflink.cloud.planning.codes import DemandClass, Reason
from shelflink.cloud.planning.inputs import (
    AnyInts,
    PairInputs,
    PlanningSettings,
    SkuInputs,
    StoreInputs,
    validate,
)
from shelflink.cloud.planning.plan import ReplenishmentPlan

_TOLERANCE = 1e-9
_MIN_RATE = 1e-9


def plan_naive(
    stores: StoreInputs,
    skus: SkuInputs,
    pairs: PairInputs,
    weekdays: AnyInts,
    *,
    horizon_start_weekday: int | None = None,
    settings: PlanningSettings | None = None,
) -> ReplenishmentPlan:
    """``plan`` computed one pair at a time."""
    settings = settings or PlanningSettings()
    weekdays = np.asarray(weekdays, dtype=np.int64)
    validate(stores, skus, pairs, weekdays, settings)
    calendar = [int(weekday) for weekday in weekdays]
    start = (calendar[-1] + 1) % 7 if horizon_start_weekday is None else horizon_start_weekday
    normal = NormalDist()
    z_expedite = normal.inv_cdf(settings.expedite_service_level)
    # Plain Python values up front, as rows from a database would arrive:
    # the loop below then pays for its own arithmetic, not for numpy scalars.
    lead_time, review = stores.lead_time_days.tolist(), stores.review_days.tolist()
    order_today = stores.order_today.tolist()
    case_packs, minimums = skus.case_pack.tolist(), skus.min_order_units.tolist()
    cold_chain, service_levels = skus.cold_chain.tolist(), skus.service_level.tolist()
    rows: list[dict[str, float | int | bool]] = []
    for store, sku, history, on_shelf, backroom, in_transit, risk, alarm in zip(
        pairs.store.tolist(), pairs.sku.tolist(), pairs.history.tolist(),
        pairs.on_shelf.tolist(), pairs.backroom.tolist(), pairs.in_transit.tolist(),
        pairs.stockout_risk.tolist(), pairs.fridge_alarm.tolist(), strict=True,
    ):  # fmt: skip
        rate, factors, sigma_daily, demand_class = _forecast(history, calendar, settings)
        days = lead_time[store] + review[store]
        week = factors[0]
        for weekday in range(1, 7):
            week += factors[weekday]
        partial = [0.0] * 7
        for r in range(1, 7):
            partial[r] = partial[r - 1] + factors[(start + r - 1) % 7]
        weeks, rest = divmod(days, 7)
        expected = rate * (weeks * week + partial[rest])
        sigma = sigma_daily * math.sqrt(days)
        z = normal.inv_cdf(service_levels[sku])
        if risk:
            z = max(z, z_expedite)
        safety_stock = z * sigma
        order_up_to = max(math.ceil(expected + safety_stock - _TOLERANCE), 0)
        position = on_shelf + backroom + in_transit
        pack = case_packs[sku]
        minimum = -(-minimums[sku] // pack)
        need = max(order_up_to - position, 0)
        cases = (need + pack - 1) // pack
        held = cold_chain[sku] and alarm
        expedite = risk and not held and need > 0
        if held:
            reason, cases = Reason.HELD_COLD_CHAIN_ALARM, 0
        elif need == 0:
            reason, cases = Reason.NO_NEED, 0
        elif not order_today[store] and not expedite:
            reason, cases = Reason.NOT_ORDER_DAY, 0
        elif cases < minimum and not (expedite or position < expected):
            reason, cases = Reason.BELOW_MINIMUM, 0
        else:
            cases = max(cases, minimum)
            reason = Reason.EXPEDITE if expedite else Reason.OK
        rows.append(
            {"cases": cases, "reason": int(reason), "order_up_to": order_up_to,
             "safety_stock": safety_stock, "forecast_per_day": expected / days,
             "sigma": sigma, "demand_class": demand_class, "expedite": expedite,
             "position": position, "sku": sku, "pack": pack, "minimum": max(minimum, 1)}
        )  # fmt: skip
    allocated = _fair_share(rows, skus.warehouse_units.tolist())
    for row, cases in zip(rows, allocated, strict=True):
        if cases < row["cases"]:
            row["reason"] = int(Reason.ALLOCATED_SHORT)
    return ReplenishmentPlan(
        quantity=np.array([c * int(r["pack"]) for c, r in zip(allocated, rows, strict=True)],
                          dtype=np.int64),
        requested=np.array([int(r["cases"]) * int(r["pack"]) for r in rows], dtype=np.int64),
        reason=np.array([r["reason"] for r in rows], dtype=np.uint8),
        order_up_to=np.array([r["order_up_to"] for r in rows], dtype=np.int64),
        safety_stock=np.array([r["safety_stock"] for r in rows], dtype=np.float64),
        forecast_per_day=np.array([r["forecast_per_day"] for r in rows], dtype=np.float64),
        sigma=np.array([r["sigma"] for r in rows], dtype=np.float64),
        demand_class=np.array([r["demand_class"] for r in rows], dtype=np.uint8),
        expedite=np.array([r["expedite"] for r in rows], dtype=np.bool_),
    )  # fmt: skip


def _forecast(
    history: list[float], calendar: list[int], settings: PlanningSettings
) -> tuple[float, list[float], float, int]:
    """(rate, weekday factors, sigma of a day, demand class) of one pair."""
    days = len(history)
    weekday_totals = [0.0] * 7
    sum_squares = 0.0
    for t in range(days):
        weekday_totals[calendar[t]] += history[t]
        sum_squares += history[t] * history[t]
    total = weekday_totals[0]
    for weekday in range(1, 7):
        total += weekday_totals[weekday]
    demand_days = sum(1 for value in history if value > 0.0)

    counted = max(demand_days, 1)
    adi = days / counted
    mean_size = total / counted
    mean_size_squared = mean_size * mean_size
    variance = max(sum_squares / counted - mean_size_squared, 0.0)
    cv2 = variance / mean_size_squared if mean_size_squared > 0.0 else 0.0
    sparse, variable = adi >= settings.adi_cutoff, cv2 >= settings.cv2_cutoff
    if demand_days == 0:
        demand_class = DemandClass.NO_DEMAND
    elif sparse:
        demand_class = DemandClass.LUMPY if variable else DemandClass.INTERMITTENT
    else:
        demand_class = DemandClass.ERRATIC if variable else DemandClass.SMOOTH

    factors = [1.0] * 7
    days_per_weekday = [calendar.count(weekday) for weekday in range(7)]
    steady = demand_class in (DemandClass.SMOOTH, DemandClass.ERRATIC)
    if steady and min(days_per_weekday) > 0:
        means = [weekday_totals[d] / days_per_weekday[d] for d in range(7)]
        mean_of_means = means[0]
        for weekday in range(1, 7):
            mean_of_means += means[weekday]
        mean_of_means = mean_of_means / 7.0
        weight = total / (total + settings.seasonality_prior_units)
        for d in range(7):
            raw = means[d] / mean_of_means if mean_of_means > 0.0 else 1.0
            factors[d] = weight * raw + (1.0 - weight)
    factor_days = 0.0
    for t in range(days):
        factor_days += factors[calendar[t]]

    if steady:
        rate = total / factor_days
    elif demand_class == DemandClass.NO_DEMAND:
        rate = 0.0
    else:
        rate = _sba(history, total, demand_days, settings.croston_alpha)
    squared_errors = 0.0
    for t in range(days):
        error = history[t] - rate * factors[calendar[t]]
        squared_errors += error * error
    sigma_daily = math.sqrt(max(squared_errors / max(days - 1, 1), rate))
    return rate, factors, sigma_daily, int(demand_class)


def _sba(history: list[float], total: float, demand_days: int, alpha: float) -> float:
    size = total / demand_days
    interval = len(history) / demand_days
    since_last = 0.0
    for demand in history:
        since_last = since_last + 1.0
        if demand > 0.0:
            size = size + alpha * (demand - size)
            interval = interval + alpha * (since_last - interval)
            since_last = 0.0
    return (1.0 - alpha / 2.0) * size / interval


def _fair_share(rows: list[dict[str, float | int | bool]], warehouse: list[int]) -> list[int]:
    """Cases per pair, expedited first, then the lowest days of cover.

    A store's first increment is its minimum order in cases, then one case at
    a time; an increment that does not fit what is left is skipped, and with a
    skipped minimum the store's further cases.
    """
    allocated = [int(row["cases"]) for row in rows]
    by_sku: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        if int(row["cases"]) > 0:
            by_sku.setdefault(int(row["sku"]), []).append(i)
    for sku, members in by_sku.items():
        pack = int(rows[members[0]]["pack"])
        left = warehouse[sku] // pack
        if sum(allocated[i] for i in members) <= left:
            continue
        heap: list[tuple[bool, float, int]] = []
        for i in members:
            allocated[i] = 0
            heapq.heappush(heap, (not rows[i]["expedite"], _cover(rows[i], 0), i))
        while heap and left > 0:
            _, _, i = heapq.heappop(heap)
            size = int(rows[i]["minimum"]) if allocated[i] == 0 else 1
            if size > left:
                continue
            allocated[i] += size
            left -= size
            if allocated[i] < int(rows[i]["cases"]):
                heapq.heappush(heap, (not rows[i]["expedite"], _cover(rows[i], allocated[i]), i))
    return allocated


def _cover(row: dict[str, float | int | bool], cases: int) -> float:
    """Days of cover of a pair holding ``cases`` allocated cases."""
    units = int(row["position"]) + cases * int(row["pack"])
    return units / max(float(row["forecast_per_day"]), _MIN_RATE)
