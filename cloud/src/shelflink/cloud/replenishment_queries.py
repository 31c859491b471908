"""The SQL that reads one dealer's planning inputs, a statement per input.

A run first numbers the dealer's stores, SKUs and store×SKU pairs into
temporary tables (dropped at commit); every later statement answers with
those numbers, so the results land in numpy arrays by index without a Python
loop per pair and without a query per pair. Each statement is one GROUP BY
over the whole dealer. Parameters: ``dealer``, ``start`` (the first history
day, a UTC midnight), ``end`` (today's UTC midnight: the history stops
there), ``now`` (positions and standing alerts are read up to it),
``start_date`` and ``cooldown``.
"""

from __future__ import annotations

from typing import Final

# pg_try_advisory_xact_lock(int4, int4): "SHPL", hashtext(dealer id). Two
# planners never plan the same dealer at once, so a second one cannot order
# what the first is ordering.
DEALER_LOCK_CLASS: Final = 0x5348504C
LOCK_DEALER: Final = f"SELECT pg_try_advisory_xact_lock({DEALER_LOCK_CLASS}, hashtext(%(dealer)s))"

# Open orders: placed and not yet delivered (suggestions waiting for the
# dealer included, so that the next run does not suggest the same again).
OPEN_STATES: Final = ("suggested", "approved", "picking", "shipped")
# Orders whose goods are still in the dealer's warehouse.
UNSHIPPED_STATES: Final = ("suggested", "approved", "picking")

NUMBER_STORES: Final = """
CREATE TEMP TABLE plan_stores ON COMMIT DROP AS
SELECT i, store_id, lead_time_days, delivery_weekdays, scanner,
       -- From when the store's shelf counts are read step by step: the whole
       -- window where depletion is the demand; where a scanner reports sales,
       -- only since the first delivery into the backroom (restocks before it
       -- cannot draw on the ledger), and not at all without one.
       CASE WHEN NOT scanner THEN %(start)s::timestamptz ELSE first_receipt END AS steps_from
FROM (
    SELECT (row_number() OVER (ORDER BY s.store_id) - 1)::integer AS i,
           s.store_id, s.lead_time_days, s.delivery_weekdays,
           -- A store with a scanner reports its sales; the others are read
           -- from their shelves' depletion.
           (EXISTS (SELECT 1 FROM device_status d WHERE d.store_id = s.store_id
                    AND d.kind = 'scanner')
            OR EXISTS (SELECT 1 FROM sales x WHERE x.store_id = s.store_id
                       AND x.ts >= %(start)s AND x.ts < %(now)s)) AS scanner,
           (SELECT min(r.received_at) FROM backroom_receipts r WHERE r.store_id = s.store_id
            AND r.received_at >= %(start)s AND r.received_at <= %(now)s) AS first_receipt
    FROM stores s WHERE s.dealer_id = %(dealer)s
) numbered
"""

# A pair is a SKU on a store's planogram: what the store stocks.
NUMBER_PAIRS: Final = """
CREATE TEMP TABLE plan_pairs ON COMMIT DROP AS
SELECT (row_number() OVER (ORDER BY p.store_id, p.gtin) - 1)::integer AS i,
       p.store_id, p.gtin, s.i AS store_i, p.lanes
FROM (SELECT store_id, gtin, count(*)::integer AS lanes FROM planograms
      WHERE store_id IN (SELECT store_id FROM pg_temp.plan_stores)
      GROUP BY store_id, gtin) p
JOIN pg_temp.plan_stores s USING (store_id)
"""

# Warehouse stock is what the dealer reported minus what its open, unshipped
# orders will take out of it. No stock row at all: the dealer does not report
# that SKU, so it is not a limit (units NULL).
NUMBER_SKUS: Final = f"""
CREATE TEMP TABLE plan_skus ON COMMIT DROP AS
SELECT (row_number() OVER (ORDER BY k.gtin) - 1)::integer AS i,
       k.gtin, k.case_pack, k.min_order_units, k.cold_chain <> 'ambient' AS cold_chain,
       -- greatest() skips NULLs: keep the unreported SKU's NULL explicitly.
       CASE WHEN ds.units IS NOT NULL THEN greatest(ds.units - coalesce(r.units, 0), 0) END
           AS warehouse_units
FROM skus k
LEFT JOIN dealer_stock ds ON ds.dealer_id = %(dealer)s AND ds.gtin = k.gtin
LEFT JOIN (SELECT l.gtin, sum(l.quantity) AS units
           FROM orders o JOIN order_lines l USING (order_id)
           WHERE o.dealer_id = %(dealer)s AND o.state IN {UNSHIPPED_STATES!r}
           GROUP BY l.gtin) r ON r.gtin = k.gtin
WHERE k.gtin IN (SELECT gtin FROM pg_temp.plan_pairs)
"""

# Planogram lanes by the pair they stock.
NUMBER_LANES: Final = """
CREATE TEMP TABLE plan_lanes ON COMMIT DROP AS
SELECT (row_number() OVER (ORDER BY pl.store_id, pl.device, pl.lane))::integer AS i,
       pl.store_id, pl.device, pl.lane, pp.i AS pair
FROM planograms pl JOIN pg_temp.plan_pairs pp USING (store_id, gtin)
"""

# Temporary tables have no statistics until analysed (autovacuum never sees
# them); without them the planner guesses nested loops over thousands of rows.
ANALYZE_NUMBERED: Final = (
    "ANALYZE pg_temp.plan_stores, pg_temp.plan_pairs, pg_temp.plan_skus, pg_temp.plan_lanes"
)

SELECT_STORES: Final = (
    "SELECT store_id, lead_time_days, delivery_weekdays, scanner FROM pg_temp.plan_stores"
    " ORDER BY i"
)
SELECT_SKUS: Final = (
    "SELECT gtin, case_pack, min_order_units, cold_chain, warehouse_units FROM pg_temp.plan_skus"
    " ORDER BY i"
)
SELECT_PAIRS: Final = """
SELECT p.store_i, k.i, p.lanes FROM pg_temp.plan_pairs p JOIN pg_temp.plan_skus k USING (gtin)
ORDER BY p.i
"""

# Each change of a planogram lane's count from the device's previous report,
# from the store's ``steps_from``: the falls are depletion, the rises
# restocks. The previous report is found per device (a window over the
# events, not over their lanes: eight times fewer rows to sort), then both
# reports' arrays are unnested side by side. A blind lane reports the count
# the gateway holds for it (docs/edge.md), so it is used as is: it does not
# move while blind and the change shows once the lane reads again. A lane
# without a count (null) makes no step.
LANE_STEPS: Final = """
CREATE TEMP TABLE plan_lane_steps ON COMMIT DROP AS
WITH reports AS (
    SELECT e.store_id, e.source AS device, e.ts, e.seq, e.body -> 'units' AS units,
           lag(e.body -> 'units') OVER w AS previous
    FROM events e JOIN pg_temp.plan_stores s USING (store_id)
    WHERE e.type = 'shelf_units' AND e.ts >= s.steps_from AND e.ts <= %(now)s
    WINDOW w AS (PARTITION BY e.store_id, e.source ORDER BY e.ts, e.seq)
),
-- Unnested and filtered before the join to the lanes: joined first, the
-- planner would unnest every report once per lane of its device.
steps AS MATERIALIZED (
    SELECT store_id, device, lane, ts, seq, change FROM (
        SELECT r.store_id, r.device, (u.n - 1)::integer AS lane, r.ts, r.seq,
               u.units::float8::integer - u.previous::float8::integer AS change
        FROM reports r
        CROSS JOIN LATERAL ROWS FROM (
            jsonb_array_elements_text(r.units), jsonb_array_elements_text(r.previous)
        ) WITH ORDINALITY AS u(units, previous, n)
    ) unnested
    WHERE change <> 0
)
SELECT l.pair, s.ts, s.seq, s.change
FROM steps s JOIN pg_temp.plan_lanes l USING (store_id, device, lane)
"""

# On shelf: each lane's count in its device's latest report (blind lanes:
# the count the gateway holds), summed over the pair's lanes. One index probe
# per shelf device (events_source_ts).
ON_SHELF: Final = """
SELECT l.pair, sum(u.units::float8::integer)::bigint, count(*)::integer
FROM (SELECT DISTINCT store_id, device FROM pg_temp.plan_lanes) d
CROSS JOIN LATERAL (
    SELECT e.body FROM events e
    WHERE e.source = d.device AND e.store_id = d.store_id AND e.type = 'shelf_units'
      AND e.ts >= %(start)s AND e.ts <= %(now)s
    ORDER BY e.ts DESC, e.seq DESC LIMIT 1
) latest
CROSS JOIN LATERAL jsonb_array_elements_text(latest.body -> 'units') WITH ORDINALITY AS u(units, n)
JOIN pg_temp.plan_lanes l
  ON l.store_id = d.store_id AND l.device = d.device AND l.lane = u.n - 1
WHERE u.units IS NOT NULL
GROUP BY l.pair
"""

# Backroom: a ledger of what deliveries brought in (backroom_receipts) and
# what went from the backroom onto the shelf (every rise of a lane's count is
# a restock). The level never goes below zero: a restock larger than the
# ledger holds came from stock the ledger never saw (before the window, or
# not delivered through an order), and is not charged against later
# deliveries. That is the walk reflected at zero: level = S_n - min(0, min S_k)
# with S_k the running sum; receipts go before restocks at the same instant.
BACKROOM: Final = """
SELECT pair, (sum(delta) - least(0, min(level)))::bigint FROM (
    SELECT pair, delta,
           sum(delta) OVER (PARTITION BY pair ORDER BY at, kind, seq ROWS UNBOUNDED PRECEDING)
               AS level
    FROM (
        SELECT pp.i AS pair, r.received_at AS at, 0 AS kind, r.receipt_id AS seq,
               r.units::bigint AS delta
        FROM backroom_receipts r JOIN pg_temp.plan_pairs pp USING (store_id, gtin)
        WHERE r.received_at >= %(start)s AND r.received_at <= %(now)s
        UNION ALL
        SELECT pair, ts, 1, seq, -change FROM pg_temp.plan_lane_steps WHERE change > 0
    ) moves
) walk GROUP BY pair
"""

# On order: lines of open orders to the pair's store (whoever's dealer they
# are: the goods are coming either way), and whether the dealer rejected a
# suggestion for the pair lately (then it is not suggested again until the
# cooldown has passed).
ON_ORDER: Final = f"""
SELECT pp.i,
       coalesce(sum(l.quantity) FILTER (WHERE o.state IN {OPEN_STATES!r}), 0)::bigint,
       bool_or(o.state = 'rejected')
FROM orders o
JOIN order_lines l USING (order_id)
JOIN pg_temp.plan_pairs pp ON pp.store_id = o.store_id AND pp.gtin = l.gtin
WHERE o.store_id IN (SELECT store_id FROM pg_temp.plan_stores)
  AND (o.state IN {OPEN_STATES!r}
       OR (o.state = 'rejected' AND o.updated_at >= %(now)s - %(cooldown)s))
GROUP BY pp.i
"""

# Daily demand, sparse (pair, day, units) rows: scanner sales where the store
# has a scanner, shelf depletion (the falls of the lanes' counts) where it has
# none. Days without a row are zero; the caller's array starts as zeros.
DEMAND: Final = """
SELECT pp.i, ((x.ts AT TIME ZONE 'UTC')::date - %(start_date)s)::integer AS day,
       sum(x.qty)::double precision
FROM sales x
JOIN pg_temp.plan_pairs pp USING (store_id, gtin)
JOIN pg_temp.plan_stores s ON s.store_id = x.store_id AND s.scanner
WHERE x.ts >= %(start)s AND x.ts < %(end)s
GROUP BY 1, 2
UNION ALL
SELECT st.pair, ((st.ts AT TIME ZONE 'UTC')::date - %(start_date)s)::integer,
       sum(-st.change)::double precision
FROM pg_temp.plan_lane_steps st
JOIN pg_temp.plan_pairs pp ON pp.i = st.pair
JOIN pg_temp.plan_stores s ON s.i = pp.store_i AND NOT s.scanner
WHERE st.change < 0 AND st.ts < %(end)s
GROUP BY 1, 2
"""

# The edge's lane alerts standing now: the latest event of each (lane, kind)
# says raised. A lane that ran empty (out_of_stock) is at risk too: the edge
# clears the risk once it came true.
STANDING_RISKS: Final = """
SELECT DISTINCT pp.i
FROM (
    SELECT DISTINCT ON (e.store_id, e.source, e.body ->> 'lane', e.type)
           e.store_id, e.body ->> 'gtin' AS gtin, e.body ->> 'state' AS state
    FROM events e
    WHERE e.type IN ('stockout_risk', 'out_of_stock')
      AND e.store_id IN (SELECT store_id FROM pg_temp.plan_stores)
      AND e.ts >= %(start)s AND e.ts <= %(now)s
    ORDER BY e.store_id, e.source, e.body ->> 'lane', e.type, e.ts DESC, e.seq DESC
) latest
JOIN pg_temp.plan_pairs pp USING (store_id, gtin)
WHERE latest.state = 'raised'
"""

# Cold-chain alarms standing now, per store: the latest event of each
# (fridge, alarm kind) says raised.
STANDING_COLD_CHAIN: Final = """
SELECT s.i, latest.device, latest.alarm, latest.ts, latest.gateway_id, latest.seq
FROM (
    SELECT DISTINCT ON (e.store_id, e.source, e.body ->> 'alarm')
           e.store_id, e.source AS device, e.body ->> 'alarm' AS alarm,
           e.body ->> 'state' AS state, e.ts, e.gateway_id, e.seq
    FROM events e
    WHERE e.type = 'cold_chain_alarm'
      AND e.store_id IN (SELECT store_id FROM pg_temp.plan_stores)
      AND e.ts >= %(start)s AND e.ts <= %(now)s
    ORDER BY e.store_id, e.source, e.body ->> 'alarm', e.ts DESC, e.seq DESC
) latest
JOIN pg_temp.plan_stores s USING (store_id)
WHERE latest.state = 'raised'
ORDER BY s.i, latest.device, latest.alarm
"""

RECORD_RUN: Final = """
INSERT INTO planning_runs (dealer_id, trigger, started_at, finished_at, history_days, stores,
                           pairs, orders_created, lines_created, units_ordered, by_reason,
                           order_ids)
VALUES (%(dealer)s, %(trigger)s, %(started_at)s, clock_timestamp(), %(history_days)s,
        %(stores)s, %(pairs)s, %(orders)s, %(lines)s, %(units)s, %(by_reason)s, %(order_ids)s)
RETURNING run_id
"""

# The dealer is told why chilled goods were held back, once per alarm episode.
HOLD_ALERT: Final = """
INSERT INTO alerts (dealer_id, store_id, kind, severity, evidence, dedup_key)
VALUES (%(dealer)s, %(store)s, 'replenishment_hold', 'warning', %(evidence)s, %(key)s)
ON CONFLICT (kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
"""
