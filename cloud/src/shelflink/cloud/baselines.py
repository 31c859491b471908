"""What the writer is measured against: a raw COPY (the ceiling) and a naive bridge (the floor).

Neither is for production. ``copy_rows_baseline`` COPYs the same encoded rows
straight into the tables: no idempotency (a replay fails on the unique keys),
no rollups, no batch bookkeeping; nothing can be faster with the same schema
and indexes. ``naive_insert`` is what many MQTT-to-SQL bridges do: one INSERT
per reading, each its own transaction (one commit, one WAL flush, per message).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.migrations import storage_flavour
from shelflink.cloud.partitions import ensure_partitions
from shelflink.cloud.staging import KINDS, stage
from shelflink.cloud.writer_sql import copy_statement
from shelflink.device.proto import batch_pb2 as pb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def copy_rows_baseline(conn: Connection, batches: Sequence[tuple[pb.Batch, str]]) -> int:
    """COPY every row straight into its table in one transaction; returns the rows copied."""
    staged = stage(batches, with_index=False)
    if await storage_flavour(conn) == "plain":
        await ensure_partitions(conn, staged.days)
    async with transaction(conn), conn.cursor() as cur:
        for name, kind in KINDS.items():
            payload = staged.payload(name)
            if payload is not None:
                async with cur.copy(copy_statement(kind, staging=False)) as copy:
                    await copy.write(payload)
    return staged.staged


def _ts(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _statements(batch: pb.Batch, gateway_id: str) -> list[tuple[str, tuple[Any, ...]]]:
    store = batch.store_id
    out: list[tuple[str, tuple[Any, ...]]] = []
    for e in batch.events:
        out.append((
            "INSERT INTO events (store_id, gateway_id, seq, source, ts, type, severity, body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
            (store, gateway_id, e.seq, e.source, _ts(e.ts), e.type, str(e.severity),
             e.body_json or "{}"),
        ))  # fmt: skip
    for s in batch.statuses:
        out.append((
            "INSERT INTO device_status (store_id, device, seq, ts, online, cause, kind, firmware,"
            " boot_id, interval_ms, lanes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (store, s.device, s.seq, _ts(s.ts), s.online, s.cause, s.kind, s.firmware, s.boot_id,
             s.interval_ms, s.lanes or None),
        ))  # fmt: skip
    for sale in batch.sales:
        out.append((
            "INSERT INTO sales (store_id, device, seq, ts, gtin, serial, qty, unit_price_minor,"
            " currency, receipt_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (store, sale.device, sale.seq, _ts(sale.ts), sale.gtin, sale.serial or None, sale.qty,
             sale.unit_price_minor, sale.currency, sale.receipt_id),
        ))  # fmt: skip
    for r in batch.receipts:
        out.append((
            "INSERT INTO goods_receipts (store_id, device, seq, ts, gtin, serial, qty,"
            " delivery_ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (store, r.device, r.seq, _ts(r.ts), r.gtin, r.serial or None, r.qty, r.delivery_ref),
        ))  # fmt: skip
    for sh in batch.shelf:
        grams = [None if sh.missing_mask >> i & 1 else g for i, g in enumerate(sh.grams)]
        out.append((
            "INSERT INTO shelf_readings (store_id, device, seq, ts, grams, board_c)"
            " VALUES (%s, %s, %s, %s, %s::real[], %s) ON CONFLICT DO NOTHING",
            (store, sh.device, sh.seq, _ts(sh.ts), grams, sh.board_c),
        ))  # fmt: skip
    for f in batch.fridge:
        out.append((
            "INSERT INTO fridge_readings (store_id, device, seq, ts, cabinet_c, evaporator_c,"
            " door_open, compressor_on, defrost_on) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (store, f.device, f.seq, _ts(f.ts), f.cabinet_c, f.evaporator_c, f.door_open,
             f.compressor_on, f.defrost_on),
        ))  # fmt: skip
    return out


async def naive_insert(conn: Connection, batches: Sequence[tuple[pb.Batch, str]]) -> int:
    """One INSERT per reading, each committed on its own; returns the rows inserted."""
    inserted = 0
    if await storage_flavour(conn) == "plain":
        await ensure_partitions(conn, stage(batches, with_index=False).days)
    for batch, gateway_id in batches:
        for statement, params in _statements(batch, gateway_id):
            if conn.autocommit:
                cur = await conn.execute(statement.encode(), params)
            else:
                async with transaction(conn):
                    cur = await conn.execute(statement.encode(), params)
            inserted += cur.rowcount
    return inserted
