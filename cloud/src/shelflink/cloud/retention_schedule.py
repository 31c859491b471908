"""Retention on a schedule: every ingest worker keeps it, one worker at a time applies it.

A worker runs a round soon after it starts and then every few hours (both
configurable; an interval of 0 turns the schedule off). A round opens its own
connection, never the ingest's, and takes a session-level advisory lock with
``pg_try_advisory_lock``: the worker that gets it applies
:func:`~shelflink.cloud.partitions.apply_retention`, the others skip that round
instead of queueing. The lock is the session's, so closing the connection (or
the worker dying) releases it. A round that fails is logged and counted, and
the next round tries again; it never stops ingest.

Dropping a day partition briefly takes ACCESS EXCLUSIVE on its parent table:
``apply_retention`` gives each drop its own short transaction with a lock
timeout, so ingest commits wait at most that long behind it, and the round
holds no other lock meanwhile, so it cannot deadlock with the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import psycopg

from shelflink.cloud.database import connect
from shelflink.cloud.migrations import MigrationError
from shelflink.cloud.partitions import apply_retention

logger = logging.getLogger(__name__)

# pg_try_advisory_lock(int4, int4): "SHLF", "RETE". Session-level: a round
# commits as it goes, so a transaction-scoped lock would not cover it.
RETENTION_LOCK: Final = (0x53484C46, 0x52455445)
RETENTION_EVERY_S: Final = 6 * 3600.0
# Soon, but after the start-up burst (a restarted fleet replays its buffers).
RETENTION_FIRST_AFTER_S: Final = 60.0
TASK_NAME: Final = "ingest-retention"


@dataclass(slots=True)
class RetentionStatus:
    """What this worker's schedule did; read it, never write it (no I/O to read)."""

    rounds_applied: int = 0
    rounds_skipped: int = 0  # another worker held the lock
    rounds_failed: int = 0
    partitions_dropped: int = 0
    last_applied_at: datetime | None = None  # when the last applied round ended
    last_dropped: tuple[str, ...] = ()  # what that round dropped
    last_error: str | None = None  # the last failed round's, cleared by an applied one
    next_round_at: datetime | None = None  # None: no schedule


async def retention_round(
    database_url: str, days: int, status: RetentionStatus, *, application_name: str
) -> list[str] | None:
    """One round: what was dropped, or None when skipped or failed (``status`` says which).

    Never raises but for cancellation: a failed round waits for the next one.
    """
    try:
        async with await connect(database_url, application_name=application_name) as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", RETENTION_LOCK)
            row = await cur.fetchone()
            if row is None or not row[0]:
                status.rounds_skipped += 1
                logger.info("retention: another worker is applying it, round skipped")
                return None
            dropped = await apply_retention(conn, days)
    except (psycopg.Error, MigrationError, OSError) as exc:
        _failed(status, exc)
        logger.warning("retention round failed, the next round tries again: %s", exc)
        return None
    except Exception as exc:  # a bug must not stop ingest either: logged in full
        _failed(status, exc)
        logger.exception("retention round failed, the next round tries again")
        return None
    status.rounds_applied += 1
    status.partitions_dropped += len(dropped)
    status.last_applied_at = datetime.now(UTC)
    status.last_dropped = tuple(dropped)
    status.last_error = None
    logger.info("retention applied (%d days): %d partitions dropped", days, len(dropped))
    return dropped


def _failed(status: RetentionStatus, exc: BaseException) -> None:
    status.rounds_failed += 1
    status.last_error = f"{type(exc).__name__}: {exc}"


async def keep_retention(
    database_url: str,
    days: int,
    status: RetentionStatus,
    *,
    every_s: float,
    first_after_s: float,
    application_name: str,
) -> None:
    """Until cancelled: a round after ``first_after_s``, then one every ``every_s``."""
    if every_s <= 0:
        raise ValueError("every_s must be above 0")
    delay = first_after_s
    try:
        while True:
            status.next_round_at = datetime.now(UTC) + timedelta(seconds=delay)
            await asyncio.sleep(delay)
            status.next_round_at = None
            await retention_round(database_url, days, status, application_name=application_name)
            delay = every_s
    finally:
        status.next_round_at = None


@contextlib.asynccontextmanager
async def scheduled_retention(
    database_url: str,
    status: RetentionStatus,
    *,
    every_s: float,
    first_after_s: float,
    days: int | None,
    application_name: str,
) -> AsyncIterator[None]:
    """Keep retention for the block (nothing when ``every_s`` is 0); cancelled on exit.

    ``days`` None: the settings' ``retention_days`` (``SHELFLINK_RETENTION_DAYS``).
    """
    if not (every_s >= 0 and first_after_s >= 0):  # NaN fails both
        raise ValueError("retention intervals are 0 or more seconds")
    if every_s == 0:
        logger.info("retention schedule off: run `shelflink cloud retention` yourself")
        yield
        return
    if days is None:
        # Imported here: settings are read when a worker starts, never at import.
        from shelflink.cloud.settings import load_settings

        days = load_settings().retention_days
    if days < 1:
        raise ValueError("retention keeps at least one day")
    logger.info(
        "retention: keeping %d days, a round in %.0f s and then every %.0f s",
        days, first_after_s, every_s,
    )  # fmt: skip
    task = asyncio.create_task(
        keep_retention(
            database_url, days, status, every_s=every_s, first_after_s=first_after_s,
            application_name=application_name,
        ),
        name=TASK_NAME,
    )  # fmt: skip
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
