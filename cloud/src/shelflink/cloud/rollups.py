"""Rollup maintenance, off the acknowledgement path: fold committed readings into the rollups.

``commit_batches`` stores new readings with the batch that inserted them
(``gateway_id``, ``batch_seq``) and records that batch in ``rollup_pending``,
in the transaction the ingest acks after. :func:`fold_rollups` then, in its own
transaction and one statement:

1. takes up to ``limit_batches`` pending batches with ``FOR UPDATE SKIP
   LOCKED``, so two workers folding at once never take the same batch;
2. reads back exactly the readings those batches inserted (a reading that
   was a duplicate kept the batch that stored it first, so it belongs to
   exactly one batch), found through the ``(store_id, ts)`` index within the
   batch's recorded time range;
3. upserts their aggregates into the minute and hour rollups with the same
   combine as before (counts and ``numeric`` sums add, min/max, the value at
   the greatest ``(ts, seq)``), which gives the same result in any order;
4. deletes the pending rows.

All of it commits or none of it does, so each reading is folded exactly once
even if a worker dies mid-fold. The upserts lock rollup rows in key order
(``ORDER BY``), so two folders whose batches share a bucket wait for each
other instead of deadlocking.

On the TimescaleDB path the fridge rollups are continuous aggregates and only
the lane rollups are folded.
"""

from __future__ import annotations

from typing import Final

from psycopg.rows import tuple_row

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.writer_sql import ORIGIN, WORK_MEM

__all__ = ["FOLD_BATCHES", "fold_all_rollups", "fold_rollups"]

# Pending batches one fold takes: with 500-row batches, about 4,000 lane values
# per batch, so a fold is a fraction of a second and never holds locks for long.
FOLD_BATCHES: Final = 64


def _lane_rollup(table: str, width: str) -> str:
    # "last" is the value at the greatest (ts, seq). max() over a float8 array
    # compares element by element, so one hash aggregate finds it without
    # sorting each group (ts as epoch seconds keeps microseconds below 2^53).
    newer = "(excluded.last_ts, excluded.last_seq) > (t.last_ts, t.last_seq)"
    return f"""{table}_up AS (
  INSERT INTO {table} AS t (store_id, device, lane, bucket, n, sum_grams, min_grams, max_grams,
                            last_ts, last_seq, last_grams)
  SELECT store_id, device, lane, bucket, n, sum_grams, min_grams, max_grams,
         last_ts, latest[2]::bigint, latest[3]::real
  FROM (SELECT min(store_id) AS store_id, device, lane,
               date_bin(interval '{width}', ts, {ORIGIN}) AS bucket, count(*) AS n,
               sum(g::float8::numeric) AS sum_grams, min(g) AS min_grams, max(g) AS max_grams,
               max(ts) AS last_ts, max(ARRAY[date_part('epoch', ts), seq, g]) AS latest
        FROM lanes
        GROUP BY device, lane, bucket) AS a
  ORDER BY device, lane, bucket
  ON CONFLICT (device, lane, bucket) DO UPDATE SET
    n = t.n + excluded.n,
    sum_grams = t.sum_grams + excluded.sum_grams,
    min_grams = least(t.min_grams, excluded.min_grams),
    max_grams = greatest(t.max_grams, excluded.max_grams),
    last_ts = greatest(t.last_ts, excluded.last_ts),
    last_seq = CASE WHEN {newer} THEN excluded.last_seq ELSE t.last_seq END,
    last_grams = CASE WHEN {newer} THEN excluded.last_grams ELSE t.last_grams END)"""


def _fridge_rollup(table: str, width: str) -> str:
    return f"""{table}_up AS (
  INSERT INTO {table} AS t (store_id, device, bucket, n, sum_cabinet_c, min_cabinet_c,
                            max_cabinet_c, door_open_n, compressor_on_n)
  SELECT min(store_id), device, date_bin(interval '{width}', ts, {ORIGIN}) AS bucket, count(*),
         sum(cabinet_c::float8::numeric), min(cabinet_c), max(cabinet_c),
         count(*) FILTER (WHERE door_open), count(*) FILTER (WHERE compressor_on)
  FROM fridge_new
  GROUP BY device, bucket
  ORDER BY device, bucket
  ON CONFLICT (device, bucket) DO UPDATE SET
    n = t.n + excluded.n,
    sum_cabinet_c = t.sum_cabinet_c + excluded.sum_cabinet_c,
    min_cabinet_c = least(t.min_cabinet_c, excluded.min_cabinet_c),
    max_cabinet_c = greatest(t.max_cabinet_c, excluded.max_cabinet_c),
    door_open_n = t.door_open_n + excluded.door_open_n,
    compressor_on_n = t.compressor_on_n + excluded.compressor_on_n)"""


def _readings_of(table: str, columns: str) -> str:
    # The rows the picked batches inserted: (store_id, ts) index and day
    # partitions narrowed by the batch's time range, then the batch key.
    return f"""SELECT {columns} FROM picked k JOIN {table} r
    ON r.store_id = k.store_id AND r.ts BETWEEN k.ts_from AND k.ts_to
   AND r.gateway_id = k.gateway_id AND r.batch_seq = k.batch_seq"""


def fold_statement(*, fridge_rollups: bool) -> str:
    """The fold; TimescaleDB keeps fridge rollups as continuous aggregates instead."""
    ctes = [
        """picked AS MATERIALIZED (
  SELECT gateway_id, batch_seq, store_id, ts_from, ts_to FROM rollup_pending
  ORDER BY committed_at, gateway_id, batch_seq
  LIMIT %(limit)s
  FOR UPDATE SKIP LOCKED)""",
        """cleared AS (
  DELETE FROM rollup_pending p USING picked k
  WHERE p.gateway_id = k.gateway_id AND p.batch_seq = k.batch_seq)""",
        f"shelf_new AS MATERIALIZED (\n  "
        f"{_readings_of('shelf_readings', 'r.store_id, r.device, r.seq, r.ts, r.grams')})",
        """lanes AS (
  SELECT n.store_id, n.device, (u.lane - 1)::smallint AS lane, n.ts, n.seq, u.g
  FROM shelf_new n CROSS JOIN LATERAL unnest(n.grams) WITH ORDINALITY AS u(g, lane)
  WHERE u.g IS NOT NULL)""",
        _lane_rollup("shelf_lane_minute", "1 minute"),
        _lane_rollup("shelf_lane_hour", "1 hour"),
    ]
    if fridge_rollups:
        columns = "r.store_id, r.device, r.ts, r.cabinet_c, r.door_open, r.compressor_on"
        ctes += [
            f"fridge_new AS MATERIALIZED (\n  {_readings_of('fridge_readings', columns)})",
            _fridge_rollup("fridge_minute", "1 minute"),
            _fridge_rollup("fridge_hour", "1 hour"),
        ]
    return "WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM picked"


FOLD_PLAIN: Final = fold_statement(fridge_rollups=True)
FOLD_TIMESCALE: Final = fold_statement(fridge_rollups=False)

_SETUP: Final = f"""
SELECT (SELECT flavour FROM schema_migrations ORDER BY version LIMIT 1),
       set_config('work_mem', '{WORK_MEM}', true)
"""


async def fold_rollups(conn: Connection, limit_batches: int = FOLD_BATCHES) -> int:
    """Fold up to ``limit_batches`` pending batches into the rollups; how many were folded.

    One transaction (the caller's, if open). Batches another worker is folding
    right now are skipped, not waited for; 0 means nothing was left to take.
    """
    async with transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(_SETUP)
        row = await cur.fetchone()
        flavour = row[0] if row else None
        await cur.execute(
            FOLD_TIMESCALE if flavour == "timescale" else FOLD_PLAIN, {"limit": limit_batches}
        )
        row = await cur.fetchone()
        assert row is not None
        folded: int = row[0]
        return folded


async def fold_all_rollups(conn: Connection, limit_batches: int = FOLD_BATCHES) -> int:
    """Fold until nothing is pending (or left to take); how many batches were folded.

    Each round is its own transaction when the caller has none open.
    """
    total = 0
    while folded := await fold_rollups(conn, limit_batches):
        total += folded
    return total
