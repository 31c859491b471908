"""The durable buffer's SQLite side: every transaction, run in the buffer's one thread.

:class:`BufferStore` is synchronous and not thread-safe on purpose: the async
:class:`~shelflink.gateway.buffer.DurableBuffer` calls it only through its
single-worker executor. Each method is one transaction; it either commits and
returns fresh :class:`Counters`, or rolls back, leaves the in-memory totals as
they were and raises :class:`BufferStorageError`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final

from shelflink.gateway.buffer_batch import framed_size
from shelflink.gateway.buffer_errors import BufferFullError, BufferStorageError
from shelflink.gateway.buffer_policy import (
    ROW_BYTES_SQL,
    Capacity,
    DropCandidate,
    oldest_enough,
    report_pieces,
    row_bytes,
)
from shelflink.gateway.buffer_record import Lease, Priority, Record
from shelflink.gateway.buffer_schema import NEXT_BATCH_SEQ, Synchronous, connect

INSERT_RECORD: Final = (
    "INSERT OR IGNORE INTO record (priority, field, device, seq, ts, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_RECORD_COLUMNS: Final = "id, priority, field, device, seq, ts, body"

# (id, device, records, first_seq, last_seq) of a persisted, unreported drop.
StoredDrop = tuple[int, str, int, int, int]


@dataclass(frozen=True, slots=True)
class Counters:
    """The store's totals after a transaction; cheap to hand to the event loop."""

    records: int
    bytes: int
    oldest_ts_ms: int | None
    leased_batches: int
    leased_records: int
    dropped_total: int
    dropped_by_device: MappingProxyType[str, int]
    commits: int
    commit_seconds: float  # time spent in group commits, fsync included


@dataclass(slots=True)
class CommitResult:
    # Per request: how many of its records were new, or why it was refused.
    outcomes: list[int | BufferFullError]
    drops: list[StoredDrop]
    counters: Counters


@dataclass(slots=True)
class _Totals:
    records: int = 0
    bytes: int = 0
    leased_batches: int = 0
    leased_records: int = 0
    dropped_total: int = 0
    dropped_by_device: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    commit_seconds: float = 0.0


def row_params(r: Record) -> tuple[int, int, str, int, int, bytes]:
    return (int(r.priority), r.field, r.device, r.seq, r.ts, r.body)


_Row = tuple[int, int, int, str, int, int, bytes]  # _RECORD_COLUMNS


def _record(row: _Row) -> Record:
    _, priority, field_no, device, seq, ts, body = row
    return Record(Priority(priority), field_no, device, seq, ts, body)


class BufferStore:
    """One open buffer file; every method is one transaction."""

    def __init__(self, path: Path, capacity: Capacity, synchronous: Synchronous) -> None:
        self._capacity = capacity
        self._conn = connect(path, synchronous)
        try:
            self._totals = self._load_totals()
            self._max_id: int | None = None
            self._oldest_ts: int | None = self._query_oldest_ts()
            self._dropped_view = MappingProxyType(dict[str, int]())
        except sqlite3.Error as error:
            self._conn.close()
            raise BufferStorageError(f"{path}: cannot read the buffer: {error}") from error

    def _load_totals(self) -> _Totals:
        c = self._conn
        records, used = c.execute(
            f"SELECT count(*), coalesce(sum({ROW_BYTES_SQL}), 0) FROM record"
        ).fetchone()
        leased_records = c.execute(
            "SELECT count(*) FROM record WHERE batch_seq IS NOT NULL"
        ).fetchone()[0]
        leased_batches = c.execute("SELECT count(*) FROM lease").fetchone()[0]
        return _Totals(
            records=records,
            bytes=used,
            leased_batches=leased_batches,
            leased_records=leased_records,
        )

    def unreported_drops(self) -> list[StoredDrop]:
        """Drops persisted before a restart and not yet handed to the gateway."""
        return self._conn.execute(
            "SELECT id, device, records, first_seq, last_seq FROM drop_report ORDER BY id"
        ).fetchall()

    def close(self) -> None:
        # The last connection closing checkpoints the WAL into the main file.
        self._conn.close()

    def counters(self) -> Counters:
        t = self._totals
        return Counters(
            records=t.records,
            bytes=t.bytes,
            oldest_ts_ms=self._oldest_ts,
            leased_batches=t.leased_batches,
            leased_records=t.leased_records,
            dropped_total=t.dropped_total,
            dropped_by_device=self._dropped_view,
            commits=t.commits,
            commit_seconds=t.commit_seconds,
        )

    # -- appends -------------------------------------------------------------------------------

    def commit(
        self, requests: Sequence[Sequence[Record]], settled_drops: Sequence[int]
    ) -> CommitResult:
        """Store many appends in one transaction (group commit) and forget reported drops.

        Each request is all-or-nothing: refused whole with a BufferFullError, or stored.
        """
        # Work on a copy: the totals change only if the transaction commits.
        work = replace(self._totals, dropped_by_device=dict(self._totals.dropped_by_device))
        drops: list[StoredDrop] = []
        began = time.perf_counter()
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                if settled_drops:
                    c.executemany(
                        "DELETE FROM drop_report WHERE id = ?", [(i,) for i in settled_drops]
                    )
                outcomes = self._store_all(requests, work) if requests else []
                if outcomes is None:
                    outcomes = []
                    max_id = self._max_id
                    for request in requests:
                        outcome, max_id = self._store_request(request, work, drops, max_id)
                        outcomes.append(outcome)
                    self._max_id = max_id
                oldest = self._query_oldest_ts()
                c.execute("COMMIT")
            except BaseException:
                self._max_id = None  # unknown after a rollback: ask SQLite next time
                # A failed COMMIT may have rolled back already (disk full, I/O error).
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise BufferStorageError(f"append not stored: {error}") from error
        work.commits += 1
        work.commit_seconds += time.perf_counter() - began
        self._totals, self._oldest_ts = work, oldest
        if drops:
            self._dropped_view = MappingProxyType(dict(work.dropped_by_device))
        return CommitResult(outcomes, drops, self.counters())

    def _store_all(
        self, requests: Sequence[Sequence[Record]], work: _Totals
    ) -> list[int | BufferFullError] | None:
        """The common case in one statement: far from full, and no record already buffered.

        None (with nothing changed) when that is not the case; the caller then
        goes request by request.
        """
        incoming = sum(row_bytes(r.device, r.body) for request in requests for r in request)
        if work.bytes + incoming > self._capacity.max_bytes:
            return None
        total = sum(len(request) for request in requests)
        c = self._conn
        c.execute("SAVEPOINT store_all")
        new = c.executemany(
            INSERT_RECORD, (row_params(r) for request in requests for r in request)
        ).rowcount
        if new != total:
            # A duplicate somewhere: which request it belongs to decides its count.
            c.execute("ROLLBACK TO store_all")
            c.execute("RELEASE store_all")
            return None
        c.execute("RELEASE store_all")
        work.records += new
        work.bytes += incoming
        if self._max_id is not None:
            # SQLite gives a new row the highest id + 1, so the new rows are consecutive.
            self._max_id += new
        return [len(request) for request in requests]

    def _store_request(
        self, request: Sequence[Record], work: _Totals, drops: list[StoredDrop], max_id: int | None
    ) -> tuple[int | BufferFullError, int | None]:
        capacity = self._capacity
        incoming = sum(row_bytes(r.device, r.body) for r in request)
        if work.bytes + incoming > capacity.max_bytes:
            # Near full: be exact (duplicates need no room), then make room or refuse.
            request = self._fresh(request)
            incoming = sum(row_bytes(r.device, r.body) for r in request)
            has_telemetry = any(r.priority is Priority.TELEMETRY for r in request)
            limit = capacity.limit(has_telemetry=has_telemetry)
            need = capacity.to_free(work.bytes, incoming)
            chosen, freed = oldest_enough(self._drop_candidates(), need)
            if work.bytes - freed + incoming > limit:
                what = "telemetry" if has_telemetry else "events, statuses and scans"
                why = (
                    f"the append alone ({incoming} B) is bigger than that"
                    if incoming > limit
                    else "no unleased telemetry left to drop"
                )
                refusal = BufferFullError(
                    f"buffer full: {what} refused, {why}",
                    needed=work.bytes - freed + incoming - limit,
                    used=work.bytes,
                    limit=limit,
                )
                return refusal, max_id
            if chosen:
                self._drop(chosen, freed, work, drops)
                max_id = None
        if not request:
            return 0, max_id
        if max_id is None:
            max_id = self._query_max_id()
        if len(request) == 1:
            new = self._conn.execute(INSERT_RECORD, row_params(request[0])).rowcount
        else:
            new = self._conn.executemany(INSERT_RECORD, map(row_params, request)).rowcount
        if new == len(request):
            added = incoming
        else:
            # Some were already buffered: count exactly what this request inserted,
            # which are the rows above the previous highest id.
            added = self._conn.execute(
                f"SELECT coalesce(sum({ROW_BYTES_SQL}), 0) FROM record WHERE id > ?", (max_id,)
            ).fetchone()[0]
        work.records += new
        work.bytes += added
        # SQLite gives a new row the highest id + 1, so the new rows are consecutive.
        return new, max_id + new

    def _fresh(self, request: Sequence[Record]) -> list[Record]:
        """The records of ``request`` not yet buffered, each key once."""
        seen: dict[tuple[str, int, int], Record] = {}
        for r in request:
            seen.setdefault((r.device, r.seq, r.field), r)
        exists = "SELECT 1 FROM record WHERE device = ? AND seq = ? AND field = ?"
        return [r for key, r in seen.items() if self._conn.execute(exists, key).fetchone() is None]

    def _drop_candidates(self) -> Iterator[DropCandidate]:
        cursor = self._conn.execute(
            f"SELECT id, device, seq, {ROW_BYTES_SQL} FROM record "
            "WHERE priority = ? AND batch_seq IS NULL ORDER BY id",
            (int(Priority.TELEMETRY),),
        )
        try:
            while rows := cursor.fetchmany(512):
                for row_id, device, seq, size in rows:
                    yield DropCandidate(row_id, device, seq, size)
        finally:
            cursor.close()

    def _drop(
        self, chosen: list[DropCandidate], freed: int, work: _Totals, drops: list[StoredDrop]
    ) -> None:
        # The chosen rows are exactly the unleased telemetry up to the last one's
        # id, because candidates come in id order and nothing else writes meanwhile.
        deleted = self._conn.execute(
            "DELETE FROM record WHERE priority = ? AND batch_seq IS NULL AND id <= ?",
            (int(Priority.TELEMETRY), chosen[-1].id),
        ).rowcount
        assert deleted == len(chosen), "drop candidates changed inside the transaction"
        work.records -= deleted
        work.bytes -= freed
        work.dropped_total += deleted
        for device, records, first, last in report_pieces(chosen):
            work.dropped_by_device[device] = work.dropped_by_device.get(device, 0) + records
            cursor = self._conn.execute(
                "INSERT INTO drop_report (device, records, first_seq, last_seq) "
                "VALUES (?, ?, ?, ?)",
                (device, records, first, last),
            )
            assert cursor.lastrowid is not None
            drops.append((cursor.lastrowid, device, records, first, last))

    # -- the uplink's side ---------------------------------------------------------------------

    def lease(
        self, max_records: int, max_bytes: int, now_ms: int, newest_since_ms: int | None = None
    ) -> tuple[Lease | None, Counters]:
        """Take the first unleased records in (priority, id) order under a new batch_seq.

        With ``newest_since_ms``: the newest unleased records instead, none older
        than that (the uplink's live lane while a backlog replays at a limited rate).
        """
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                order = "priority, id" if newest_since_ms is None else "id DESC"
                cursor = c.execute(
                    f"SELECT {_RECORD_COLUMNS} FROM record WHERE batch_seq IS NULL "
                    f"ORDER BY {order} LIMIT ?",
                    (max_records,),
                )
                rows: list[_Row] = []
                size = 0
                for row in cursor:
                    if newest_since_ms is not None and row[5] < newest_since_ms:
                        continue
                    framed = framed_size(len(row[6]))
                    # The first record always goes, or one big record would block the queue.
                    if rows and size + framed > max_bytes:
                        break
                    rows.append(row)
                    size += framed
                cursor.close()
                if not rows:
                    c.execute("ROLLBACK")
                    return None, self.counters()
                # Stored and returned in the order leased() rebuilds, so that a
                # resend after a restart is byte-identical.
                rows.sort(key=lambda row: (row[1], row[0]))
                (batch_seq,) = c.execute(
                    "SELECT value FROM counter WHERE name = ?", (NEXT_BATCH_SEQ,)
                ).fetchone()
                # Persisted in the lease's own transaction: a number handed out is never reused.
                c.execute(
                    "UPDATE counter SET value = ? WHERE name = ?", (batch_seq + 1, NEXT_BATCH_SEQ)
                )
                c.execute(
                    "INSERT INTO lease (batch_seq, created_ms) VALUES (?, ?)", (batch_seq, now_ms)
                )
                c.executemany(
                    "UPDATE record SET batch_seq = ? WHERE id = ?",
                    [(batch_seq, row[0]) for row in rows],
                )
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise BufferStorageError(f"lease not taken: {error}") from error
        self._totals.leased_batches += 1
        self._totals.leased_records += len(rows)
        ids = [row[0] for row in rows]
        lease = Lease(
            batch_seq=batch_seq,
            created_ms=now_ms,
            records=tuple(_record(row) for row in rows),
            first_id=min(ids),
            last_id=max(ids),
        )
        return lease, self.counters()

    def leased(self) -> list[Lease]:
        """Every lease not yet acked, oldest batch first, each as it was handed out."""
        try:
            leases = self._conn.execute(
                "SELECT batch_seq, created_ms FROM lease ORDER BY batch_seq"
            ).fetchall()
            result = []
            for batch_seq, created_ms in leases:
                rows = self._conn.execute(
                    f"SELECT {_RECORD_COLUMNS} FROM record WHERE batch_seq = ? "
                    "ORDER BY priority, id",
                    (batch_seq,),
                ).fetchall()
                ids = [row[0] for row in rows]
                result.append(
                    Lease(batch_seq, created_ms, tuple(map(_record, rows)), min(ids), max(ids))
                )
        except sqlite3.Error as error:
            raise BufferStorageError(f"leases not read: {error}") from error
        return result

    def ack(self, batch_seq: int) -> tuple[int, Counters]:
        """Delete a lease's records: the cloud committed them. Unknown or repeated: 0."""
        return self._end_lease(batch_seq, "DELETE FROM record WHERE batch_seq = ?", delete=True)

    def release(self, batch_seq: int) -> tuple[int, Counters]:
        """Put a lease's records back in the queue, in their old places."""
        return self._end_lease(
            batch_seq, "UPDATE record SET batch_seq = NULL WHERE batch_seq = ?", delete=False
        )

    def _end_lease(self, batch_seq: int, statement: str, *, delete: bool) -> tuple[int, Counters]:
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                if c.execute("DELETE FROM lease WHERE batch_seq = ?", (batch_seq,)).rowcount == 0:
                    c.execute("ROLLBACK")
                    return 0, self.counters()
                freed = c.execute(
                    f"SELECT coalesce(sum({ROW_BYTES_SQL}), 0) FROM record WHERE batch_seq = ?",
                    (batch_seq,),
                ).fetchone()[0]
                count = c.execute(statement, (batch_seq,)).rowcount
                oldest = self._query_oldest_ts() if delete else self._oldest_ts
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise BufferStorageError(f"lease {batch_seq} not ended: {error}") from error
        t = self._totals
        t.leased_batches -= 1
        t.leased_records -= count
        if delete:
            t.records -= count
            t.bytes -= freed
            self._max_id = None
        self._oldest_ts = oldest
        return count, self.counters()

    def _query_max_id(self) -> int:
        value: int = self._conn.execute("SELECT coalesce(max(id), 0) FROM record").fetchone()[0]
        return value

    def _query_oldest_ts(self) -> int | None:
        # The longest-waiting record (lowest id), found through the rowid B-tree.
        row = self._conn.execute("SELECT ts FROM record ORDER BY id LIMIT 1").fetchone()
        return None if row is None else int(row[0])
