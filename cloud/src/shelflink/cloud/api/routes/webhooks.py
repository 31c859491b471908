"""Webhooks: a dealer registers endpoints for its orders' events (the signing secret
is answered once), lists, reads and deletes them, and reads each one's delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response

from shelflink.cloud.api.auth import CallerDep
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
from shelflink.cloud.webhooks import (
    UnknownDealer,
    WebhookNotFound,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_deliveries,
    list_webhooks,
)
from shelflink.cloud.webhooks_models import Delivery, Webhook, WebhookCreate, WebhookCreated

router = make_router("webhooks")

WebhookId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _not_found(webhook_id: int) -> Problem:
    return Problem(404, "not-found", f"no webhook {webhook_id}")


@router.post(
    "/webhooks", summary="Register a webhook endpoint", response_model=WebhookCreated,
    status_code=201, responses=problem_responses(404),
)  # fmt: skip
async def post_webhook(
    conn: ConnDep, caller: CallerDep, new: WebhookCreate, request: Request, response: Response
) -> WebhookCreated:
    """The answer carries the endpoint's signing `secret`, which is never shown again.
    A dealer key registers for its own dealer; an operator names `dealer_id`."""
    dealer_id = new.dealer_id if caller.is_operator else caller.dealer_id
    if dealer_id is None:
        raise Problem(422, "validation", "an operator must name the endpoint's dealer_id")
    if new.dealer_id is not None and new.dealer_id != dealer_id:
        # As for every other object of another dealer: it is not found.
        raise Problem(404, "not-found", f"no dealer {new.dealer_id}")
    try:
        created = await create_webhook(conn, dealer_id, new)
    except UnknownDealer as exc:
        raise Problem(404, "not-found", str(exc)) from exc
    response.headers["Location"] = str(
        request.url_for("webhook", webhook_id=created.webhook_id).path
    )
    return created


@router.get("/webhooks", summary="List webhook endpoints", response_model=list[Webhook])
async def webhooks(conn: ConnDep, caller: CallerDep) -> list[Webhook]:
    """A dealer's own endpoints; every dealer's for an operator. Secrets are not shown."""
    return await list_webhooks(conn, dealer_id=caller.dealer_id)


@router.get(
    "/webhooks/{webhook_id}", summary="One webhook endpoint", response_model=Webhook,
    name="webhook", responses=problem_responses(404),
)  # fmt: skip
async def webhook(conn: ConnDep, caller: CallerDep, webhook_id: WebhookId) -> Webhook:
    found = await get_webhook(conn, webhook_id, dealer_id=caller.dealer_id)
    if found is None:
        raise _not_found(webhook_id)
    return found


@router.delete(
    "/webhooks/{webhook_id}", summary="Delete a webhook endpoint", status_code=204,
    responses=problem_responses(404),
)  # fmt: skip
async def delete(conn: ConnDep, caller: CallerDep, webhook_id: WebhookId) -> Response:
    """Pending deliveries are dropped with it, and its log."""
    if not await delete_webhook(conn, webhook_id, dealer_id=caller.dealer_id):
        raise _not_found(webhook_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries", summary="A webhook endpoint's delivery log",
    response_model=Page[Delivery], responses=problem_responses(404),
)  # fmt: skip
async def deliveries(
    conn: ConnDep,
    caller: CallerDep,
    webhook_id: WebhookId,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[Delivery]:
    """Newest event first: each delivery's state and every attempt (status code or
    error, latency, when the next retry is due)."""
    try:
        found = await list_deliveries(
            conn,
            webhook_id,
            dealer_id=caller.dealer_id,
            before=decode_int_cursor(cursor),
            limit=limit + 1,
        )
    except WebhookNotFound as exc:
        raise _not_found(webhook_id) from exc
    return page_of(found, lambda d: d.event_id, limit)
