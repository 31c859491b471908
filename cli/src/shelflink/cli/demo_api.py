"""The dealer API inside the demo's process, on a loopback port.

``shelflink cloud serve`` owns its process and its signals; in the demo the
API is one more task beside the gateways, so uvicorn must leave SIGINT to the
demo (Ctrl-C ends everything together) and stop when the demo stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn

from shelflink.cloud.api import ApiOptions, create_app

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 5.0


class _InProcessServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The demo handles Ctrl-C; uvicorn's own handlers would swallow it.
        yield


@contextlib.asynccontextmanager
async def dealer_api(
    database_url: str, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the dealer API for the block; yields its base URL (``port=0``: a free one)."""
    config = uvicorn.Config(
        create_app(database_url, ApiOptions(pool_max_size=4)),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = _InProcessServer(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    await task  # raises what stopped it (a port in use, say)
                    raise RuntimeError("the dealer API stopped while starting")
                await asyncio.sleep(0.05)
        bound = server.servers[0].sockets[0].getsockname()
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                await task
        except TimeoutError:
            task.cancel()
