"""The writer's SQL: staging tables and the one statement that commits a group of batches.

The statement is a chain of data-modifying CTEs. For each record kind,
``INSERT ... SELECT FROM staging ON CONFLICT DO NOTHING RETURNING`` yields
exactly the rows that were new; readings are stored with the batch that
inserted them, the per-batch counts are taken from the new rows, and the
``batches`` rows are inserted with them, together with one ``rollup_pending``
row per batch that brought new readings. One round trip, whatever the number
of batches and rows. The rollups are folded later, off the acknowledgement
path, by ``rollups.fold_rollups()``.
"""

from __future__ import annotations

from typing import Final

from shelflink.cloud.staging import KINDS, Kind

WORK_MEM: Final = "64MB"  # the joins back and the rollup aggregation stay in memory
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


def _insert_readings(name: str, kind: Kind) -> str:
    # Readings carry the batch that inserted them: fold_rollups() finds them by it.
    cols = ", ".join(kind.names)
    return (
        f"{name}_new AS (INSERT INTO {kind.table} ({cols}, gateway_id, batch_seq)"
        f" SELECT {', '.join(f's.{c}' for c in kind.names)}, i.gateway_id, i.batch_seq"
        f" FROM pg_temp.{kind.stage} s JOIN keys i USING (b)"
        " ON CONFLICT DO NOTHING RETURNING gateway_id, batch_seq, ts)"
    )


def _count_new(name: str, kind: Kind) -> str:
    return (
        f"SELECT s.b, count(*) AS n FROM {name}_new JOIN pg_temp.{kind.stage} s"
        f" USING ({', '.join(kind.key)}) GROUP BY s.b"
    )


def commit_statement() -> str:
    """The statement: new rows, the ``batches`` rows, and what the rollups still need.

    Rollups are not touched here (see rollups.py): the batches whose new readings
    they still need go to ``rollup_pending``, in this same transaction.
    """
    k = KINDS
    ctes = [
        """keys AS (
  SELECT * FROM unnest(%(index)s::integer[], %(gateway)s::text[], %(seq)s::bigint[],
                       %(store)s::text[], %(rows)s::integer[])
       AS i(b, gateway_id, batch_seq, store_id, rows))""",
        _insert_new("events", k["events"], "gateway_id, seq"),
        _insert_new("statuses", k["statuses"], "device, ts, seq, cause"),
        _insert_new("sales", k["sales"], "device, ts, seq"),
        _insert_new("receipts", k["receipts"], "device, ts, seq"),
        _insert_readings("shelf", k["shelf"]),
        _insert_readings("fridge", k["fridge"]),
        # The new readings per batch: counted without a join back to staging,
        # since they name their batch.
        """readings AS (
  SELECT gateway_id, batch_seq, count(*) AS n, min(ts) AS ts_from, max(ts) AS ts_to
  FROM (SELECT * FROM shelf_new UNION ALL SELECT * FROM fridge_new) r
  GROUP BY gateway_id, batch_seq)""",
        """pending AS (
  INSERT INTO rollup_pending AS p (gateway_id, batch_seq, store_id, ts_from, ts_to)
  SELECT r.gateway_id, r.batch_seq, i.store_id, r.ts_from, r.ts_to
  FROM readings r JOIN keys i USING (gateway_id, batch_seq)
  ON CONFLICT (gateway_id, batch_seq) DO UPDATE SET
    ts_from = least(p.ts_from, excluded.ts_from), ts_to = greatest(p.ts_to, excluded.ts_to))""",
    ]
    counts = "\n    UNION ALL ".join(
        _count_new(name, k[name]) for name in ("events", "statuses", "sales", "receipts")
    )
    ctes += [
        f"counted AS (SELECT b, sum(n) AS n FROM (\n    {counts}) c GROUP BY b)",
        """done AS (
  INSERT INTO batches (gateway_id, batch_seq, store_id, rows_new, rows_duplicate)
  SELECT i.gateway_id, i.batch_seq, i.store_id, x.n, i.rows - x.n
  FROM keys i
  LEFT JOIN counted c USING (b)
  LEFT JOIN readings r USING (gateway_id, batch_seq)
  CROSS JOIN LATERAL (SELECT coalesce(c.n, 0) + coalesce(r.n, 0) AS n) x
  ON CONFLICT DO NOTHING
  RETURNING gateway_id, batch_seq, rows_new, rows_duplicate)""",
    ]
    return (
        "WITH " + ",\n".join(ctes) + "\nSELECT gateway_id, batch_seq, rows_new, rows_duplicate"
        " FROM done"
    )


COMMIT: Final = commit_statement()
