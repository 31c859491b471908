"""From one dealer's plan to the orders to suggest: one order per store, a line per SKU.

Pure: no I/O. A store's order is one delivery, so the planner's lines for a
store become one ``NewOrder``; its ``reason`` tells the dealer why in a line
of text (the main reason, expedited lines, and chilled goods held back by a
fridge alarm), within the 200 characters an order's reason may hold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from shelflink.cloud.orders_models import NewOrder, NewOrderLine
from shelflink.cloud.planning import Reason, ReplenishmentPlan
from shelflink.cloud.planning.inputs import IntArray
from shelflink.cloud.replenishment_inputs import ColdChainAlarm, DealerInputs

REASON_MAX_CHARS = 200


@dataclass(frozen=True, slots=True)
class StoreHold:
    """Cold-chain SKUs of a store held back because a fridge there is in alarm."""

    store_id: str
    gtins: list[str]
    alarms: list[ColdChainAlarm]

    def describe(self) -> str:
        """The hold in the words the dealer reads on the order or the alert."""
        alarms = ", ".join(f"{a.alarm} on {a.device}" for a in self.alarms)
        return f"held {len(self.gtins)} cold-chain SKUs: cold-chain alarm {alarms}"


@dataclass(frozen=True, slots=True)
class OrderProposals:
    """What one dealer's plan asks the orders module to create."""

    orders: list[NewOrder]
    holds: list[StoreHold]
    # Lines below the SKU's minimum order line, which an order may not carry.
    # Fair share allocates none (a store gets nothing or at least the
    # minimum), so this stays 0: it is a guard that makes a broken plan
    # visible in the run's counts instead of a refused order.
    dropped_below_minimum: int


def propose_orders(inputs: DealerInputs, result: ReplenishmentPlan) -> OrderProposals:
    """One suggested order per store that gets anything, and the holds to announce."""
    quantity = result.quantity
    sku = np.asarray(inputs.pairs.sku, dtype=np.int64)
    store = np.asarray(inputs.pairs.store, dtype=np.int64)
    minimum = np.asarray(inputs.skus.min_order_units, dtype=np.int64)[sku]
    ordered = quantity > 0
    orderable = ordered & (quantity >= minimum)
    held = result.reason == Reason.HELD_COLD_CHAIN_ALARM

    holds = [
        StoreHold(
            store_id=inputs.store_ids[s],
            gtins=[inputs.gtins[k] for k in sku[pairs]],
            alarms=inputs.cold_chain_alarms.get(s, []),
        )
        for s, pairs in _by_store(store, np.flatnonzero(held))
    ]
    hold_by_store = {hold.store_id: hold for hold in holds}

    orders: list[NewOrder] = []
    for s, mine in _by_store(store, np.flatnonzero(orderable)):
        store_id = inputs.store_ids[s]
        reasons = Counter(Reason(int(code)).label for code in result.reason[mine])
        expedite = bool(result.expedite[mine].any())
        orders.append(
            NewOrder(
                store_id=store_id,
                lines=[
                    NewOrderLine(gtin=inputs.gtins[sku[p]], quantity=int(quantity[p])) for p in mine
                ],
                reason=order_reason(reasons, hold_by_store.get(store_id)),
                expedite=expedite,
            )
        )
    return OrderProposals(
        orders=orders,
        holds=holds,
        dropped_below_minimum=int((ordered & ~orderable).sum()),
    )


def _by_store(store: IntArray, pairs: IntArray) -> list[tuple[int, IntArray]]:
    """``(store index, its pairs)`` for the given pairs, which are ordered by store."""
    if pairs.size == 0:
        return []
    stores, first = np.unique(store[pairs], return_index=True)
    return [(int(s), run) for s, run in zip(stores, np.split(pairs, first[1:]), strict=True)]


def order_reason(reasons: Counter[str], hold: StoreHold | None) -> str:
    """``expedite: 1 of 3 lines for a stock-out risk; …`` — the main reason first.

    The main reason is the most urgent one on the order: a stock-out risk,
    then a line the warehouse could not fill, then a plain reorder.
    """
    total = sum(reasons.values())
    main = next((label for label in ("expedite", "allocated_short", "ok") if reasons[label]), "ok")
    parts = [f"{label} {count}" for label, count in sorted(reasons.items())]
    text = f"{main}: {total} lines ({', '.join(parts)})"
    if hold is not None:
        text += f"; {hold.describe()}"
    if len(text) > REASON_MAX_CHARS:
        text = text[: REASON_MAX_CHARS - 1] + "…"
    return text
