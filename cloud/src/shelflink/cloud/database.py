"""The cloud's one way to reach PostgreSQL: connections, pools, transactions.

Every service and tool goes through here, so connection options (autocommit,
timeouts, the application name that shows in ``pg_stat_activity``) are set in
one place. Connections are autocommit: a transaction is always an explicit
``async with transaction(conn)`` block, never an implicit one left open by a
stray query (psycopg would then turn the next ``conn.transaction()`` into a
savepoint that commits nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from shelflink.cloud.settings import CloudSettings

Connection: TypeAlias = psycopg.AsyncConnection[Any]

APPLICATION_NAME = "shelflink-cloud"
CONNECT_TIMEOUT_S = 10


async def connect(url: str, *, application_name: str = APPLICATION_NAME) -> Connection:
    """An autocommit connection; the caller closes it (``async with await connect(url)``)."""
    return await psycopg.AsyncConnection.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=application_name,
    )


def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    name: str = APPLICATION_NAME,
) -> AsyncConnectionPool[Connection]:
    """A pool of autocommit connections, not yet open: ``async with create_pool(url) as pool``."""
    return AsyncConnectionPool(
        url,
        kwargs={
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": name,
        },
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
    )


@asynccontextmanager
async def transaction(conn: Connection) -> AsyncIterator[None]:
    """A transaction, or the caller's when one is already open.

    Storage functions use this so that a caller may group several of them into
    one commit (the ingest commits batches and dead letters together), while a
    lone call still commits on its own.
    """
    if conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            yield
    else:
        yield


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database (URL or key=value form)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


@asynccontextmanager
async def open_database(settings: CloudSettings) -> AsyncIterator[str]:
    """The database URL to use: the configured one, or an embedded server's for the block."""
    if settings.database_url:
        yield settings.database_url
        return
    # Imported here: a service pointed at a real server never touches the wheel.
    from shelflink.cloud.embedded import EmbeddedPostgres

    async with EmbeddedPostgres(
        settings.embedded_postgres_dir, run_as=settings.embedded_postgres_user
    ) as server:
        yield server.url
