"""Waiting for a broker to accept TCP connections."""

from __future__ import annotations

import asyncio
import contextlib
import time

from shelflink.broker.errors import BrokerUnreachableError

_POLL_INTERVAL_S = 0.05


async def wait_for_broker(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Return once ``host:port`` accepts a TCP connection; raise ``BrokerUnreachableError``
    if nothing does within ``timeout_s``.

    A TCP accept is all this proves: enough for "the process is up", which is what callers
    that just started or restarted a broker need before they let clients connect.
    """
    deadline = time.monotonic() + timeout_s
    last_error: OSError | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnreachableError(
                f"no broker accepted connections at {host}:{port} within {timeout_s:g} s"
                + (f" (last error: {last_error})" if last_error else "")
            )
        try:
            async with asyncio.timeout(remaining):
                _reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            continue
        except OSError as exc:
            last_error = exc
            await asyncio.sleep(min(_POLL_INTERVAL_S, max(remaining, 0)))
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
