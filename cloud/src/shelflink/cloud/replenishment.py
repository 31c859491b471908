"""The replenishment run: each dealer's rows → the planner → suggested orders.

One run plans every dealer (or the ones named), each in a transaction of its
own under a per-dealer advisory lock: a dealer's inputs are read, planned
with ``shelflink.cloud.planning.plan`` and written as suggested orders
through ``orders.create_order`` (which applies the dealer's auto-approval)
in one commit, with a ``planning_runs`` row that records it. A second
planner reaching a dealer that is being planned skips it instead of
ordering the same goods twice; a run right after another finds the first
run's orders in the inventory position (open orders count as on order) and
orders nothing more for them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from shelflink.cloud.database import Connection
from shelflink.cloud.orders import InvalidOrder, create_order
from shelflink.cloud.orders_models import Actor
from shelflink.cloud.planning import PairInputs, PlanningSettings, Reason, plan
from shelflink.cloud.replenishment_inputs import DealerInputs, load_dealer_inputs
from shelflink.cloud.replenishment_orders import StoreHold, propose_orders
from shelflink.cloud.replenishment_queries import HOLD_ALERT, LOCK_DEALER, RECORD_RUN

logger = logging.getLogger(__name__)

TRIGGERS = ("manual", "schedule", "stockout_risk")


@dataclass(frozen=True, slots=True)
class PlanningOptions:
    """How a run reads and plans; the defaults are what production runs."""

    history_days: int = 28
    # The cycle service level safety stock is sized for (the SKU table has no
    # level of its own yet); stock-out risks raise it to the planner's
    # expedite level.
    service_level: float = 0.95
    # A suggestion the dealer rejected is not suggested again for this long.
    rejected_cooldown: timedelta = timedelta(hours=24)
    settings: PlanningSettings = field(default_factory=PlanningSettings)


@dataclass(frozen=True, slots=True)
class DealerRun:
    """What planning one dealer did; ``skipped`` says why it did nothing."""

    dealer_id: str
    run_id: int | None = None
    stores: int = 0
    pairs: int = 0
    orders_created: int = 0
    lines: int = 0
    units: int = 0
    expedited_orders: int = 0
    held_stores: int = 0
    lanes_unknown: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    order_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class PlanningSummary:
    """One run over one or more dealers."""

    runs: list[DealerRun]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The summary ``shelflink cloud plan`` prints: totals, then per dealer."""
        planned = [r for r in self.runs if r.skipped is None]
        by_reason: Counter[str] = Counter()
        for run in planned:
            by_reason.update(run.by_reason)
        return {
            "dealers": len(planned),
            "skipped_dealers": {r.dealer_id: r.skipped for r in self.runs if r.skipped},
            "stores": sum(r.stores for r in planned),
            "pairs": sum(r.pairs for r in planned),
            "orders_created": sum(r.orders_created for r in planned),
            "lines": sum(r.lines for r in planned),
            "units": sum(r.units for r in planned),
            "expedited_orders": sum(r.expedited_orders for r in planned),
            "held_stores": sum(r.held_stores for r in planned),
            "lanes_unknown": sum(r.lanes_unknown for r in planned),
            "by_reason": dict(sorted(by_reason.items())),
            "seconds": round(self.seconds, 3),
            "runs": [
                {"dealer_id": r.dealer_id, "run_id": r.run_id, "pairs": r.pairs,
                 "orders_created": r.orders_created, "seconds": round(r.seconds, 3)}
                for r in planned
            ],
        }  # fmt: skip


async def run_planning(
    conn: Connection,
    *,
    dealer_ids: list[str] | None = None,
    now: datetime | None = None,
    trigger: str = "manual",
    options: PlanningOptions | None = None,
) -> PlanningSummary:
    """Plan every dealer (or those named) one after the other, as of ``now``.

    ``conn`` must be an idle autocommit connection: each dealer gets its own
    transaction. Dealers are independent; separate processes may plan
    separate dealers (``dealer_ids``) at the same time.
    """
    started = time.perf_counter()
    options = options or PlanningOptions()
    now = now or datetime.now(UTC)
    if dealer_ids is None:
        cur = await conn.execute("SELECT dealer_id FROM dealers ORDER BY dealer_id")
        dealer_ids = [row[0] for row in await cur.fetchall()]
    runs = [
        await plan_dealer(conn, dealer_id, now=now, trigger=trigger, options=options)
        for dealer_id in dealer_ids
    ]
    return PlanningSummary(runs=runs, seconds=time.perf_counter() - started)


async def plan_dealer(
    conn: Connection,
    dealer_id: str,
    *,
    now: datetime,
    trigger: str = "manual",
    options: PlanningOptions | None = None,
) -> DealerRun:
    """Plan one dealer in one transaction: read, plan, suggest orders, record the run."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}")
    if conn.info.transaction_status != TransactionStatus.IDLE:
        # The run's temporary tables and its lock live exactly as long as its
        # own transaction; inside a caller's they would outlive it.
        raise RuntimeError("plan_dealer needs an idle connection: it commits on its own")
    options = options or PlanningOptions()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    async with conn.transaction():
        cur = await conn.execute(LOCK_DEALER, {"dealer": dealer_id})
        locked = await cur.fetchone()
        if locked is None or not locked[0]:
            logger.info("dealer %s is being planned by another run; skipped", dealer_id)
            return DealerRun(dealer_id=dealer_id, skipped="busy")
        inputs = await load_dealer_inputs(
            conn,
            dealer_id,
            now=now,
            history_days=options.history_days,
            rejected_cooldown=options.rejected_cooldown,
            service_level=options.service_level,
        )
        run = await _plan_and_order(conn, inputs, now, options)
        cur = await conn.execute(
            RECORD_RUN,
            {
                "dealer": dealer_id,
                "trigger": trigger,
                "started_at": started_at,
                "history_days": options.history_days,
                "stores": len(inputs.store_ids),
                "pairs": run.pairs,
                "orders": run.orders_created,
                "lines": run.lines,
                "units": run.units,
                "by_reason": Jsonb(run.by_reason),
                "order_ids": run.order_ids,
            },
        )
        recorded = await cur.fetchone()
        assert recorded is not None
    seconds = time.perf_counter() - started
    logger.info(
        "planned dealer %s: %d pairs, %d orders in %.3f s",
        dealer_id, run.pairs, run.orders_created, seconds,
    )  # fmt: skip
    return DealerRun(
        dealer_id=dealer_id,
        run_id=int(recorded[0]),
        stores=len(inputs.store_ids),
        pairs=run.pairs,
        orders_created=run.orders_created,
        lines=run.lines,
        units=run.units,
        expedited_orders=run.expedited_orders,
        held_stores=run.held_stores,
        lanes_unknown=inputs.lanes_unknown,
        by_reason=run.by_reason,
        order_ids=run.order_ids,
        seconds=seconds,
    )


async def _plan_and_order(
    conn: Connection, inputs: DealerInputs, now: datetime, options: PlanningOptions
) -> DealerRun:
    rejected = int(inputs.rejected_recently.sum())
    planned = _without_pairs(inputs, inputs.rejected_recently)
    by_reason: Counter[str] = Counter()
    if rejected:
        by_reason["rejected_recently"] = rejected
    if planned.pair_count == 0:
        return DealerRun(dealer_id=inputs.dealer_id, pairs=rejected, by_reason=dict(by_reason))
    result = plan(
        planned.stores,
        planned.skus,
        planned.pairs,
        planned.weekdays,
        horizon_start_weekday=planned.horizon_start_weekday,
        settings=options.settings,
    )
    codes, counts = np.unique(result.reason, return_counts=True)
    by_reason.update({Reason(int(c)).label: int(n) for c, n in zip(codes, counts, strict=True)})
    proposals = propose_orders(planned, result)
    if proposals.dropped_below_minimum:
        by_reason["dropped_below_minimum"] = proposals.dropped_below_minimum

    order_ids: list[int] = []
    lines = units = expedited = 0
    for new in proposals.orders:
        try:
            # A savepoint per order: one order the master data refuses (a SKU
            # priced in another currency, say) does not cost the dealer the rest.
            async with conn.transaction():
                order = await create_order(conn, new, Actor.system())
        except InvalidOrder as exc:
            logger.warning("order for store %s refused: %s", new.store_id, exc)
            by_reason["refused_orders"] += 1
            continue
        order_ids.append(order.order_id)
        lines += len(order.lines)
        units += sum(line.quantity for line in order.lines)
        expedited += order.expedite
    for hold in proposals.holds:
        await _announce_hold(conn, inputs.dealer_id, hold, now)
    return DealerRun(
        dealer_id=inputs.dealer_id,
        pairs=planned.pair_count + rejected,
        orders_created=len(order_ids),
        lines=lines,
        units=units,
        expedited_orders=expedited,
        held_stores=len(proposals.holds),
        by_reason=dict(sorted(by_reason.items())),
        order_ids=order_ids,
    )


async def _announce_hold(conn: Connection, dealer_id: str, hold: StoreHold, now: datetime) -> None:
    # Once per alarm episode: the key names the events that raised the alarms,
    # so the runs that follow while it stands add nothing.
    episode = "+".join(sorted(alarm.event_key for alarm in hold.alarms))
    evidence = {
        "reason": Reason.HELD_COLD_CHAIN_ALARM.label,
        "store_id": hold.store_id,
        "gtins": hold.gtins,
        "alarms": [
            {"device": a.device, "alarm": a.alarm, "since": a.since.isoformat()}
            for a in hold.alarms
        ],
        "message": hold.describe(),
        "planned_at": now.isoformat(),
    }
    await conn.execute(
        HOLD_ALERT,
        {
            "dealer": dealer_id,
            "store": hold.store_id,
            "evidence": Jsonb(evidence),
            "key": f"hold:{hold.store_id}:{episode}",
        },
    )


def _without_pairs(inputs: DealerInputs, drop: np.ndarray[Any, np.dtype[np.bool_]]) -> DealerInputs:
    """The inputs without the pairs in ``drop`` (they take no part in fair share)."""
    if not drop.any():
        return inputs
    keep = ~drop
    p = inputs.pairs
    pairs = PairInputs(
        store=p.store[keep], sku=p.sku[keep], history=p.history[keep],
        on_shelf=p.on_shelf[keep], backroom=p.backroom[keep], in_transit=p.in_transit[keep],
        stockout_risk=p.stockout_risk[keep], fridge_alarm=p.fridge_alarm[keep],
    )  # fmt: skip
    return replace(inputs, pairs=pairs, rejected_recently=inputs.rejected_recently[keep])
