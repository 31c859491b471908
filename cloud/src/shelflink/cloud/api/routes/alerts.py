"""Alerts (channel control and the planner write them): a dealer sees its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from shelflink.cloud.alerts import Alert, AlertKind, get_alert, list_alerts
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

router = make_router("alerts")


@router.get("/alerts", summary="List alerts, newest first", response_model=Page[Alert])
async def alerts(
    conn: ConnDep,
    caller: CallerDep,
    kind: Annotated[AlertKind | None, Query(description="only alerts of this kind")] = None,
    store_id: Annotated[str | None, Query(description="only this store's alerts")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[Alert]:
    """The caller's dealer's alerts; operators see all, brand-only ones included."""
    found = await list_alerts(
        conn,
        dealer_id=caller.dealer_id,
        kind=kind,
        store_id=store_id,
        before=decode_int_cursor(cursor),
        limit=limit + 1,
    )
    return page_of(found, lambda a: a.alert_id, limit)


@router.get(
    "/alerts/{alert_id}", summary="One alert", response_model=Alert,
    responses=problem_responses(404),
)  # fmt: skip
async def alert(conn: ConnDep, caller: CallerDep, alert_id: int) -> Alert:
    found = await get_alert(conn, alert_id, dealer_id=caller.dealer_id)
    if found is None:
        raise Problem(404, "not-found", f"no alert {alert_id}")
    return found
