"""Channel control: sales that break the brand's distribution rules become alerts.

- **Diversion.** A serialised unit the brand shipped to one dealer
  (``serial_shipments``) and sold in a store of another dealer. Two alerts of
  kind ``diversion``, one for each dealer (the alerts API shows a dealer its
  own), with the same evidence naming both; brand operators see both.
- **Price.** A sale below the SKU's minimum resale price, compared in the
  SKU's currency (a sale in another currency is not compared). One alert of
  kind ``price`` for the dealer of the store, with the sale as evidence.

A scan reads the sales that *arrived* in a window (``sales.ingested_at``),
not those whose event time falls in it, because gateways replay sales days
late after an outage. Each window starts where the last scan ended, minus an
overlap that covers ingest transactions still open when the last scan read
(their rows carry their start time); rescanning a sale is harmless because
every alert carries the sale's identity ``(device, ts, seq)`` as its unique
``dedup_key``. The whole scan is one statement (INSERT ... SELECT per kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shelflink.cloud.database import Connection, transaction

# Longer than any ingest transaction: a sale committed after a scan read, but
# stamped before that scan's end, is still in the next window.
OVERLAP: Final = timedelta(minutes=10)

# The sale's identity, as the sales table's key: (device, ts in µs, seq).
_SALE_KEY = (
    "'sale:' || sc.device || '|' || (extract(epoch FROM sc.ts) * 1000000)::bigint || '|' || sc.seq"
)
_SALE_EVIDENCE = """jsonb_build_object(
        'store_id', sc.store_id, 'device', sc.device, 'ts', sc.ts, 'seq', sc.seq,
        'receipt_id', sc.receipt_id, 'gtin', sc.gtin, 'serial', sc.serial, 'qty', sc.qty,
        'unit_price_minor', sc.unit_price_minor, 'currency', sc.currency)"""

SCAN: Final = f"""
WITH scanned AS MATERIALIZED (
    SELECT s.store_id, s.device, s.ts, s.seq, s.receipt_id, s.gtin, s.serial, s.qty,
           s.unit_price_minor, s.currency, st.dealer_id AS store_dealer
    FROM sales s LEFT JOIN stores st USING (store_id)
    WHERE (%(from)s::timestamptz IS NULL OR s.ingested_at >= %(from)s)
      AND s.ingested_at < %(to)s
),
diversion AS (
    INSERT INTO alerts (dealer_id, store_id, kind, severity, evidence, dedup_key)
    SELECT seen.dealer_id, sc.store_id, 'diversion', 'warning',
           jsonb_build_object(
               'sale', {_SALE_EVIDENCE},
               'sold_by_dealer', sc.store_dealer, 'shipped_to_dealer', sh.dealer_id,
               'shipment_ref', sh.shipment_ref, 'shipped_at', sh.shipped_at,
               'this_dealer_is', seen.role),
           {_SALE_KEY} || '|' || seen.role
    FROM scanned sc
    JOIN serial_shipments sh ON sh.gtin = sc.gtin AND sh.serial = sc.serial
    CROSS JOIN LATERAL (VALUES (sh.dealer_id, 'shipped_to'), (sc.store_dealer, 'sold_by'))
        AS seen(dealer_id, role)
    WHERE sc.serial IS NOT NULL AND sc.store_dealer IS NOT NULL
      AND sh.dealer_id <> sc.store_dealer
    ON CONFLICT (kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING 1
),
price AS (
    INSERT INTO alerts (dealer_id, store_id, kind, severity, evidence, dedup_key)
    SELECT sc.store_dealer, sc.store_id, 'price', 'warning',
           jsonb_build_object(
               'sale', {_SALE_EVIDENCE},
               'min_resale_minor', k.min_resale_minor,
               'below_by_minor', k.min_resale_minor - sc.unit_price_minor,
               'sold_by_dealer', sc.store_dealer),
           {_SALE_KEY}
    FROM scanned sc JOIN skus k USING (gtin)
    WHERE sc.qty > 0 AND sc.currency = k.currency AND sc.unit_price_minor < k.min_resale_minor
    ON CONFLICT (kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM scanned), (SELECT count(*) FROM diversion),
       (SELECT count(*) FROM price)
"""

_LAST_SCAN = "SELECT max(scanned_to) FROM channel_scans"

_RECORD = """
INSERT INTO channel_scans (scanned_from, scanned_to, started_at, finished_at, sales_scanned,
                           diversion_alerts, price_alerts)
VALUES (%(from)s, %(to)s, %(to)s, clock_timestamp(), %(sales)s, %(diversion)s, %(price)s)
RETURNING scan_id
"""


@dataclass(frozen=True, slots=True)
class ChannelScan:
    """One scan: the arrival window it read and the alerts it created (new ones only)."""

    scan_id: int
    scanned_from: datetime | None
    scanned_to: datetime
    sales_scanned: int
    diversion_alerts: int  # two per diverted sale: one for each dealer
    price_alerts: int

    def as_dict(self) -> dict[str, Any]:
        """The scan as ``shelflink cloud channel-scan`` prints it."""
        return {
            "scan_id": self.scan_id,
            "scanned_from": self.scanned_from.isoformat() if self.scanned_from else None,
            "scanned_to": self.scanned_to.isoformat(),
            "sales_scanned": self.sales_scanned,
            "diversion_alerts": self.diversion_alerts,
            "price_alerts": self.price_alerts,
        }


async def scan_channel(conn: Connection, *, since: datetime | None = None) -> ChannelScan:
    """Scan the sales that arrived since ``since`` (default: since the last scan,
    minus the overlap; the first scan reads them all) up to now."""
    async with transaction(conn):
        cur = await conn.execute("SELECT now()")
        row = await cur.fetchone()
        assert row is not None
        scanned_to: datetime = row[0]
        scanned_from = since
        if scanned_from is None:
            cur = await conn.execute(_LAST_SCAN)
            last = await cur.fetchone()
            if last is not None and last[0] is not None:
                scanned_from = last[0] - OVERLAP
        cur = await conn.execute(SCAN, {"from": scanned_from, "to": scanned_to})
        counts = await cur.fetchone()
        assert counts is not None
        sales, diversion, price = (int(n) for n in counts)
        cur = await conn.execute(
            _RECORD,
            {"from": scanned_from, "to": scanned_to, "sales": sales, "diversion": diversion,
             "price": price},
        )  # fmt: skip
        recorded = await cur.fetchone()
        assert recorded is not None
    return ChannelScan(
        scan_id=int(recorded[0]),
        scanned_from=scanned_from,
        scanned_to=scanned_to,
        sales_scanned=sales,
        diversion_alerts=diversion,
        price_alerts=price,
    )
