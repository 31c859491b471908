"""Run the dealer API under uvicorn until SIGINT or SIGTERM.

Signals end ``serve()`` normally instead of being re-raised after uvicorn's
shutdown (uvicorn's default), so that the caller's context managers (the
embedded PostgreSQL above all) stop cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from shelflink.cloud.api.app import create_app
from shelflink.cloud.api.rate_limit import RateLimitStore
from shelflink.cloud.api.state import ApiOptions
from shelflink.cloud.database import connect


class SchemaMissing(RuntimeError):
    """The database lacks the dealer tables, or the rate-limit table its store needs."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # serve() installs its own handlers on the event loop instead.
        yield


async def check_schema(database_url: str, rate_limit_store: RateLimitStore | None = None) -> None:
    """Raise :class:`SchemaMissing` unless the dealer tables exist (and the buckets' table,
    for the "database" rate-limit store)."""
    async with await connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT to_regclass('orders') IS NOT NULL, to_regclass('api_rate_buckets') IS NOT NULL"
        )
        row = await cur.fetchone()
    if row is None or not row[0]:
        raise SchemaMissing("the database has no dealer tables: run `shelflink cloud migrate`")
    # Without it the limiter would let every request through (it fails open).
    if rate_limit_store == "database" and not row[1]:
        raise SchemaMissing(
            "the database has no rate-limit table (migration 0007): run `shelflink cloud migrate`"
        )


async def serve(
    database_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    options: ApiOptions | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the API until a signal; ``on_ready`` gets the base URL once it listens
    (``port=0`` picks a free port)."""
    await check_schema(database_url, (options or ApiOptions()).rate_limit_store)
    config = uvicorn.Config(
        create_app(database_url, options), host=host, port=port, log_config=None, access_log=False
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    try:
        task = asyncio.create_task(server.serve())
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started and on_ready is not None:
            bound = server.servers[0].sockets[0].getsockname()
            on_ready(f"http://{bound[0]}:{bound[1]}")
        await task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
