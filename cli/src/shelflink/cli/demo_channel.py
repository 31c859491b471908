"""Channel control in the demo: a staged price violation, and scans of the sales the
cloud received that report the alerts.

The diversion is staged in the master data (``demo_seed.staged_diversion``):
the opening stock of one store's fastest seller is recorded as shipped to the
other dealer. :func:`stage_price_fault` makes the same store's tills sell that
SKU below its minimum resale price for a while, the grey-market pattern that
channel control exists to catch. Every ``every_s`` wall seconds :class:`DemoChannel` runs
``channel_control.scan_channel``, the same scan as ``shelflink cloud
channel-scan`` and the production scheduler, and reads the alerts it created,
so that the view shows each one with its evidence. When the demo ends it scans
once more, after the gateways' last batches are committed, so that the final
counts cover every sale the stores made.

A diverted sale is two alerts in the cloud, one for each dealer; the demo
counts and shows it once (the selling dealer's copy). Alerts of earlier runs
on the same database are not this run's (``after_alert_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg.rows import class_row

from shelflink.cloud.alerts import AlertKind
from shelflink.cloud.channel_control import scan_channel
from shelflink.cloud.database import Connection, connect, transaction
from shelflink.sim.faults import Fault, FaultKind

if TYPE_CHECKING:
    from shelflink.cli.demo_seed import StagedDiversion
    from shelflink.sim.run import LiveRun

logger = logging.getLogger(__name__)

APPLICATION_NAME = "shelflink-demo-channel"
SCAN_EVERY_S = 3.0
RECENT = 50  # alerts kept for the view
KINDS = (AlertKind.DIVERSION.value, AlertKind.PRICE.value)
# The staged price violation, in simulated minutes from the start: from the first
# sales on, so that even a short run (a test) shows it, and long enough to be seen.
PRICE_BELOW_MINIMUM_AFTER_MIN, PRICE_BELOW_MINIMUM_FOR_MIN = 0, 180

# The evidence flattened for the view; a diversion once, as its selling dealer sees it.
_NEW_ALERTS = """
SELECT alert_id, kind, store_id,
       (evidence->'sale'->>'ts')::timestamptz AS sold_at,
       evidence->'sale'->>'gtin' AS gtin,
       evidence->'sale'->>'serial' AS serial,
       (evidence->'sale'->>'unit_price_minor')::bigint AS unit_price_minor,
       evidence->'sale'->>'currency' AS currency,
       evidence->>'sold_by_dealer' AS sold_by,
       evidence->>'shipped_to_dealer' AS shipped_to,
       (evidence->>'min_resale_minor')::bigint AS min_resale_minor
FROM alerts
WHERE alert_id > %(after)s AND kind = ANY(%(kinds)s)
  AND (kind <> 'diversion' OR evidence->>'this_dealer_is' = 'sold_by')
ORDER BY alert_id
"""


def stage_price_fault(live: LiveRun, diversion: StagedDiversion) -> list[Fault]:
    """Every till of the diversion's store rings the diverted SKU up below its minimum
    resale price for a while: one fault per till, so that every sale of it is one."""
    sim = live.sim(diversion.store_id)
    start = sim.clock.ts(sim.tick) + PRICE_BELOW_MINIMUM_AFTER_MIN * 60_000
    end = start + PRICE_BELOW_MINIMUM_FOR_MIN * 60_000
    staged = []
    for till in sim.layout.tills:
        fault = Fault(till, FaultKind.PRICE_BELOW_MINIMUM, start, end, gtin=diversion.gtin)
        live.inject_fault(fault)
        staged.append(fault)
    return staged


@dataclass(frozen=True, slots=True)
class ChannelAlert:
    """One channel-control alert as the demo shows it: the sale and what was wrong."""

    alert_id: int
    kind: str  # "diversion" or "price"
    store_id: str
    sold_at: datetime  # the sale's (simulated) time
    gtin: str
    serial: str | None
    unit_price_minor: int
    currency: str
    sold_by: str | None  # the store's dealer
    shipped_to: str | None = None  # diversion: the dealer the brand shipped the unit to
    min_resale_minor: int | None = None  # price: the SKU's minimum resale price

    @property
    def sim_ms(self) -> int:
        return int(self.sold_at.timestamp() * 1000)


class DemoChannel:
    """Scans every ``every_s`` wall seconds until told to stop, then once more."""

    def __init__(self, *, after_alert_id: int = 0, every_s: float = SCAN_EVERY_S) -> None:
        self.every_s = every_s
        self.last_alert_id = after_alert_id
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.scans = 0
        self.recent: deque[ChannelAlert] = deque(maxlen=RECENT)
        self.alerts_total = 0  # ever appended to recent: lets a view show only new ones

    async def run(self, database_url: str, stop: asyncio.Event) -> None:
        """Scan until ``stop`` is set, then a last time, and return."""
        async with await connect(database_url, application_name=APPLICATION_NAME) as conn:
            while True:
                last = stop.is_set()
                try:
                    await self.step(conn)
                except psycopg.OperationalError:
                    raise  # the database is gone: the demo is over
                except psycopg.Error:
                    # One failed scan must not stop channel control; the next one
                    # reads its window again (scans overlap and never alert twice).
                    logger.exception("the demo's channel scan failed")
                if last:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.every_s)

    async def step(self, conn: Connection) -> list[ChannelAlert]:
        """One scan of the sales that arrived since the last, and the alerts it raised."""
        await scan_channel(conn)
        self.scans += 1
        async with transaction(conn), conn.cursor(row_factory=class_row(ChannelAlert)) as cur:
            await cur.execute(_NEW_ALERTS, {"after": self.last_alert_id, "kinds": list(KINDS)})
            fresh = await cur.fetchall()
        # One scan inserts in no particular order; show them as the sales happened.
        fresh.sort(key=lambda a: (a.sold_at, a.alert_id))
        for alert in fresh:
            self.last_alert_id = max(self.last_alert_id, alert.alert_id)
            self.counts[alert.kind] += 1
            self.recent.append(alert)
            self.alerts_total += 1
        return fresh


async def latest_alert_id(conn: Connection) -> int:
    """The newest alert's id (0 when there is none): a run's alerts come after it."""
    async with transaction(conn):
        cur = await conn.execute("SELECT coalesce(max(alert_id), 0) FROM alerts")
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0
