"""The durable buffer's SQLite file: schema (versioned), durability settings, opening it.

Everything here runs in the buffer's one SQLite thread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final, Literal

from shelflink.gateway.buffer_errors import BufferStorageError

Synchronous = Literal["FULL", "NORMAL"]

SCHEMA_VERSION: Final = 1  # PRAGMA user_version; bump with a migration, never edit v1 in place
APPLICATION_ID: Final = 0x53484C42  # "SHLB": a file with another id is not a buffer
NEXT_BATCH_SEQ: Final = "next_batch_seq"
# The WAL file is truncated back to this after a checkpoint, so one burst of
# acks after an outage does not leave a WAL as big as the burst on disk.
JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

_SCHEMA_V1: Final = (
    # One row per buffered record. id orders "oldest first"; batch_seq is NULL
    # while the record waits and names its lease once the uplink took it.
    """CREATE TABLE record (
        id INTEGER PRIMARY KEY,
        priority INTEGER NOT NULL,
        field INTEGER NOT NULL,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        body BLOB NOT NULL,
        batch_seq INTEGER,
        UNIQUE (device, seq, field)
    )""",
    # The queue the uplink leases from and the full policy drops from; partial,
    # so leased rows cost the index nothing.
    "CREATE INDEX record_unleased ON record (priority, id) WHERE batch_seq IS NULL",
    "CREATE INDEX record_leased ON record (batch_seq) WHERE batch_seq IS NOT NULL",
    "CREATE TABLE lease (batch_seq INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL)",
    # Counters that must never go back, not even when every lease was acked.
    "CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    f"INSERT INTO counter (name, value) VALUES ('{NEXT_BATCH_SEQ}', 1)",
    # Drops not yet reported to the cloud; written in the dropping transaction
    # so a crash cannot lose the fact that data was dropped on purpose.
    """CREATE TABLE drop_report (
        id INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        records INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL
    )""",
)


def connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """Open (creating if needed) the buffer file, owned by this process until closed."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per
    # group commit. timeout=0: a second process fails at once instead of waiting.
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        # EXCLUSIVE: the file stays locked while open, so a second gateway process
        # on the same buffer is refused instead of interleaving leases; it also
        # lets WAL work without a shared-memory index.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise BufferStorageError(f"{path}: SQLite refused WAL mode (got {mode!r})")
        # FULL: the WAL is fsynced at every commit, so an acknowledged append
        # survives power loss, not only a crash of the process. See docs/buffer.md.
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        _migrate(conn, path)
    except sqlite3.Error as error:
        conn.close()
        raise BufferStorageError(f"{path}: cannot open the buffer: {error}") from error
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # BEGIN IMMEDIATE takes the write lock now, which in EXCLUSIVE mode is kept.
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and version == 0 and tables == 0:
            for statement in _SCHEMA_V1:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif app_id != APPLICATION_ID:
            raise BufferStorageError(f"{path} is an SQLite file but not a Shelflink buffer")
        elif version > SCHEMA_VERSION:
            raise BufferStorageError(
                f"{path} has buffer schema v{version}, newer than this gateway's "
                f"v{SCHEMA_VERSION}: refusing to touch it (downgrade?)"
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
