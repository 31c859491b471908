"""Alerts (channel control and later checks write them): a dealer sees its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from pydantic import BaseModel

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

_ALERT = "alert_id, dealer_id, store_id, kind, severity, evidence, created_at, resolved_at"


class Alert(BaseModel):
    """Something a check concluded, with the evidence it rests on."""

    alert_id: int
    dealer_id: str | None
    store_id: str | None
    kind: str
    severity: str
    evidence: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None


@router.get("/alerts", summary="List alerts, newest first", response_model=Page[Alert])
async def alerts(
    conn: ConnDep, caller: CallerDep, cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_LIMIT
) -> Page[Alert]:
    """The caller's dealer's alerts; operators see all, brand-only ones included."""
    async with conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_ALERT} FROM alerts"
            " WHERE (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)"
            " AND (%(before)s::bigint IS NULL OR alert_id < %(before)s)"
            " ORDER BY alert_id DESC LIMIT %(limit)s",
            {"dealer": caller.dealer_id, "before": decode_int_cursor(cursor), "limit": limit + 1},
        )
        found = await cur.fetchall()
    return page_of(found, lambda a: a.alert_id, limit)


@router.get(
    "/alerts/{alert_id}", summary="One alert", response_model=Alert,
    responses=problem_responses(404),
)  # fmt: skip
async def alert(conn: ConnDep, caller: CallerDep, alert_id: int) -> Alert:
    async with conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_ALERT} FROM alerts WHERE alert_id = %(alert)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"alert": alert_id, "dealer": caller.dealer_id},
        )
        found = await cur.fetchone()
    if found is None:
        raise Problem(404, "not-found", f"no alert {alert_id}")
    return found
