"""Customers: how many arrive, what they take, and who walks out without paying.

Arrivals follow the store's traffic curve (:mod:`shelflink.sim.traffic`). Counts are
over-dispersed in two layers: a day-level gamma factor (weather, local events)
and a per-tick gamma factor, which makes customers per tick negative binomial
(a gamma-Poisson mixture) instead of Poisson. Each customer picks from lane
``l`` a Poisson(popularity[l]) number of times; a pick takes ``1 +
Poisson(extra_units)`` units. Promotions multiply one lane's pick rate in a
time window.

Everything random for one simulated day is drawn in one go from that day's
stream (:func:`draw_block`), so results do not depend on how a run is chunked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.clock import MS_PER_DAY
from shelflink.sim.layout import StoreLayout
from shelflink.sim.traffic import customer_rate, expected_customers_per_day

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class DemandParams:
    day_dispersion: float = 25.0  # gamma shape of the day factor (larger: calmer days)
    tick_dispersion: float = 4.0  # gamma shape of the per-tick factor
    extra_units: float = 0.25  # mean units beyond the first in one pick
    dwell_min_s: float = 60.0  # shortest time from shelf to till
    dwell_mean_s: float = 180.0  # mean of the rest (gamma, shape 2)


@dataclass(frozen=True, slots=True)
class Promotion:
    lane: int
    start_ms: int
    end_ms: int
    multiplier: float  # on the lane's pick rate
    price_minor: int  # the promotion price, never below the SKU's minimum resale price


def expected_units_per_day(layout: StoreLayout, params: DemandParams) -> F64:
    """Mean demand in units per lane and day: what the standing order plans for."""
    return (
        expected_customers_per_day(layout.profile) * layout.popularity * (1.0 + params.extra_units)
    )


@dataclass(frozen=True, slots=True, eq=False)
class DemandBlock:
    """One day of customers. Picks are sorted by (customer, lane); customers by arrival."""

    customer_tick: I64  # tick within the block at which the customer picks
    customer_dwell_ms: I64  # from picking to being scanned at the till
    customer_till: I64
    ev_tick: I64
    ev_customer: I64  # index into the customer arrays
    ev_lane: I64
    ev_units: I64  # units wanted
    ev_shrink: Bool  # taken without a sale


def draw_promotions(
    rng: np.random.Generator, layout: StoreLayout, block_start_ms: int
) -> list[Promotion]:
    """Promotions that start during the day beginning at ``block_start_ms``."""
    out: list[Promotion] = []
    for _ in range(int(rng.poisson(layout.profile.promotions_per_day))):
        lane = int(rng.integers(layout.lanes))
        start = block_start_ms + int(rng.integers(24)) * 3_600_000
        days = int(rng.integers(1, 5))
        multiplier = float(rng.uniform(1.5, 3.0))
        sku = layout.skus[int(layout.lane_sku[lane])]
        discounted = round(sku.price_minor * (1.0 - float(rng.uniform(0.1, 0.3))))
        price = max(sku.min_resale_minor, discounted)
        out.append(Promotion(lane, start, start + days * MS_PER_DAY, multiplier, price))
    return out


def draw_block(
    rng: np.random.Generator,
    layout: StoreLayout,
    ts_ms: I64,
    tick_ms: int,
    promotions: list[Promotion],
    params: DemandParams,
) -> DemandBlock:
    p = layout.profile
    n_ticks = ts_ms.shape[0]
    tick_h = tick_ms / 3_600_000.0
    day_factor = rng.gamma(params.day_dispersion, 1.0 / params.day_dispersion)
    tick_factor = rng.gamma(params.tick_dispersion, 1.0 / params.tick_dispersion, n_ticks)
    customers = rng.poisson(customer_rate(p, ts_ms) * tick_h * day_factor * tick_factor)
    customer_tick = np.repeat(np.arange(n_ticks, dtype=np.int64), customers)
    n_customers = int(customer_tick.shape[0])
    first_customer = np.concatenate([[0], np.cumsum(customers)[:-1]]).astype(np.int64)

    # Picks per tick are Poisson(customers * total popularity); splitting them
    # over lanes by popularity and over the tick's customers uniformly gives
    # exactly "each customer picks Poisson(popularity[l]) from lane l".
    total_pop = float(layout.popularity.sum())
    picks = rng.poisson(customers * total_pop)
    ticks = [np.repeat(np.arange(n_ticks, dtype=np.int64), picks)]
    cumulative = np.cumsum(layout.popularity) / total_pop
    lanes = [
        np.minimum(
            np.searchsorted(cumulative, rng.random(ticks[0].shape[0]), side="right"),
            layout.lanes - 1,
        )
    ]
    for promo in promotions:
        active = (ts_ms >= promo.start_ms) & (ts_ms < promo.end_ms)
        if not active.any():
            continue
        rate = np.where(
            active, customers * layout.popularity[promo.lane] * (promo.multiplier - 1.0), 0.0
        )
        extra = rng.poisson(rate)
        ticks.append(np.repeat(np.arange(n_ticks, dtype=np.int64), extra))
        lanes.append(np.full(int(extra.sum()), promo.lane, dtype=np.int64))
    ev_tick = np.concatenate(ticks)
    ev_lane = np.concatenate(lanes).astype(np.int64)
    n_events = int(ev_tick.shape[0])
    # A pick happens only where customers are, so customers[ev_tick] >= 1.
    local = np.floor(rng.random(n_events) * customers[ev_tick]).astype(np.int64)
    ev_customer = first_customer[ev_tick] + local
    ev_units = 1 + rng.poisson(params.extra_units, n_events)
    ev_shrink = rng.random(n_events) < p.shrink_rate
    dwell_s = params.dwell_min_s + rng.gamma(2.0, params.dwell_mean_s / 2.0, n_customers)
    till = rng.integers(0, len(layout.tills), n_customers)

    order = np.lexsort((ev_lane, ev_customer))
    return DemandBlock(
        customer_tick=customer_tick,
        customer_dwell_ms=np.round(dwell_s * 1000.0).astype(np.int64),
        customer_till=till.astype(np.int64),
        ev_tick=ev_tick[order],
        ev_customer=ev_customer[order],
        ev_lane=ev_lane[order],
        ev_units=ev_units[order].astype(np.int64),
        ev_shrink=ev_shrink[order],
    )
