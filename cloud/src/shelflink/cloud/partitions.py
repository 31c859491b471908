"""Day partitions on the plain-PostgreSQL path: created on demand, dropped by retention.

A partition is named ``<table>_pYYYYMMDD`` and holds one UTC day. The writer
asks for the days a commit touches (plus today and tomorrow, so that midnight
finds tomorrow's partition ready instead of every worker racing to create it).
Days far outside the present (an unset device clock says 1970) get no
partition: their rows go to the DEFAULT partition instead of littering the
catalog. When a day's partition is created while rows for it sit in DEFAULT,
they are moved into it in the same transaction.

Partitions are created standalone and then attached: ATTACH takes a SHARE
UPDATE EXCLUSIVE lock on the parent, which does not block other workers'
inserts, where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.migrations import storage_flavour

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Gateways hold readings for up to 30 days and clocks may run ahead: a day
# outside this window is a broken clock, not a backlog.
PAST_DAYS = 400
FUTURE_DAYS = 2
# pg_advisory_xact_lock(int4, int4): "SHLP", hashtext(partition name).
PARTITION_LOCK_CLASS = 0x53484C50
_RETENTION_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"

# Partitioned table -> (range column, columns that hold data, i.e. not generated).
PARTITIONED: dict[str, tuple[str, tuple[str, ...]]] = {
    "shelf_readings": ("ts", ("store_id", "device", "seq", "ts", "grams", "board_c")),
    "fridge_readings": (
        "ts",
        ("store_id", "device", "seq", "ts", "cabinet_c", "evaporator_c", "door_open",
         "compressor_on", "defrost_on"),
    ),
    "shelf_lane_minute": (
        "bucket",
        ("store_id", "device", "lane", "bucket", "n", "sum_grams", "min_grams", "max_grams",
         "last_ts", "last_seq", "last_grams"),
    ),
    "fridge_minute": (
        "bucket",
        ("store_id", "device", "bucket", "n", "sum_cabinet_c", "min_cabinet_c", "max_cabinet_c",
         "door_open_n", "compressor_on_n"),
    ),
}  # fmt: skip
# What a shelf or a fridge reading lands in, by day.
SHELF_TABLES = ("shelf_readings", "shelf_lane_minute")
FRIDGE_TABLES = ("fridge_readings", "fridge_minute")


def day_of(ts_ms: int) -> int:
    return ts_ms // DAY_MS


def day_start(day: int) -> datetime:
    return EPOCH + timedelta(days=day)


def partition_name(table: str, day: int) -> str:
    return f"{table}_p{day_start(day):%Y%m%d}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def wanted_partitions(
    days_by_table: Mapping[str, Iterable[int]], at_ms: int | None = None
) -> list[tuple[str, int]]:
    """(table, day) pairs to have, sorted (one lock order for every worker)."""
    today = day_of(now_ms() if at_ms is None else at_ms)
    wanted: set[tuple[str, int]] = set()
    for table, days in days_by_table.items():
        wanted.update((table, d) for d in (today, today + 1))
        wanted.update((table, d) for d in days if today - PAST_DAYS <= d <= today + FUTURE_DAYS)
    return sorted(wanted)


async def missing_partitions(
    conn: Connection, wanted: list[tuple[str, int]]
) -> list[tuple[str, int]]:
    names = [partition_name(t, d) for t, d in wanted]
    cur = await conn.execute(
        "SELECT n FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL", (names,)
    )
    missing = {row[0] for row in await cur.fetchall()}
    return [(t, d) for t, d in wanted if partition_name(t, d) in missing]


async def create_partition(conn: Connection, table: str, day: int) -> bool:
    """Create and attach one day's partition; False when another worker just did."""
    name = partition_name(table, day)
    key, columns = PARTITIONED[table]
    lo, hi = day_start(day), day_start(day + 1)
    await conn.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (PARTITION_LOCK_CLASS, name)
    )
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = await cur.fetchone()
    if row is not None and row[0]:
        return False
    ident = {
        "part": sql.Identifier(name),
        "parent": sql.Identifier(table),
        "default": sql.Identifier(f"{table}_default"),
        "key": sql.Identifier(key),
        "cols": sql.SQL(", ").join(map(sql.Identifier, columns)),
        "lo": sql.Literal(lo),
        "hi": sql.Literal(hi),
    }
    statements = [
        "CREATE TABLE {part} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        " INCLUDING GENERATED)",
        # Nobody may add rows for this day to DEFAULT between the move and the attach.
        "LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE",
        "WITH moved AS (DELETE FROM {default} WHERE {key} >= {lo} AND {key} < {hi}"
        " RETURNING {cols}) INSERT INTO {part} ({cols}) SELECT {cols} FROM moved",
        "ALTER TABLE {parent} ATTACH PARTITION {part} FOR VALUES FROM ({lo}) TO ({hi})",
    ]
    for statement in statements:
        await conn.execute(sql.SQL(statement).format(**ident))
    logger.info("created partition %s", name)
    return True


async def ensure_partitions(
    conn: Connection, days_by_table: Mapping[str, Iterable[int]], at_ms: int | None = None
) -> list[str]:
    """Make sure the wanted day partitions exist (in the current or a new transaction)."""
    created: list[str] = []
    async with transaction(conn):
        for table, day in await missing_partitions(conn, wanted_partitions(days_by_table, at_ms)):
            if await create_partition(conn, table, day):
                created.append(partition_name(table, day))
    return created


async def _partitions_of(conn: Connection, table: str) -> list[str]:
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY c.relname",
        (table,),
    )
    return [row[0] for row in await cur.fetchall()]


async def apply_retention(conn: Connection, days: int, *, at_ms: int | None = None) -> list[str]:
    """Drop raw readings and minute rollups older than ``days`` (hourly rollups stay).

    Plain path: drops whole day partitions that end at or before the start of the
    UTC day ``days`` ago, and deletes such rows from the DEFAULT partitions. Each
    drop is its own short transaction with a lock timeout, so retention never
    queues ingest behind it for long (PostgreSQL locks the parent table ACCESS
    EXCLUSIVE to drop a partition, so commits to that table wait behind a drop,
    at most the lock timeout); a partition it could not lock is tried on the
    next run, one that a concurrent run dropped first is passed over. TimescaleDB
    path: (re)installs the retention policies and drops the chunks now. Returns
    what was dropped.
    """
    if days < 1:
        raise ValueError("retention keeps at least one day")
    if conn.info.transaction_status != TransactionStatus.IDLE:
        # Each drop commits on its own; inside a caller's transaction a busy
        # partition would abort everything the caller did.
        raise RuntimeError("apply_retention commits as it goes: call it outside a transaction")
    if await storage_flavour(conn) == "timescale":
        return await _timescale_retention(conn, days)
    cutoff_day = day_of(now_ms() if at_ms is None else at_ms) - days
    dropped: list[str] = []
    for table, (key, _columns) in PARTITIONED.items():
        prefix = f"{table}_p"
        for name in await _partitions_of(conn, table):
            suffix = name.removeprefix(prefix)
            if name == suffix or not (len(suffix) == 8 and suffix.isdigit()):
                continue  # DEFAULT, or not one of ours
            day = (datetime.strptime(suffix, "%Y%m%d").replace(tzinfo=UTC) - EPOCH).days
            if day >= cutoff_day:
                continue
            try:
                async with transaction(conn):
                    await conn.execute(_RETENTION_LOCK_TIMEOUT)
                    await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            except psycopg.errors.LockNotAvailable:
                logger.warning("retention: %s is busy, next run drops it", name)
                continue
            except psycopg.errors.UndefinedTable:
                continue  # a concurrent run (say, a manual one) dropped it first
            dropped.append(name)
        async with transaction(conn):
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                    sql.Identifier(f"{table}_default"), sql.Identifier(key)
                ),
                (day_start(cutoff_day),),
            )
    if dropped:
        logger.info("retention dropped %d partitions: %s", len(dropped), ", ".join(dropped))
    return dropped


async def _timescale_retention(conn: Connection, days: int) -> list[str]:
    # Untested here (no TimescaleDB on the CI machine): see docs/storage.md.
    dropped: list[str] = []
    async with transaction(conn):
        for table in PARTITIONED:
            await conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
            await conn.execute(
                "SELECT add_retention_policy(%s, make_interval(days => %s))", (table, days)
            )
            cur = await conn.execute(
                "SELECT drop_chunks(%s, older_than => make_interval(days => %s))", (table, days)
            )
            dropped.extend(str(row[0]) for row in await cur.fetchall())
    return dropped
