"""The demo's dealers: they work each order through the real workflow and deliver the
goods into the simulated stores.

A :class:`DemoDealer` looks at the orders of the demo's stores every
``poll_s`` wall seconds. It approves a suggestion (an order the system has not
auto-approved), picks, ships and delivers, each after a delay in *simulated*
minutes since the order reached its state, so that a demo at any speed shows
a dealer who takes hours, not milliseconds. Every move is
``orders.transition_order`` with a dealer :class:`Actor` (the dealer's demo
API key), so the audit trail and the webhook outbox are the real ones; the
version read is the one expected, so an order a person moves through the API
at the same moment is left to that person. Shipping takes the goods out of
the dealer's reported warehouse stock and delivery books them into the
store's backroom in the cloud (the workflow does both); delivery also hands
the units to the simulated store, whose next staff round puts them on the
lanes.

It also reports every change it sees (new orders from the planner, moves a
person made through the API) as an :class:`OrderMove` for the demo's view.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import psycopg

from shelflink.cloud.database import Connection, connect
from shelflink.cloud.orders import (
    OrderNotFound,
    StaleOrder,
    get_order,
    list_orders,
    order_history,
    transition_order,
)
from shelflink.cloud.orders_models import Actor, Order
from shelflink.cloud.orders_workflow import IllegalTransition, OrderState

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
RECENT = 50  # moves kept for the view
OPEN = (OrderState.SUGGESTED, OrderState.APPROVED, OrderState.PICKING, OrderState.SHIPPED)
PAGE = 200
DEMO_DEALER = "demo dealer"  # how the view names the dealer's own moves


@dataclass(frozen=True, slots=True)
class DealerPace:
    """How long the dealer leaves an order in each state, in simulated minutes."""

    approve_min: float = 15.0
    pick_min: float = 20.0
    ship_min: float = 30.0
    # On the road. Shorter than the stores' one-day lead time so that a demo of
    # a minute or two shows deliveries; the planner still plans with the lead time.
    deliver_min: float = 90.0
    poll_s: float = 1.0  # wall seconds between two looks at the orders

    def wait_ms(self, state: OrderState) -> int:
        """Simulated milliseconds an order stays in ``state`` before the next move."""
        minutes = {
            OrderState.SUGGESTED: self.approve_min,
            OrderState.APPROVED: self.pick_min,
            OrderState.PICKING: self.ship_min,
            OrderState.SHIPPED: self.deliver_min,
        }[state]
        return round(minutes * MINUTE_MS)


NEXT_STATE: dict[OrderState, OrderState] = {
    OrderState.SUGGESTED: OrderState.APPROVED,
    OrderState.APPROVED: OrderState.PICKING,
    OrderState.PICKING: OrderState.SHIPPED,
    OrderState.SHIPPED: OrderState.DELIVERED,
}


@dataclass(frozen=True, slots=True)
class OrderMove:
    """An order seen in a new state: ``previous`` None when it is new to the dealer."""

    order_id: int
    store_id: str
    dealer_id: str
    previous: OrderState | None
    state: OrderState
    sim_ms: int
    actor: str  # DEMO_DEALER, or the audit trail's actor kind for changes made by others
    note: str
    lines: tuple[tuple[str, int], ...]  # (gtin, units)
    reason: str
    expedite: bool


class DeliveryDock(Protocol):
    """Where delivered goods go: the live run's stores."""

    def inject_delivery(
        self,
        store_id: str,
        units_by_gtin: Mapping[str, int],
        arrive_ms: int | None = None,
        ref: str | None = None,
    ) -> object: ...


class DemoDealer:
    """Works the orders of ``store_ids`` through the workflow, as their dealers would."""

    def __init__(
        self,
        dock: DeliveryDock,
        store_ids: Collection[str],
        sim_now_ms: Callable[[], int],
        *,
        actors: Mapping[str, Actor] | None = None,
        pace: DealerPace | None = None,
        after_order_id: int = 0,
    ) -> None:
        self.dock = dock
        self.store_ids = frozenset(store_ids)
        self.sim_now_ms = sim_now_ms
        self.actors = dict(actors or {})
        self.pace = pace or DealerPace()
        # Orders of earlier runs on the same database are not this run's business.
        self.after_order_id = after_order_id
        self.states: dict[int, OrderState] = {}
        self._since_ms: dict[int, int] = {}  # when the order was first seen in its state
        self.deliveries = 0
        self.units_delivered = 0
        self.recent: deque[OrderMove] = deque(maxlen=RECENT)
        self.moves_total = 0  # ever appended to recent: lets a view show only new ones

    @property
    def counts(self) -> dict[str, int]:
        """This run's orders by state."""
        return dict(sorted(Counter(str(s) for s in self.states.values()).items()))

    async def run(self, database_url: str) -> None:
        """Look at the orders every ``poll_s`` until cancelled."""
        async with await connect(database_url, application_name="shelflink-demo-dealer") as conn:
            while True:
                try:
                    await self.step(conn)
                except psycopg.OperationalError:
                    raise  # the database is gone: the demo is over
                except psycopg.Error:
                    # One bad look (a statement timeout, say) must not stop the dealer.
                    logger.exception("the demo dealer's look at the orders failed")
                await asyncio.sleep(self.pace.poll_s)

    async def step(self, conn: Connection) -> list[OrderMove]:
        """One look: note what changed, then make every move that is due."""
        now_ms = self.sim_now_ms()
        moves: list[OrderMove] = []
        open_orders = await self._open_orders(conn)
        seen = {order.order_id for order in open_orders}
        for order_id, state in list(self.states.items()):
            if state in OPEN and order_id not in seen:
                # Closed by someone else (rejected or cancelled through the API).
                closed = await get_order(conn, order_id)
                if closed is not None:
                    moves.append(await self._observed(conn, closed, now_ms))
        for order in open_orders:
            if self.states.get(order.order_id) != order.state:
                moves.append(await self._observed(conn, order, now_ms))
        for order in open_orders:
            if now_ms - self._since_ms[order.order_id] >= self.pace.wait_ms(order.state):
                move = await self._move(conn, order, NEXT_STATE[order.state], now_ms)
                if move is not None:
                    moves.append(move)
        for move in moves:
            self.recent.append(move)
            self.moves_total += 1
        return moves

    async def _open_orders(self, conn: Connection) -> list[Order]:
        found: list[Order] = []
        for state in OPEN:
            before: int | None = None
            while True:
                page = await list_orders(conn, state=state, before=before, limit=PAGE)
                found += [
                    o
                    for o in page
                    if o.order_id > self.after_order_id and o.store_id in self.store_ids
                ]
                if len(page) < PAGE or page[-1].order_id <= self.after_order_id:
                    break
                before = page[-1].order_id
        return sorted(found, key=lambda o: o.order_id)

    async def _observed(self, conn: Connection, order: Order, now_ms: int) -> OrderMove:
        """Record a state the dealer did not cause, with who caused it."""
        previous = self.states.get(order.order_id)
        self.states[order.order_id] = order.state
        self._since_ms[order.order_id] = now_ms
        try:
            history = await order_history(conn, order.order_id)
        except OrderNotFound:
            history = []
        last = history[-1] if history else None
        return _move_of(
            order, previous, now_ms, last.actor_kind if last else "", last.note if last else ""
        )

    async def _move(
        self, conn: Connection, order: Order, target: OrderState, now_ms: int
    ) -> OrderMove | None:
        actor = self.actors.get(order.dealer_id) or Actor(kind="dealer", dealer_id=order.dealer_id)
        try:
            moved = await transition_order(
                conn,
                order.order_id,
                target,
                actor,
                note=DEMO_DEALER,
                expected_version=order.version,
                dealer_id=order.dealer_id,
                # Booked at the simulated arrival: the planner runs on that clock.
                received_at=datetime.fromtimestamp(now_ms / 1000, tz=UTC)
                if target is OrderState.DELIVERED
                else None,
            )
        except (StaleOrder, IllegalTransition, OrderNotFound):
            # Someone moved it since we read it; the next look sees where it is.
            return None
        self.states[order.order_id] = moved.state
        self._since_ms[order.order_id] = now_ms
        if target is OrderState.DELIVERED:
            self._deliver(moved)
        return _move_of(moved, order.state, now_ms, DEMO_DEALER, DEMO_DEALER)

    def _deliver(self, order: Order) -> None:
        units: Counter[str] = Counter()
        for line in order.lines:
            units[line.gtin] += line.quantity
        try:
            self.dock.inject_delivery(order.store_id, units, ref=f"order-{order.order_id}")
        except (KeyError, ValueError) as exc:
            # An order entered by hand may name a SKU the simulated store does not stock.
            logger.warning("order %d not delivered into the simulation: %s", order.order_id, exc)
            return
        self.deliveries += 1
        self.units_delivered += sum(units.values())


def _move_of(
    order: Order, previous: OrderState | None, now_ms: int, actor: str, note: str
) -> OrderMove:
    return OrderMove(
        order_id=order.order_id,
        store_id=order.store_id,
        dealer_id=order.dealer_id,
        previous=previous,
        state=order.state,
        sim_ms=now_ms,
        actor=actor,
        note=note,
        lines=tuple((line.gtin, line.quantity) for line in order.lines),
        reason=order.reason,
        expedite=order.expedite,
    )


async def latest_order_id(conn: Connection) -> int:
    """The newest order's id (0 when there is none): a run's orders come after it."""
    orders = await list_orders(conn, limit=1)
    return orders[0].order_id if orders else 0
