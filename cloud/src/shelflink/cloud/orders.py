"""Orders in PostgreSQL: creation (with auto-approval), checked transitions, the audit
trail, the outbox, and delivery into the store's backroom stock.

Every change happens in one transaction with its audit row (``order_transitions``)
and its outbox event (``order_events``): an order never moves without both, and
the webhook sender, reading the outbox, never announces a change that rolled
back. A ``dealer_id`` argument restricts the call to that dealer's orders; the
API passes the caller's dealer, an operator passes None.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.master_data import get_skus
from shelflink.cloud.master_data_models import StockLevel
from shelflink.cloud.orders_models import Actor, NewOrder, Order, OrderLine, OrderTransition
from shelflink.cloud.orders_workflow import OrderState, auto_approves, check_transition

__all__ = [
    "InvalidOrder",
    "OrderNotFound",
    "StaleOrder",
    "backroom_stock",
    "create_order",
    "get_order",
    "list_orders",
    "order_history",
    "transition_order",
]

EVENT_CREATED = "order.created"
EVENT_STATE_CHANGED = "order.state_changed"

_ORDER = (
    "order_id, dealer_id, store_id, state, reason, expedite, value_minor, currency,"
    " version, created_at, updated_at"
)


class InvalidOrder(ValueError):
    """A new order the master data does not allow (unknown store or SKU, wrong quantity)."""


class OrderNotFound(LookupError):
    """No such order (or not one of the caller's dealer)."""


class StaleOrder(RuntimeError):
    """The order changed since the caller read it (its version is not the one expected)."""

    def __init__(self, order_id: int, expected: int, current: int) -> None:
        super().__init__(f"order {order_id} is at version {current}, not {expected}: read it again")
        self.current = current


async def create_order(conn: Connection, new: NewOrder, actor: Actor) -> Order:
    """Create an order for the store's dealer, approving it at once under the dealer's
    auto-approval threshold; returns it as stored."""
    async with transaction(conn):
        cur = await conn.execute(
            "SELECT s.dealer_id, d.currency, d.auto_approve_below_minor"
            " FROM stores s JOIN dealers d USING (dealer_id) WHERE s.store_id = %s",
            (new.store_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise InvalidOrder(f"no store {new.store_id}")
        dealer_id, dealer_currency, threshold = row
        lines, value, currency = await _priced_lines(conn, new)
        cur = await conn.execute(
            "INSERT INTO orders (dealer_id, store_id, state, reason, expedite, value_minor,"
            " currency) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING order_id",
            (dealer_id, new.store_id, OrderState.SUGGESTED, new.reason, new.expedite, value,
             currency),
        )  # fmt: skip
        created = await cur.fetchone()
        assert created is not None
        order_id: int = created[0]
        async with conn.cursor() as lines_cur:
            await lines_cur.executemany(
                "INSERT INTO order_lines (order_id, line_no, gtin, quantity, unit_price_minor)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(order_id, *line) for line in lines],
            )
        await _audit(conn, order_id, None, OrderState.SUGGESTED, actor, "")
        order = await get_order(conn, order_id)
        assert order is not None
        await _announce(conn, order, EVENT_CREATED, None, actor)
        if currency == dealer_currency and auto_approves(value, threshold):
            note = f"auto-approved: value {value} {currency} is below the threshold {threshold}"
            order = await transition_order(
                conn, order_id, OrderState.APPROVED, Actor.system(), note=note
            )
    return order


async def _priced_lines(
    conn: Connection, new: NewOrder
) -> tuple[list[tuple[int, str, int, int]], int, str]:
    gtins = [line.gtin for line in new.lines]
    if len(set(gtins)) != len(gtins):
        raise InvalidOrder("a GTIN appears on two lines; put the quantity on one")
    skus = await get_skus(conn, gtins)
    priced: list[tuple[int, str, int, int]] = []
    currencies: set[str] = set()
    for line_no, line in enumerate(new.lines, start=1):
        sku = skus.get(line.gtin)
        if sku is None:
            raise InvalidOrder(f"line {line_no}: no SKU {line.gtin}")
        if line.quantity < sku.min_order_units or line.quantity % sku.case_pack:
            raise InvalidOrder(
                f"line {line_no}: {line.quantity} units of {line.gtin} is not whole cases of "
                f"{sku.case_pack} of at least {sku.min_order_units} units"
            )
        price = sku.list_price_minor if line.unit_price_minor is None else line.unit_price_minor
        priced.append((line_no, line.gtin, line.quantity, price))
        currencies.add(sku.currency)
    if len(currencies) != 1:
        raise InvalidOrder(f"the SKUs are priced in several currencies: {sorted(currencies)}")
    value = sum(quantity * price for _, _, quantity, price in priced)
    return priced, value, currencies.pop()


async def transition_order(
    conn: Connection,
    order_id: int,
    target: OrderState,
    actor: Actor,
    *,
    note: str = "",
    expected_version: int | None = None,
    dealer_id: str | None = None,
    received_at: datetime | None = None,
) -> Order:
    """Move an order to ``target`` if the workflow allows it from where it is.

    Raises :class:`OrderNotFound`, :class:`StaleOrder` (``expected_version`` given
    and not current) or ``IllegalTransition``; nothing is written then. Shipping
    takes the lines out of the dealer's warehouse stock, and delivery books them
    into the store's backroom stock, each in the same transaction; delivery at
    ``received_at`` (when the goods arrived; default: now) — the planner orders
    receipts and restocks by that time, so a delivery recorded late must carry it.
    """
    async with transaction(conn):
        # FOR UPDATE: two callers moving the same order queue here, and the second
        # sees the first one's state and version.
        cur = await conn.execute(
            "SELECT state, version FROM orders WHERE order_id = %(order)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s) FOR UPDATE",
            {"order": order_id, "dealer": dealer_id},
        )
        row = await cur.fetchone()
        if row is None:
            raise OrderNotFound(f"no order {order_id}")
        current, version = OrderState(row[0]), row[1]
        if expected_version is not None and expected_version != version:
            raise StaleOrder(order_id, expected_version, version)
        check_transition(current, target)
        await conn.execute(
            "UPDATE orders SET state = %s, version = version + 1, updated_at = now()"
            " WHERE order_id = %s",
            (target, order_id),
        )
        await _audit(conn, order_id, current, target, actor, note)
        if target == OrderState.SHIPPED:
            await _take_from_warehouse(conn, order_id)
        if target == OrderState.DELIVERED:
            await _receive_into_backroom(conn, order_id, received_at)
        order = await get_order(conn, order_id)
        assert order is not None
        await _announce(conn, order, EVENT_STATE_CHANGED, current, actor, note)
    return order


async def _audit(
    conn: Connection,
    order_id: int,
    current: OrderState | None,
    target: OrderState,
    actor: Actor,
    note: str,
) -> None:
    await conn.execute(
        "INSERT INTO order_transitions (order_id, from_state, to_state, actor_kind,"
        " actor_key_id, actor_dealer_id, note) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (order_id, current, target, actor.kind, actor.key_id, actor.dealer_id, note),
    )


async def _announce(
    conn: Connection,
    order: Order,
    event_type: str,
    previous: OrderState | None,
    actor: Actor,
    note: str = "",
) -> None:
    payload: dict[str, Any] = {
        "order_id": order.order_id,
        "store_id": order.store_id,
        "state": order.state,
        "previous_state": previous,
        "version": order.version,
        "value_minor": order.value_minor,
        "currency": order.currency,
        "actor": actor.kind,
        "note": note,
        "at": order.updated_at.isoformat(),
    }
    await conn.execute(
        "INSERT INTO order_events (order_id, dealer_id, type, payload) VALUES (%s, %s, %s, %s)",
        (order.order_id, order.dealer_id, event_type, Jsonb(payload)),
    )


async def _take_from_warehouse(conn: Connection, order_id: int) -> None:
    # Until shipped, the planner counts these units as promised (reported stock
    # minus unshipped orders); once shipped they must leave the reported stock,
    # or the planner would offer them again before the dealer's next stock report.
    # Only SKUs the dealer reports at all: no row means "not limited", and
    # shipping must not invent a limit. Never below zero: the dealer may have
    # shipped from stock it had not reported yet.
    await conn.execute(
        """
        UPDATE dealer_stock ds
        SET units = greatest(ds.units - shipped.units, 0), updated_at = now()
        FROM (SELECT o.dealer_id, l.gtin, sum(l.quantity) AS units
              FROM orders o JOIN order_lines l USING (order_id)
              WHERE o.order_id = %(order)s GROUP BY o.dealer_id, l.gtin) shipped
        WHERE ds.dealer_id = shipped.dealer_id AND ds.gtin = shipped.gtin
        """,
        {"order": order_id},
    )


async def _receive_into_backroom(
    conn: Connection, order_id: int, received_at: datetime | None
) -> None:
    # One statement: the receipt rows and the stock they add, from the order's lines.
    await conn.execute(
        """
        WITH received AS (
            INSERT INTO backroom_receipts (store_id, gtin, units, order_id, received_at)
            SELECT o.store_id, l.gtin, l.quantity, o.order_id,
                coalesce(%(at)s::timestamptz, now())
            FROM orders o JOIN order_lines l USING (order_id)
            WHERE o.order_id = %(order)s
            RETURNING store_id, gtin, units
        )
        INSERT INTO backroom_stock (store_id, gtin, units)
        SELECT store_id, gtin, sum(units) FROM received GROUP BY store_id, gtin
        ORDER BY store_id, gtin
        ON CONFLICT (store_id, gtin) DO UPDATE
            SET units = backroom_stock.units + excluded.units, updated_at = now()
        """,
        {"order": order_id, "at": received_at},
    )


async def get_order(
    conn: Connection, order_id: int, *, dealer_id: str | None = None
) -> Order | None:
    """One order with its lines, or None (also when it is another dealer's)."""
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_ORDER} FROM orders WHERE order_id = %(order)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"order": order_id, "dealer": dealer_id},
        )
        row = await cur.fetchone()
        if row is None:
            return None
        lines = await _lines(conn, [order_id])
    return Order(**row, lines=lines.get(order_id, []))


async def list_orders(
    conn: Connection,
    *,
    dealer_id: str | None = None,
    state: OrderState | None = None,
    store_id: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Order]:
    """Orders newest first, those with ``order_id < before`` (keyset), at most ``limit``.

    Each filter combination has an index leading with its equality columns and
    ending in ``order_id``, so a page costs one index range scan at any depth.
    """
    conditions = ["true"]
    params: dict[str, Any] = {"limit": limit}
    for column, value in (("dealer_id", dealer_id), ("state", state), ("store_id", store_id)):
        if value is not None:
            conditions.append(f"{column} = %({column})s")
            params[column] = value
    if before is not None:
        conditions.append("order_id < %(before)s")
        params["before"] = before
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_ORDER} FROM orders WHERE {' AND '.join(conditions)}"
            " ORDER BY order_id DESC LIMIT %(limit)s",
            params,
        )
        rows = await cur.fetchall()
        lines = await _lines(conn, [row["order_id"] for row in rows])
    return [Order(**row, lines=lines.get(row["order_id"], [])) for row in rows]


async def _lines(conn: Connection, order_ids: Sequence[int]) -> dict[int, list[OrderLine]]:
    if not order_ids:
        return {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT order_id, line_no, gtin, quantity, unit_price_minor FROM order_lines"
            " WHERE order_id = ANY(%s) ORDER BY order_id, line_no",
            (list(order_ids),),
        )
        found: dict[int, list[OrderLine]] = {}
        for row in await cur.fetchall():
            found.setdefault(row.pop("order_id"), []).append(OrderLine(**row))
    return found


async def order_history(
    conn: Connection, order_id: int, *, dealer_id: str | None = None
) -> list[OrderTransition]:
    """The order's audit trail, oldest first; OrderNotFound when it is not the caller's."""
    async with transaction(conn), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT 1 FROM orders WHERE order_id = %(order)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"order": order_id, "dealer": dealer_id},
        )
        if await cur.fetchone() is None:
            raise OrderNotFound(f"no order {order_id}")
        await cur.execute(
            "SELECT transition_id, from_state, to_state, actor_kind, actor_key_id,"
            " actor_dealer_id, note, at FROM order_transitions WHERE order_id = %s"
            " ORDER BY transition_id",
            (order_id,),
        )
        return [OrderTransition(**row) for row in await cur.fetchall()]


async def backroom_stock(conn: Connection, store_id: str) -> list[StockLevel]:
    """What deliveries booked into the store's backroom, by GTIN."""
    async with transaction(conn), conn.cursor(row_factory=class_row(StockLevel)) as cur:
        await cur.execute(
            "SELECT gtin, units FROM backroom_stock WHERE store_id = %s ORDER BY gtin",
            (store_id,),
        )
        return await cur.fetchall()
