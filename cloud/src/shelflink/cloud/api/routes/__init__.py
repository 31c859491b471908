"""The dealer API's routers, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from shelflink.cloud.api.idempotency import IdempotentRoute
from shelflink.cloud.api.problems import problem_responses


def make_router(tag: str) -> APIRouter:
    """A router of the API: idempotent POSTs, and the errors every route may answer."""
    return APIRouter(
        tags=[tag],
        route_class=IdempotentRoute,
        # 400: a body that does not parse, a cursor or an Idempotency-Key not ours.
        responses=problem_responses(400, 401, 422, 429),
    )
