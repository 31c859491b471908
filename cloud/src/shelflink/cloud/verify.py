"""Did every acknowledged message reach the database exactly once? A manifest against the rows.

The simulator's manifest lists, per device, the data messages its broker
acknowledged: ``count`` of them between ``first_seq`` and ``last_seq``. A data
message is one row in one of the data tables (shelf and fridge readings,
sales, goods receipts); a device's data messages share one seq counter.

- ``found``: distinct (device, seq) in the database within the device's range;
- ``missing``: expected minus found, never below zero;
- ``missing_ranges``: the seqs in each range that have no row, as
  ``[device, first, last]``. When a device's ``count`` is below its span (its
  client dropped messages it never got acknowledged), those seqs are listed
  too: the manifest cannot say which ones they were;
- ``duplicates``: rows beyond the first for any (device, seq), across the data
  tables; exactly-once means 0;
- ``outside_range``: distinct seqs of manifest devices outside their range
  (sent after the manifest was written, or by a previous run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.rows import tuple_row

from shelflink.cloud.database import Connection, transaction

DATA_TABLES = ("shelf_readings", "fridge_readings", "sales", "goods_receipts")

_DATA = " UNION ALL ".join(
    f"SELECT device, seq FROM {table} WHERE device = ANY(%(devices)s::text[])"
    for table in DATA_TABLES
)

_PER_KEY = f"""
CREATE TEMP TABLE verify_keys ON COMMIT DROP AS
SELECT device, seq, count(*) AS n FROM ({_DATA}) AS d GROUP BY device, seq
"""

_SUMMARY = """
WITH m AS (
    SELECT * FROM unnest(%(devices)s::text[], %(firsts)s::bigint[], %(lasts)s::bigint[])
        AS m(device, first_seq, last_seq)
)
SELECT m.device,
       count(k.seq) FILTER (WHERE k.seq BETWEEN m.first_seq AND m.last_seq),
       count(k.seq) FILTER (WHERE k.seq NOT BETWEEN m.first_seq AND m.last_seq),
       coalesce(sum(k.n - 1), 0)
FROM m LEFT JOIN verify_keys k USING (device)
GROUP BY m.device
"""

# Gaps between consecutive present seqs, with a sentinel just outside each end
# of the range so that a missing head or tail is a gap too.
_GAPS = """
WITH m AS (
    SELECT * FROM unnest(%(devices)s::text[], %(firsts)s::bigint[], %(lasts)s::bigint[])
        AS m(device, first_seq, last_seq)
), present AS (
    SELECT k.device, k.seq FROM verify_keys k JOIN m USING (device)
    WHERE k.seq BETWEEN m.first_seq AND m.last_seq
    UNION ALL SELECT device, first_seq - 1 FROM m
    UNION ALL SELECT device, last_seq + 1 FROM m
), ordered AS (
    SELECT device, seq, lag(seq) OVER (PARTITION BY device ORDER BY seq) AS previous
    FROM present
)
SELECT device, previous + 1, seq - 1 FROM ordered
WHERE seq - previous > 1
ORDER BY device, previous
"""


async def verify(conn: Connection, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Compare a simulator manifest (its JSON form) with the data tables."""
    records = [d for d in manifest["devices"] if d.get("count") and d.get("first_seq") is not None]
    expected_by_device = {d["device_id"]: int(d["count"]) for d in records}
    params = {
        "devices": [d["device_id"] for d in records],
        "firsts": [int(d["first_seq"]) for d in records],
        "lasts": [int(d["last_seq"]) for d in records],
    }
    found = duplicates = outside = missing = 0
    async with transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("DROP TABLE IF EXISTS pg_temp.verify_keys")
        await cur.execute(_PER_KEY, params)
        await cur.execute(_SUMMARY, params)
        for device, in_range, out_of_range, extra in await cur.fetchall():
            found += in_range
            outside += out_of_range
            duplicates += int(extra)
            missing += max(0, expected_by_device[device] - in_range)
        await cur.execute(_GAPS, params)
        ranges = [[device, int(first), int(last)] for device, first, last in await cur.fetchall()]
    return {
        "expected": sum(expected_by_device.values()),
        "found": found,
        "missing": missing,
        "duplicates": duplicates,
        "missing_ranges": ranges,
        "outside_range": outside,
        "devices": len(records),
    }
