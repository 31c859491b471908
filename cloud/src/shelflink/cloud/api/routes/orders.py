"""Orders: list, read (with an ETag), create (operators), move through the workflow
(with If-Match), and their audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shelflink.cloud.api.auth import CallerDep, OperatorDep, actor_of
from shelflink.cloud.api.deps import ConnDep
from shelflink.cloud.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    decode_int_cursor,
    page_of,
)
from shelflink.cloud.api.problems import Problem, problem_responses
from shelflink.cloud.api.routes import make_router
from shelflink.cloud.orders import (
    InvalidOrder,
    OrderNotFound,
    StaleOrder,
    create_order,
    get_order,
    list_orders,
    order_history,
    transition_order,
)
from shelflink.cloud.orders_models import NewOrder, Order, OrderTransition
from shelflink.cloud.orders_workflow import IllegalTransition, OrderState

router = make_router("orders")


class TransitionRequest(BaseModel):
    """Move an order to another state."""

    model_config = ConfigDict(extra="forbid")
    to: OrderState = Field(description="the target state")
    note: str = Field(default="", max_length=2000, description="why; kept in the history")


def etag(order: Order) -> str:
    """The order's ETag: a strong validator that changes with every transition."""
    return f'"{order.order_id}.{order.version}"'


def _matches(if_match: str, current: Order) -> bool:
    """Whether If-Match names the order's current ETag (strong comparison, RFC 9110:
    a weak tag never matches, and neither does ``*``, which names no version)."""
    return etag(current) in (tag.strip() for tag in if_match.split(","))


def _not_found(order_id: int) -> Problem:
    return Problem(404, "not-found", f"no order {order_id}")


@router.get("/orders", summary="List orders, newest first", response_model=Page[Order])
async def orders(
    conn: ConnDep,
    caller: CallerDep,
    state: Annotated[OrderState | None, Query(description="only orders in this state")] = None,
    store_id: Annotated[str | None, Query(description="only this store's orders")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[Order]:
    """The caller's dealer's orders (every dealer's for an operator), keyset-paginated."""
    found = await list_orders(
        conn,
        dealer_id=caller.dealer_id,
        state=state,
        store_id=store_id,
        before=decode_int_cursor(cursor),
        limit=limit + 1,
    )
    return page_of(found, lambda o: o.order_id, limit)


@router.post(
    "/orders", summary="Create an order (operators)", response_model=Order, status_code=201,
    responses=problem_responses(403),
)  # fmt: skip
async def post_order(
    conn: ConnDep, operator: OperatorDep, new: NewOrder, request: Request, response: Response
) -> Order:
    """Created `suggested`, or `approved` at once when its value is under the dealer's
    auto-approval threshold."""
    try:
        order = await create_order(conn, new, actor_of(operator))
    except InvalidOrder as exc:
        raise Problem(422, "order-refused", str(exc), title="Order refused") from exc
    response.headers["ETag"] = etag(order)
    response.headers["Location"] = str(request.url_for("order", order_id=order.order_id).path)
    return order


@router.get(
    "/orders/{order_id}", summary="One order", response_model=Order, name="order",
    responses=problem_responses(404),
)  # fmt: skip
async def order(conn: ConnDep, caller: CallerDep, order_id: int, response: Response) -> Order:
    """The `ETag` header is what a transition's `If-Match` must send."""
    found = await get_order(conn, order_id, dealer_id=caller.dealer_id)
    if found is None:
        raise _not_found(order_id)
    response.headers["ETag"] = etag(found)
    return found


@router.post(
    "/orders/{order_id}/transitions", summary="Move an order through the workflow",
    response_model=Order, responses=problem_responses(404, 409, 412, 428),
)  # fmt: skip
async def post_transition(
    conn: ConnDep,
    caller: CallerDep,
    order_id: int,
    body: TransitionRequest,
    response: Response,
    if_match: Annotated[
        str | None, Header(description="the order's current ETag (required)")
    ] = None,
) -> Order:
    """Refused with 409 when the workflow does not allow the move, 412 when the order
    changed since the ETag was read, 428 without If-Match."""
    current = await get_order(conn, order_id, dealer_id=caller.dealer_id)
    if current is None:
        raise _not_found(order_id)
    if not if_match:
        raise Problem(
            428, "if-match-required", "send If-Match with the order's ETag (GET the order first)"
        )
    if not _matches(if_match, current):
        raise Problem(
            412,
            "precondition-failed",
            f"the order's ETag is {etag(current)}, not {if_match}: read it again",
        )
    try:
        # expected_version guards the moment between the read above and the update.
        moved = await transition_order(
            conn,
            order_id,
            body.to,
            actor_of(caller),
            note=body.note,
            expected_version=current.version,
            dealer_id=caller.dealer_id,
        )
    except OrderNotFound as exc:
        raise _not_found(order_id) from exc
    except StaleOrder as exc:
        raise Problem(412, "precondition-failed", str(exc)) from exc
    except IllegalTransition as exc:
        raise Problem(409, "illegal-transition", str(exc), title="Illegal transition") from exc
    response.headers["ETag"] = etag(moved)
    return moved


@router.get(
    "/orders/{order_id}/history", summary="An order's audit trail",
    response_model=list[OrderTransition], responses=problem_responses(404),
)  # fmt: skip
async def history(conn: ConnDep, caller: CallerDep, order_id: int) -> list[OrderTransition]:
    """Every state the order entered, oldest first: who, when and why."""
    try:
        return await order_history(conn, order_id, dealer_id=caller.dealer_id)
    except OrderNotFound as exc:
        raise _not_found(order_id) from exc
