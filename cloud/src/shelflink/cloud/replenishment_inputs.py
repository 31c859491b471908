"""One dealer's planning inputs, read from the database into the planner's arrays.

``load_dealer_inputs`` runs inside the caller's transaction: the temporary
tables it numbers the stores, SKUs and pairs in are dropped at its commit.
Each input is one statement over the whole dealer (replenishment_queries.py),
scattered into arrays by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shelflink.cloud.database import Connection
from shelflink.cloud.planning import PairInputs, SkuInputs, StoreInputs, delivery_schedule
from shelflink.cloud.planning.inputs import BoolArray, IntArray
from shelflink.cloud.replenishment_queries import (
    ANALYZE_NUMBERED,
    BACKROOM,
    DEMAND,
    LANE_STEPS,
    NUMBER_LANES,
    NUMBER_PAIRS,
    NUMBER_SKUS,
    NUMBER_STORES,
    ON_ORDER,
    ON_SHELF,
    SELECT_PAIRS,
    SELECT_SKUS,
    SELECT_STORES,
    STANDING_COLD_CHAIN,
    STANDING_RISKS,
)

# What a SKU without a dealer_stock row may ship: the dealer does not report
# it, so the planner must not treat it as out of stock. Far above any order,
# far below int64 overflow in the fair-share arithmetic.
UNREPORTED_STOCK_UNITS = 2**40


@dataclass(frozen=True, slots=True)
class ColdChainAlarm:
    """A cold-chain alarm standing at a store: the fridge, the alarm and since when."""

    device: str
    alarm: str
    since: datetime
    event_key: str  # "gateway_id:seq" of the raising event: names the alarm episode


@dataclass(frozen=True, slots=True)
class DealerInputs:
    """Everything one planning run of one dealer needs, as arrays by index."""

    dealer_id: str
    store_ids: list[str]
    gtins: list[str]
    stores: StoreInputs
    skus: SkuInputs
    pairs: PairInputs
    weekdays: IntArray  # weekday of each history day, 0 = Monday
    horizon_start_weekday: int  # today's weekday
    rejected_recently: BoolArray  # per pair: the dealer rejected a suggestion lately
    lanes_unknown: int  # planogram lanes without a valid count in the window
    cold_chain_alarms: dict[int, list[ColdChainAlarm]]  # store index → alarms standing

    @property
    def pair_count(self) -> int:
        """The number of store×SKU pairs."""
        return int(self.pairs.store.shape[0])


def history_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """``(start, end)``: the ``days`` whole UTC days before today's UTC midnight."""
    today = now.astimezone(UTC).date()
    end = datetime(today.year, today.month, today.day, tzinfo=UTC)
    return end - timedelta(days=days), end


async def load_dealer_inputs(
    conn: Connection,
    dealer_id: str,
    *,
    now: datetime,
    history_days: int,
    rejected_cooldown: timedelta,
    service_level: float,
) -> DealerInputs:
    """Read the dealer's stores, SKUs and pairs as the planner's inputs, as of ``now``."""
    start, end = history_window(now, history_days)
    params: dict[str, Any] = {
        "dealer": dealer_id,
        "start": start,
        "end": end,
        "now": now,
        "start_date": start.date(),
        "cooldown": rejected_cooldown,
    }
    for statement in (
        NUMBER_STORES, NUMBER_PAIRS, NUMBER_SKUS, NUMBER_LANES, ANALYZE_NUMBERED, LANE_STEPS,
    ):  # fmt: skip
        await conn.execute(statement, params)
    store_rows = await _rows(conn, SELECT_STORES, params)
    sku_rows = await _rows(conn, SELECT_SKUS, params)
    pair_rows = await _rows(conn, SELECT_PAIRS, params)
    n_pairs = len(pair_rows)

    today = end.date()
    stores = _store_inputs(store_rows, today)
    skus = _sku_inputs(sku_rows, service_level)
    pair_index = np.array([row[:2] for row in pair_rows], dtype=np.int64).reshape(n_pairs, 2)
    lanes_total = sum(int(row[2]) for row in pair_rows)

    on_shelf = np.zeros(n_pairs, dtype=np.int64)
    shelf_rows = await _rows(conn, ON_SHELF, params)
    lanes_seen = _scatter(on_shelf, shelf_rows)
    backroom = np.zeros(n_pairs, dtype=np.int64)
    _scatter(backroom, await _rows(conn, BACKROOM, params))
    in_transit = np.zeros(n_pairs, dtype=np.int64)
    rejected = np.zeros(n_pairs, dtype=np.bool_)
    order_rows = await _rows(conn, ON_ORDER, params)
    if order_rows:
        index = np.array([row[0] for row in order_rows], dtype=np.int64)
        in_transit[index] = [row[1] for row in order_rows]
        rejected[index] = [bool(row[2]) for row in order_rows]

    history = np.zeros((n_pairs, history_days), dtype=np.float64)
    demand = await _rows(conn, DEMAND, params)
    if demand:
        cells = np.array(demand, dtype=np.float64)
        np.add.at(
            history, (cells[:, 0].astype(np.int64), cells[:, 1].astype(np.int64)), cells[:, 2]
        )
    # Returns can outweigh a day's sales; demand is never negative.
    np.maximum(history, 0.0, out=history)

    risk = np.zeros(n_pairs, dtype=np.bool_)
    risk_rows = await _rows(conn, STANDING_RISKS, params)
    if risk_rows:
        risk[[row[0] for row in risk_rows]] = True
    alarms: dict[int, list[ColdChainAlarm]] = {}
    for store_i, device, alarm, since, gateway_id, seq in await _rows(
        conn, STANDING_COLD_CHAIN, params
    ):
        alarms.setdefault(store_i, []).append(
            ColdChainAlarm(device, alarm, since, f"{gateway_id}:{seq}")
        )
    store_in_alarm = np.zeros(len(store_rows), dtype=np.bool_)
    store_in_alarm[list(alarms)] = True

    days = np.arange(history_days)
    weekdays = (start.date().weekday() + days) % 7
    return DealerInputs(
        dealer_id=dealer_id,
        store_ids=[row[0] for row in store_rows],
        gtins=[row[0] for row in sku_rows],
        stores=stores,
        skus=skus,
        pairs=PairInputs(
            store=pair_index[:, 0],
            sku=pair_index[:, 1],
            history=history,
            on_shelf=on_shelf,
            backroom=backroom,
            in_transit=in_transit,
            stockout_risk=risk,
            fridge_alarm=store_in_alarm[pair_index[:, 0]],
        ),
        weekdays=weekdays.astype(np.int64),
        horizon_start_weekday=today.weekday(),
        rejected_recently=rejected,
        lanes_unknown=lanes_total - lanes_seen,
        cold_chain_alarms=alarms,
    )


def _store_inputs(rows: list[tuple[Any, ...]], today: date) -> StoreInputs:
    lead = np.array([row[1] for row in rows], dtype=np.int64)
    mask = np.zeros((len(rows), 7), dtype=np.bool_)
    for i, row in enumerate(rows):
        # ISO weekdays 1..7 → columns 0..6 (Monday first).
        mask[i, [weekday - 1 for weekday in row[2]]] = True
    # A store without delivery days cannot be planned by the schedule; treat it
    # as deliverable every day rather than refusing the whole dealer.
    mask[~mask.any(axis=1)] = True
    order_today, review_days = delivery_schedule(mask, lead, today.weekday())
    return StoreInputs(lead_time_days=lead, review_days=review_days, order_today=order_today)


def _sku_inputs(rows: list[tuple[Any, ...]], service_level: float) -> SkuInputs:
    stock = [UNREPORTED_STOCK_UNITS if row[4] is None else row[4] for row in rows]
    return SkuInputs(
        case_pack=np.array([row[1] for row in rows], dtype=np.int64),
        min_order_units=np.array([row[2] for row in rows], dtype=np.int64),
        cold_chain=np.array([row[3] for row in rows], dtype=np.bool_),
        service_level=np.full(len(rows), service_level, dtype=np.float64),
        warehouse_units=np.array(stock, dtype=np.int64),
    )


def _scatter(target: NDArray[np.int64], rows: list[tuple[Any, ...]]) -> int:
    """``target[pair] = value`` for ``(pair, value[, lanes])`` rows; returns the lanes seen."""
    if not rows:
        return 0
    index = np.array([row[0] for row in rows], dtype=np.int64)
    target[index] = [row[1] for row in rows]
    return sum(int(row[2]) for row in rows if len(row) > 2)


async def _rows(conn: Connection, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(statement, params)
    return await cur.fetchall()
