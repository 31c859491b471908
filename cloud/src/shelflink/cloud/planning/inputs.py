"""What one planning run of one dealer takes in: stores, SKUs and store×SKU pairs.

Everything is a column: store attributes are arrays over the dealer's
stores, SKU attributes arrays over its SKUs, and each pair refers to its store
and SKU by index. The database glue builds these from the dealer's rows; the
planner never sees a dealer other than the one it is planning for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
UInt8Array = NDArray[np.uint8]
AnyInts = NDArray[np.integer[Any]]
AnyFloats = NDArray[np.floating[Any]]


@dataclass(frozen=True, slots=True)
class StoreInputs:
    """Per store (shape ``(stores,)``).

    ``order_today``: an order placed today arrives on one of the store's
    delivery days (see ``delivery_schedule``). ``review_days``: days from that
    delivery to the next one, the period the order has to cover beyond the
    lead time.
    """

    lead_time_days: AnyInts
    review_days: AnyInts
    order_today: BoolArray


@dataclass(frozen=True, slots=True)
class SkuInputs:
    """Per SKU of the dealer (shape ``(skus,)``).

    ``min_order_units`` is the dealer's smallest order line; it is rounded up
    to whole cases. ``service_level`` is the cycle service level the safety
    stock is sized for (in [0.5, 1)). ``warehouse_units`` is what the dealer
    holds to ship in this run.
    """

    case_pack: AnyInts
    min_order_units: AnyInts
    cold_chain: BoolArray
    service_level: AnyFloats
    warehouse_units: AnyInts


@dataclass(frozen=True, slots=True)
class PairInputs:
    """Per store×SKU pair (shape ``(pairs,)``; ``history`` is ``(pairs, days)``).

    ``history`` is daily demand in units, oldest day first: scanner sales, or
    shelf depletion where the store has no scanner. ``stockout_risk`` is the
    edge's stock-out risk event for the pair's lane; ``fridge_alarm`` says the
    fridge holding the pair's lane is in a cold-chain alarm.
    """

    store: AnyInts
    sku: AnyInts
    history: AnyFloats
    on_shelf: AnyInts
    backroom: AnyInts
    in_transit: AnyInts
    stockout_risk: BoolArray
    fridge_alarm: BoolArray


@dataclass(frozen=True, slots=True)
class PlanningSettings:
    """Tuning of the forecast and the policy; the defaults are what production runs."""

    # Croston's smoothing constant; 0.1 is the textbook value for daily data.
    croston_alpha: float = 0.1
    # Syntetos–Boylan cut-offs between smooth and intermittent demand.
    adi_cutoff: float = 1.32
    cv2_cutoff: float = 0.49
    # Units of history at which the day-of-week factors get half their own
    # weight; below that they lean towards a flat week.
    seasonality_prior_units: float = 70.0
    # A stock-out risk from the edge raises the pair to at least this level.
    expedite_service_level: float = 0.99


def validate(
    stores: StoreInputs,
    skus: SkuInputs,
    pairs: PairInputs,
    weekdays: AnyInts,
    settings: PlanningSettings,
) -> None:
    """Refuse inputs the arithmetic would silently get wrong; ``ValueError`` says which."""
    n_stores = len(stores.lead_time_days)
    n_skus = len(skus.case_pack)
    n_pairs = len(pairs.store)
    _same_length("stores", n_stores, stores.review_days, stores.order_today)
    _same_length(
        "skus", n_skus, skus.min_order_units, skus.cold_chain, skus.service_level,
        skus.warehouse_units,
    )  # fmt: skip
    _same_length(
        "pairs", n_pairs, pairs.sku, pairs.on_shelf, pairs.backroom, pairs.in_transit,
        pairs.stockout_risk, pairs.fridge_alarm,
    )  # fmt: skip
    if pairs.history.ndim != 2 or pairs.history.shape[0] != n_pairs:
        raise ValueError("history must have shape (pairs, days)")
    if weekdays.shape != (pairs.history.shape[1],):
        raise ValueError("weekdays must give the weekday of every history day")
    if pairs.history.shape[1] == 0:
        raise ValueError("history needs at least one day")
    if np.any((weekdays < 0) | (weekdays > 6)):
        raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
    _index_in_range("store", pairs.store, n_stores)
    _index_in_range("sku", pairs.sku, n_skus)
    if not np.all(np.isfinite(pairs.history)) or np.any(pairs.history < 0):
        raise ValueError("history must be finite and non-negative")
    for name, values in (
        ("on_shelf", pairs.on_shelf), ("backroom", pairs.backroom),
        ("in_transit", pairs.in_transit), ("lead_time_days", stores.lead_time_days),
        ("min_order_units", skus.min_order_units), ("warehouse_units", skus.warehouse_units),
    ):  # fmt: skip
        if np.any(values < 0):
            raise ValueError(f"{name} must not be negative")
    if np.any(stores.review_days < 1):
        raise ValueError("review_days must be at least 1")
    if np.any(skus.case_pack < 1):
        raise ValueError("case_pack must be at least 1")
    levels = np.append(skus.service_level, settings.expedite_service_level)
    # Below 0.5 the safety stock turns negative: that is a policy error, not a choice.
    if np.any((levels < 0.5) | (levels >= 1.0)):
        raise ValueError("service levels must lie in [0.5, 1)")
    if not 0.0 < settings.croston_alpha <= 1.0:
        raise ValueError("croston_alpha must lie in (0, 1]")
    if not settings.seasonality_prior_units > 0.0:
        raise ValueError("seasonality_prior_units must be above 0")


def _same_length(what: str, expected: int, *arrays: NDArray[Any]) -> None:
    if any(array.shape != (expected,) for array in arrays):
        raise ValueError(f"every {what} array must have shape ({expected},)")


def _index_in_range(name: str, index: AnyInts, size: int) -> None:
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError(f"{name} index out of range 0..{size - 1}")
