"""Alerts: what the cloud's checks concluded, with the evidence, read by dealer scope.

Channel control (``channel_control.py``) writes ``diversion`` and ``price``
alerts, the planner ``replenishment_hold``. A dealer sees the alerts
addressed to it; a brand operator (``dealer_id`` None) sees every alert,
brand-only ones included.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg.rows import class_row
from pydantic import BaseModel

from shelflink.cloud.database import Connection, transaction


class AlertKind(StrEnum):
    DIVERSION = "diversion"  # a unit shipped to one dealer sold in another dealer's store
    PRICE = "price"  # sold below the SKU's minimum resale price
    REPLENISHMENT_HOLD = "replenishment_hold"  # chilled goods held back by a fridge alarm


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


_COLUMNS = "alert_id, dealer_id, store_id, kind, severity, evidence, created_at, resolved_at"


async def list_alerts(
    conn: Connection,
    *,
    dealer_id: str | None,
    kind: AlertKind | None = None,
    store_id: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Alert]:
    """Alerts newest first, ``alert_id < before`` (keyset paging); ``dealer_id`` None
    means every dealer's and the brand's own."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM alerts"
            " WHERE (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)"
            " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
            " AND (%(store)s::text IS NULL OR store_id = %(store)s)"
            " AND (%(before)s::bigint IS NULL OR alert_id < %(before)s)"
            " ORDER BY alert_id DESC LIMIT %(limit)s",
            {
                "dealer": dealer_id,
                "kind": None if kind is None else kind.value,
                "store": store_id,
                "before": before,
                "limit": limit,
            },
        )
        return await cur.fetchall()


async def get_alert(conn: Connection, alert_id: int, *, dealer_id: str | None) -> Alert | None:
    """One alert, if it exists and ``dealer_id`` (None: any) may see it."""
    async with transaction(conn), conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = %(alert)s"
            " AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"alert": alert_id, "dealer": dealer_id},
        )
        return await cur.fetchone()
