"""The writer's SQL: staging tables and the one statement that commits a group of batches.

The statement is a chain of data-modifying CTEs. For each record kind,
``INSERT ... SELECT FROM staging ON CONFLICT DO NOTHING RETURNING`` yields
exactly the rows that were new; the rollups are fed from those rows only (so a
replayed reading never counts twice), the per-batch counts are joined back to
the staging rows' batch index, and the ``batches`` rows are inserted with
them. One round trip, whatever the number of batches and rows.

Commits are serialised per gateway (LOCK_GATEWAYS), so the rollup upserts
need no ORDER BY to avoid deadlocks between workers.
"""

from __future__ import annotations

from typing import Final

from shelflink.cloud.staging import KINDS, Kind

WORK_MEM: Final = "64MB"  # the join back and the rollup aggregation stay in memory
# Buckets are UTC minutes and hours whatever the session's time zone: date_bin
# counts from a UTC midnight (and is cheaper than date_trunc with a zone).
ORIGIN: Final = "timestamptz '2000-01-01 00:00:00+00'"
# pg_advisory_xact_lock(int4, int4): "SHLG", hashtext(gateway id).
GATEWAY_LOCK_CLASS: Final = 0x53484C47

# One commit at a time per gateway. A gateway's devices are its own, so two
# workers never write the same readings or rollup rows at once: no deadlocks
# between them, and a batch delivered to two workers is committed by the first
# and found in `batches` by the second. Locks are taken in the order of their
# keys, so two commits that share gateways cannot wait on each other in a ring.
LOCK_GATEWAYS: Final = f"""
SELECT count(pg_advisory_xact_lock({GATEWAY_LOCK_CLASS}, k))
FROM (SELECT DISTINCT hashtext(g) AS k FROM unnest(%(gateways)s::text[]) AS g ORDER BY k) AS s
"""


def staging_ddl() -> str:
    """Temporary staging tables, one per kind: created once per connection, emptied on commit."""
    statements = []
    for kind in KINDS.values():
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type in kind.columns)
        statements.append(
            f"CREATE TEMP TABLE IF NOT EXISTS {kind.stage} (b integer NOT NULL, {columns})"
            " ON COMMIT DELETE ROWS"
        )
    return ";\n".join(statements)


# The staging table created last: when it exists, they all do.
STAGING_PROBE: Final = f"pg_temp.{list(KINDS.values())[-1].stage}"


def copy_statement(kind: Kind, *, staging: bool) -> str:
    if staging:
        return f"COPY pg_temp.{kind.stage} (b, {', '.join(kind.names)}) FROM STDIN (FORMAT binary)"
    return f"COPY {kind.table} ({', '.join(kind.names)}) FROM STDIN (FORMAT binary)"


PREPARE: Final = f"""
SELECT (SELECT flavour FROM schema_migrations ORDER BY version LIMIT 1),
       to_regclass('{STAGING_PROBE}') IS NOT NULL,
       ARRAY(SELECT n FROM unnest(%(partitions)s::text[]) AS n WHERE to_regclass(n) IS NULL),
       ARRAY(SELECT ARRAY[i.pos, b.rows_new, b.rows_duplicate]
             FROM unnest(%(gateway)s::text[], %(seq)s::bigint[]) WITH ORDINALITY
                  AS i(gateway_id, batch_seq, pos)
             JOIN batches b USING (gateway_id, batch_seq)),
       set_config('work_mem', '{WORK_MEM}', true)
"""

STORED_COUNTS: Final = """
SELECT b.gateway_id, b.batch_seq, b.rows_new, b.rows_duplicate
FROM unnest(%(gateway)s::text[], %(seq)s::bigint[]) AS i(gateway_id, batch_seq)
JOIN batches b USING (gateway_id, batch_seq)
"""


def _insert_new(name: str, kind: Kind, returning: str) -> str:
    cols = ", ".join(kind.names)
    return (
        f"{name}_new AS (INSERT INTO {kind.table} ({cols}) SELECT {cols} FROM pg_temp.{kind.stage}"
        f" ON CONFLICT DO NOTHING RETURNING {returning})"
    )


def _count_new(name: str, kind: Kind) -> str:
    return (
        f"SELECT s.b, count(*) AS n FROM {name}_new JOIN pg_temp.{kind.stage} s"
        f" USING ({', '.join(kind.key)}) GROUP BY s.b"
    )


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
  ON CONFLICT (device, bucket) DO UPDATE SET
    n = t.n + excluded.n,
    sum_cabinet_c = t.sum_cabinet_c + excluded.sum_cabinet_c,
    min_cabinet_c = least(t.min_cabinet_c, excluded.min_cabinet_c),
    max_cabinet_c = greatest(t.max_cabinet_c, excluded.max_cabinet_c),
    door_open_n = t.door_open_n + excluded.door_open_n,
    compressor_on_n = t.compressor_on_n + excluded.compressor_on_n)"""


def commit_statement(*, fridge_rollups: bool) -> str:
    """The statement; TimescaleDB keeps fridge rollups as continuous aggregates instead."""
    k = KINDS
    ctes = [
        _insert_new("events", k["events"], "gateway_id, seq"),
        _insert_new("statuses", k["statuses"], "device, ts, seq, cause"),
        _insert_new("sales", k["sales"], "device, ts, seq"),
        _insert_new("receipts", k["receipts"], "device, ts, seq"),
        _insert_new("shelf", k["shelf"], "store_id, device, seq, ts, grams"),
        _insert_new(
            "fridge", k["fridge"], "store_id, device, seq, ts, cabinet_c, door_open, compressor_on"
        ),
        """lanes AS (
  SELECT n.store_id, n.device, (u.lane - 1)::smallint AS lane, n.ts, n.seq, u.g
  FROM shelf_new n CROSS JOIN LATERAL unnest(n.grams) WITH ORDINALITY AS u(g, lane)
  WHERE u.g IS NOT NULL)""",
        _lane_rollup("shelf_lane_minute", "1 minute"),
        _lane_rollup("shelf_lane_hour", "1 hour"),
    ]
    if fridge_rollups:
        ctes += [
            _fridge_rollup("fridge_minute", "1 minute"),
            _fridge_rollup("fridge_hour", "1 hour"),
        ]
    counts = "\n    UNION ALL ".join(
        _count_new(name, k[name])
        for name in ("events", "statuses", "sales", "receipts", "shelf", "fridge")
    )
    ctes += [
        f"counted AS (SELECT b, sum(n) AS n FROM (\n    {counts}) c GROUP BY b)",
        """done AS (
  INSERT INTO batches (gateway_id, batch_seq, store_id, rows_new, rows_duplicate)
  SELECT i.gateway_id, i.batch_seq, i.store_id, coalesce(c.n, 0), i.rows - coalesce(c.n, 0)
  FROM unnest(%(index)s::integer[], %(gateway)s::text[], %(seq)s::bigint[],
              %(store)s::text[], %(rows)s::integer[])
       AS i(b, gateway_id, batch_seq, store_id, rows)
  LEFT JOIN counted c USING (b)
  ON CONFLICT DO NOTHING
  RETURNING gateway_id, batch_seq, rows_new, rows_duplicate)""",
    ]
    return (
        "WITH " + ",\n".join(ctes) + "\nSELECT gateway_id, batch_seq, rows_new, rows_duplicate"
        " FROM done"
    )


COMMIT_PLAIN: Final = commit_statement(fridge_rollups=True)
COMMIT_TIMESCALE: Final = commit_statement(fridge_rollups=False)
