"""The ingest's database core: commit groups of batches exactly once.

Idempotency works at two levels. A batch already in ``batches`` (the same
gateway and batch_seq) is answered from that row and nothing is written. A
reading that arrives again in another batch (a gateway re-batched its buffer,
or two gateways forwarded the same device) meets the tables' unique keys and
is counted as a duplicate.

Per commit, whatever its size: the per-gateway locks, one query that reads
what is already there, one COPY per record kind into TEMP staging tables, one
statement that moves the rows and inserts the ``batches`` rows (writer_sql.py).
Rollups are not maintained here: new readings are stored with the batch that
inserted them and the batch is recorded in ``rollup_pending`` in the same
transaction; ``rollups.fold_rollups()`` folds them later, exactly once. No
round trip per row; ``synchronous_commit`` is left alone, so a committed ack is
durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from psycopg import AsyncCursor
from psycopg.rows import tuple_row

from shelflink.cloud.baselines import copy_rows_baseline, naive_insert
from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.migrations import MigrationError
from shelflink.cloud.partitions import create_partition, partition_name, wanted_partitions
from shelflink.cloud.staging import KINDS, InvalidBatch, StagedRows, check_batch, stage
from shelflink.cloud.writer_sql import (
    COMMIT,
    LOCK_GATEWAYS,
    PREPARE,
    STORED_COUNTS,
    copy_statement,
    staging_ddl,
)
from shelflink.device.proto import batch_pb2 as pb

__all__ = [
    "BatchOutcome",
    "InvalidBatch",
    "check_batch",
    "commit_batches",
    "copy_rows_baseline",
    "dead_letter",
    "gateway_stores",
    "naive_insert",
    "register_gateway",
]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    gateway_id: str
    batch_seq: int
    rows_new: int
    rows_duplicate: int
    already_committed: bool  # committed before (counts are the stored ones); nothing written


async def commit_batches(
    conn: Connection, batches: Sequence[tuple[pb.Batch, str]]
) -> list[BatchOutcome]:
    """Commit every batch in one transaction (the caller's, if one is open).

    ``batches`` pairs each batch with the gateway it arrived from (the topic's,
    which the broker authenticated; the batch's own ``gateway_id`` is not
    trusted here). Returns one outcome per input, in order. Raises
    :class:`InvalidBatch` naming a batch that cannot be stored, before anything
    is sent to the database, so the caller can set it aside and commit the rest.
    """
    keys = [(gateway, batch.batch_seq) for batch, gateway in batches]
    first_of: dict[tuple[str, int], int] = {}
    for position, key in enumerate(keys):
        first_of.setdefault(key, position)
    todo_positions = [p for p, key in enumerate(keys) if first_of[key] == p]
    staged = stage([batches[p] for p in todo_positions])
    wanted = wanted_partitions(staged.days)

    outcomes: dict[int, BatchOutcome] = {}
    async with transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        # Its own statement: what PREPARE reads must be seen after the wait.
        await cur.execute(LOCK_GATEWAYS, {"gateways": sorted({g for g, _seq in keys})})
        await cur.execute(
            PREPARE,
            {
                "partitions": [partition_name(t, d) for t, d in wanted],
                "gateway": [keys[p][0] for p in todo_positions],
                "seq": [keys[p][1] for p in todo_positions],
            },
        )
        row = await cur.fetchone()
        assert row is not None
        flavour, staging_ready, missing, done, _work_mem = row
        if flavour is None:
            raise MigrationError("the database has no schema yet: run `shelflink cloud migrate`")
        for ordinal, rows_new, rows_duplicate in done:
            position = todo_positions[ordinal - 1]
            gateway, seq = keys[position]
            outcomes[position] = BatchOutcome(gateway, seq, rows_new, rows_duplicate, True)
        if not staging_ready:
            await cur.execute(staging_ddl().encode())
        if flavour == "plain" and missing:
            by_name = {partition_name(t, d): (t, d) for t, d in wanted}
            for name in missing:
                await create_partition(conn, *by_name[name])

        fresh = [p for p in todo_positions if p not in outcomes]
        if len(fresh) < len(todo_positions):
            # Some batches were committed before: stage only the others.
            staged = stage([batches[p] for p in fresh])
        if fresh:
            await _copy(cur, staged)
            await cur.execute(
                COMMIT,
                {
                    "index": list(range(len(fresh))),
                    "gateway": [keys[p][0] for p in fresh],
                    "seq": [keys[p][1] for p in fresh],
                    "store": [batches[p][0].store_id for p in fresh],
                    "rows": staged.rows,
                },
            )
            inserted = {(g, s): (n, d) for g, s, n, d in await cur.fetchall()}
            raced = []
            for position in fresh:
                counts = inserted.get(keys[position])
                if counts is None:
                    raced.append(position)
                else:
                    outcomes[position] = BatchOutcome(*keys[position], *counts, False)
            if raced:
                # Another worker committed the same batch while we did: its row wins.
                await cur.execute(
                    STORED_COUNTS,
                    {"gateway": [keys[p][0] for p in raced], "seq": [keys[p][1] for p in raced]},
                )
                stored = {(g, s): (n, d) for g, s, n, d in await cur.fetchall()}
                for position in raced:
                    outcomes[position] = BatchOutcome(
                        *keys[position], *stored[keys[position]], True
                    )
    # A batch repeated within this call is answered like a replay of its first copy.
    return [
        outcomes.get(p) or replace(outcomes[first_of[keys[p]]], already_committed=True)
        for p in range(len(batches))
    ]


async def _copy(cur: AsyncCursor[Any], staged: StagedRows) -> None:
    for name, kind in KINDS.items():
        payload = staged.payload(name)
        if payload is None:
            continue
        async with cur.copy(copy_statement(kind, staging=True)) as copy:
            await copy.write(payload)


async def dead_letter(
    conn: Connection,
    topic: str,
    gateway_id: str | None,
    reason: str,
    detail: str,
    raw: bytes,
) -> None:
    """Keep input that cannot be stored, with why (in the caller's transaction, if any)."""
    async with transaction(conn):
        await conn.execute(
            "INSERT INTO dead_letters (topic, gateway_id, reason, detail, raw)"
            " VALUES (%s, %s, %s, %s, %s)",
            (topic.replace("\x00", ""), gateway_id, reason, detail.replace("\x00", ""), raw),
        )


async def register_gateway(conn: Connection, gateway_id: str, store_id: str) -> None:
    """Allow a gateway to send for a store (moving it if it served another)."""
    async with transaction(conn):
        await conn.execute(
            "INSERT INTO gateways (gateway_id, store_id) VALUES (%s, %s)"
            " ON CONFLICT (gateway_id) DO UPDATE SET store_id = excluded.store_id",
            (gateway_id, store_id),
        )


async def gateway_stores(conn: Connection) -> dict[str, str]:
    """Every registered gateway and the store it serves."""
    async with transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT gateway_id, store_id FROM gateways")
        return {gateway: store for gateway, store in await cur.fetchall()}
