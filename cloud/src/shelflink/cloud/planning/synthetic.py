"""A synthetic dealer partition for the benchmark: many stores, many SKUs, realistic skew.

Store sizes and SKU popularity are log-normal, so most pairs are slow movers
(the intermittent case) and a few sell dozens a day; demand has a weekly
rhythm (Friday and Saturday busiest, Sunday quietest) and a day-level gamma
factor per store on top of Poisson picks. About one SKU in three is short
in the warehouse, so the fair share has work to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shelflink.cloud.planning.inputs import IntArray, PairInputs, SkuInputs, StoreInputs
from shelflink.cloud.planning.schedule import delivery_schedule

WEEKLY_RHYTHM = np.array([0.92, 0.9, 0.95, 1.0, 1.2, 1.28, 0.75])
GENERATION_CHUNK_STORES = 500


@dataclass(frozen=True, slots=True)
class Partition:
    """Everything ``plan`` takes for one dealer."""

    stores: StoreInputs
    skus: SkuInputs
    pairs: PairInputs
    weekdays: IntArray


def synthetic_partition(
    stores: int,
    skus: int,
    history_days: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> Partition:
    """A full grid of ``stores × skus`` pairs, store-major; history as float32.

    The history starts on a Monday and ends yesterday; ``progress(done,
    total)`` is called in pairs as the history is drawn.
    """
    rng = np.random.default_rng(seed)
    n_pairs = stores * skus
    store_scale = rng.lognormal(0.0, 0.6, stores)
    popularity = rng.lognormal(-1.3, 1.3, skus)
    weekdays = np.arange(history_days, dtype=np.int64) % 7
    rhythm = WEEKLY_RHYTHM / WEEKLY_RHYTHM.mean()

    history = np.empty((n_pairs, history_days), dtype=np.float32)
    on_shelf = np.empty(n_pairs, dtype=np.int32)
    backroom = np.empty(n_pairs, dtype=np.int32)
    in_transit = np.empty(n_pairs, dtype=np.int32)
    for first in range(0, stores, GENERATION_CHUNK_STORES):
        last = min(first + GENERATION_CHUNK_STORES, stores)
        rows = slice(first * skus, last * skus)
        rate = (store_scale[first:last, np.newaxis] * popularity[np.newaxis, :]).reshape(-1)
        day_noise = rng.gamma(25.0, 1.0 / 25.0, (last - first, history_days))
        store_day = np.repeat(day_noise * rhythm[weekdays], skus, axis=0)
        history[rows] = rng.poisson(rate[:, np.newaxis] * store_day)
        on_shelf[rows] = rng.poisson(rate * 2.0)
        backroom[rows] = rng.poisson(rate * 1.5) * (rng.random(rate.shape[0]) < 0.6)
        in_transit[rows] = rng.poisson(rate * 1.0) * (rng.random(rate.shape[0]) < 0.2)
        if progress is not None:
            progress(last * skus, n_pairs)

    delivery_days = rng.random((stores, 7)) < np.clip(store_scale / 2.0, 0.3, 1.0)[:, None]
    delivery_days[np.arange(stores), rng.integers(0, 7, stores)] = True
    lead_time = rng.integers(1, 3, stores)
    order_today, review = delivery_schedule(delivery_days, lead_time, history_days % 7)

    case_pack = rng.choice(np.array([6, 12, 24]), skus)
    # Roughly what the stores ordering today ask for: a case each for slow
    # movers, several days of demand for fast ones; then more or less of it.
    typical_order = np.maximum(case_pack, popularity * store_scale.mean() * 4.0)
    warehouse = np.round(stores * 0.4 * typical_order * rng.uniform(0.5, 3.0, skus))
    store_of_pair = np.repeat(np.arange(stores), skus)
    sku_of_pair = np.tile(np.arange(skus), stores)
    alarm_store = rng.random(stores) < 0.01
    return Partition(
        stores=StoreInputs(lead_time, review, order_today),
        skus=SkuInputs(
            case_pack=case_pack,
            min_order_units=case_pack * rng.choice(np.array([1, 1, 2]), skus),
            cold_chain=rng.random(skus) < 0.25,
            service_level=rng.choice(np.array([0.9, 0.95, 0.98]), skus),
            warehouse_units=warehouse.astype(np.int64),
        ),
        pairs=PairInputs(
            store=store_of_pair,
            sku=sku_of_pair,
            history=history,
            on_shelf=on_shelf,
            backroom=backroom,
            in_transit=in_transit,
            stockout_risk=rng.random(n_pairs) < 0.02,
            fridge_alarm=alarm_store[store_of_pair],
        ),
        weekdays=weekdays,
    )


def store_subset(partition: Partition, chosen: IntArray) -> Partition:
    """The pairs of the ``chosen`` stores (sorted indices), with a proportional warehouse."""
    stores, skus, pairs = partition.stores, partition.skus, partition.pairs
    n_stores = stores.lead_time_days.shape[0]
    remap = np.full(n_stores, -1, dtype=np.int64)
    remap[chosen] = np.arange(chosen.shape[0])
    keep = np.flatnonzero(remap[pairs.store] >= 0)
    share = chosen.shape[0] / n_stores
    return Partition(
        stores=StoreInputs(
            stores.lead_time_days[chosen], stores.review_days[chosen], stores.order_today[chosen]
        ),
        skus=SkuInputs(
            case_pack=skus.case_pack,
            min_order_units=skus.min_order_units,
            cold_chain=skus.cold_chain,
            service_level=skus.service_level,
            warehouse_units=np.floor(skus.warehouse_units * share).astype(np.int64),
        ),
        pairs=PairInputs(
            store=remap[pairs.store[keep]],
            sku=pairs.sku[keep],
            history=pairs.history[keep],
            on_shelf=pairs.on_shelf[keep],
            backroom=pairs.backroom[keep],
            in_transit=pairs.in_transit[keep],
            stockout_risk=pairs.stockout_risk[keep],
            fridge_alarm=pairs.fridge_alarm[keep],
        ),
        weekdays=partition.weekdays,
    )
