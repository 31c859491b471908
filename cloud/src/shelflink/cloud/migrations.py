"""Versioned schema migrations: numbered SQL files, applied once, in order, safely in parallel.

Files live in ``migrations/`` as ``NNNN_name.sql`` (both storage paths) or
``NNNN_name.plain.sql`` + ``NNNN_name.timescale.sql`` (one per path). A file is
never edited once committed: its checksum is recorded, and a database whose
applied migration no longer matches its file is refused.

The storage path ("flavour") is chosen once, by the first migration run on a
database: TimescaleDB when the server can load it, plain PostgreSQL otherwise
(or as forced by the caller). It is recorded with every applied migration, so
later migrations, the writer and retention all follow the same path even if
TimescaleDB is installed later.

Each migration runs in its own transaction under a transaction-scoped
advisory lock, so workers that start together queue behind each other and
each sees what the others applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from shelflink.cloud.database import Connection, transaction
from shelflink.cloud.settings import StorageFlavour

logger = logging.getLogger(__name__)

Flavour = Literal["plain", "timescale"]
FLAVOURS: tuple[Flavour, ...] = ("plain", "timescale")
# pg_advisory_xact_lock(int4, int4): "SHLF", "MIGR".
MIGRATION_LOCK = (0x53484C46, 0x4D494752)
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    flavour text NOT NULL CHECK (flavour IN ('plain', 'timescale')),
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The database's schema history and this code's migrations disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    flavour: Flavour | None  # None: the same file for both paths
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        suffix = f".{self.flavour}" if self.flavour else ""
        return f"{self.version:04d}_{self.name}{suffix}"


def available_migrations() -> list[Migration]:
    """Every migration file shipped in the package, ordered by version."""
    found: list[Migration] = []
    for entry in resources.files("shelflink.cloud").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        flavour = match.group(3)
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                flavour=flavour if flavour in FLAVOURS else None,
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    return sorted(found, key=lambda m: (m.version, m.flavour or ""))


def plan(migrations: list[Migration], flavour: Flavour) -> list[Migration]:
    """The migrations one storage path applies, one per version."""
    by_version: dict[int, list[Migration]] = {}
    for migration in migrations:
        by_version.setdefault(migration.version, []).append(migration)
    chosen: list[Migration] = []
    for version, variants in sorted(by_version.items()):
        common = [m for m in variants if m.flavour is None]
        mine = [m for m in variants if m.flavour == flavour]
        if common and len(variants) > 1:
            raise MigrationError(f"migration {version:04d} has a common file and variants")
        pick = common or mine
        if len(pick) != 1:
            raise MigrationError(f"migration {version:04d} has no single {flavour} file")
        chosen.append(pick[0])
    return chosen


async def detect_flavour(conn: Connection) -> Flavour:
    """TimescaleDB when it is installed, or available and preloaded (CREATE EXTENSION works)."""
    cur = await conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
               EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
               current_setting('shared_preload_libraries')
        """
    )
    row = await cur.fetchone()
    assert row is not None
    installed, available, preload = row
    if installed or (available and "timescaledb" in preload):
        return "timescale"
    return "plain"


async def storage_flavour(conn: Connection) -> Flavour:
    """The path this database was migrated on; MigrationError when it was never migrated."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if row is not None and row[0]:
        cur = await conn.execute("SELECT flavour FROM schema_migrations ORDER BY version LIMIT 1")
        row = await cur.fetchone()
        if row is not None:
            flavour: Flavour = row[0]
            return flavour
    raise MigrationError("the database has no schema yet: run `shelflink cloud migrate`")


async def migrate(conn: Connection, flavour: StorageFlavour = "auto") -> list[str]:
    """Apply what is pending; returns the labels applied now (empty when up to date)."""
    shipped = available_migrations()
    applied_now: list[str] = []
    while True:
        async with transaction(conn):
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
            await conn.execute(_SCHEMA_MIGRATIONS)
            cur = await conn.execute(
                "SELECT version, name, flavour, checksum FROM schema_migrations ORDER BY version"
            )
            history = await cur.fetchall()
            if history:
                chosen: Flavour = history[0][2]
                if flavour != "auto" and flavour != chosen:
                    raise MigrationError(f"this database was migrated for {chosen}, not {flavour}")
            else:
                chosen = await detect_flavour(conn) if flavour == "auto" else flavour
            wanted = plan(shipped, chosen)
            _check_history(history, wanted)
            done = {row[0] for row in history}
            pending = [m for m in wanted if m.version not in done]
            if not pending:
                return applied_now
            migration = pending[0]
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, flavour, checksum)"
                " VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, chosen, migration.checksum),
            )
            logger.info("applied migration %s", migration.label)
            applied_now.append(migration.label)


def _check_history(history: list[tuple[int, str, str, str]], wanted: list[Migration]) -> None:
    known = {m.version: m for m in wanted}
    for version, name, _flavour, checksum in history:
        migration = known.get(version)
        if migration is None:
            # A newer release migrated this database; this one can still run on it.
            logger.warning("database has migration %04d_%s, unknown to this release", version, name)
        elif migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.label} changed after it was applied; "
                "committed migrations are never edited, add a new one"
            )
