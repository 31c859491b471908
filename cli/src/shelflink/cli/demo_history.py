"""Weeks of sales history for simulated stores, as a brand would import them from the
stores' tills when it brings the stores onto the platform.

The planner forecasts from the last 28 whole days of sales; a live demo runs
for minutes of simulated hours, so without a history its forecasts would be
zero and it would order nothing but expedites. The history is drawn from the
simulator's own demand model for each store (the expected units per lane and
day, the day-of-week factor, Poisson noise), so the forecast matches what the
live store then sells.

The rows are daily totals per SKU (``qty`` is the day's units, no serial), on
a device of their own, ``<store>-pos-history``, so they never mix with a live
till's sequence numbers and ``verify`` never counts them. They are a pure
function of the seed, the store and the day, and go in with ``ON CONFLICT DO
NOTHING`` on the sales key: importing the same days again adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from shelflink.cli.demo_seed import expected_units_by_sku
from shelflink.cloud.database import Connection, transaction
from shelflink.sim.layout import StoreLayout
from shelflink.sim.traffic import WEEKDAY_FACTOR

HISTORY_DAYS = 28
# Stamped at midday: a daily total belongs to its day whatever the store's hours.
TOTAL_AT = time(12, 0, tzinfo=UTC)

SalesRow = tuple[str, str, int, datetime, str, int, int, str, str]


def history_device(store_id: str) -> str:
    """The device the imported history is recorded under."""
    return f"{store_id}-pos-history"


def history_days(until: datetime, days: int) -> list[date]:
    """The ``days`` whole UTC days before ``until``'s day, oldest first."""
    last = until.astimezone(UTC).date()
    return [last - timedelta(days=n) for n in range(days, 0, -1)]


def history_rows(
    layout: StoreLayout, seed: int, days: Sequence[date], currency: str
) -> list[SalesRow]:
    """One row per SKU and day with sales: ``(store, device, seq, ts, gtin, qty, price,
    currency, receipt)``. The same seed, store and day always give the same rows."""
    demand = expected_units_by_sku(layout)
    gtins = list(demand)
    mean = np.array([demand[g] for g in gtins], dtype=np.float64)
    price = {sku.gtin: sku.price_minor for sku in layout.skus}
    # The traffic model's weekday factors average to the expected day's demand.
    weekday_share = WEEKDAY_FACTOR / WEEKDAY_FACTOR.mean()
    device = history_device(layout.store_id)
    rows: list[SalesRow] = []
    for day in days:
        rng = np.random.default_rng((seed, layout.store_index, day.toordinal()))
        units = rng.poisson(mean * weekday_share[day.weekday()])
        ts = datetime.combine(day, TOTAL_AT)
        receipt = f"history-{day:%Y%m%d}"
        for seq, (gtin, qty) in enumerate(zip(gtins, units.tolist(), strict=True)):
            if qty > 0:
                rows.append(
                    (layout.store_id, device, seq, ts, gtin, qty, price[gtin], currency, receipt)
                )
    return rows


async def import_sales_history(
    conn: Connection,
    layouts: Sequence[StoreLayout],
    *,
    seed: int,
    until: datetime,
    days: int = HISTORY_DAYS,
    currency: str = "EUR",
) -> int:
    """Write ``days`` days of daily sales before ``until``'s day for each store;
    returns the rows that were new."""
    dates = history_days(until, days)
    rows = [row for layout in layouts for row in history_rows(layout, seed, dates, currency)]
    if not rows:
        return 0
    async with transaction(conn):
        cur = await conn.execute(
            "INSERT INTO sales (store_id, device, seq, ts, gtin, qty, unit_price_minor, currency,"
            " receipt_id)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[],"
            " %s::text[], %s::integer[], %s::bigint[], %s::text[], %s::text[])"
            " ON CONFLICT ON CONSTRAINT sales_key DO NOTHING",
            [list(column) for column in zip(*rows, strict=True)],
        )
        return cur.rowcount
