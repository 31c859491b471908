"""A real webhook receiver for the webhook tests: an HTTP server (uvicorn) on a free
127.0.0.1 port that records every request and answers as the test scripts it.
Also the dispatcher options and steps those tests share. No tests here; other
modules import it as ``cloud.tests.test_cloud_webhooks_receiver``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

from shelflink.cloud.database import Connection
from shelflink.cloud.webhooks import create_webhook
from shelflink.cloud.webhooks_dispatcher import DispatchOptions, WebhookDispatcher
from shelflink.cloud.webhooks_models import WebhookCreate, WebhookCreated

HANG = "hang"  # a scripted answer: say nothing until the sender gives up


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    answered: int | str


@dataclass
class Receiver:
    """Answers the scripted statuses (or :data:`HANG`) in turn, then ``default``.

    ``delay_s`` is added to every answer, so that senders overlap in tests of
    concurrency.
    """

    script: list[int | str] = field(default_factory=list)
    default: int = 200
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer: int | str = self.script.pop(0) if self.script else self.default
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.received.append(Received(headers, body, time.time(), answer))
        async with self._arrived:
            self._arrived.notify_all()
        if answer == HANG:
            await asyncio.sleep(30)  # the sender times out long before
            answer = 200
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        assert isinstance(answer, int)
        await send({"type": "http.response.start", "status": answer,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait_for(self, requests: int) -> None:
        """Return once ``requests`` requests have arrived."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= requests)

    def delivery_ids(self) -> list[str]:
        """The X-Shelflink-Delivery header of every request, in arrival order."""
        return [r.headers["x-shelflink-delivery"] for r in self.received]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Ctrl-C belongs to pytest, not to a receiver inside a test.
        yield


@contextlib.asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve ``receiver`` on a free loopback port for the block; sets ``receiver.url``."""
    config = uvicorn.Config(
        receiver, host="127.0.0.1", port=0, interface="asgi3", lifespan="off", log_config=None,
        access_log=False, timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises why it did not start
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        receiver.url = f"http://127.0.0.1:{port}/hooks"
        yield receiver
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


def fast_options(**changes: Any) -> DispatchOptions:
    """Dispatcher options for tests: tiny backoff and timeout, loopback targets allowed."""
    base: dict[str, Any] = {
        "max_attempts": 4,
        "backoff_initial_s": 0.05,
        "backoff_maximum_s": 0.2,
        "backoff_factor": 2.0,
        "timeout_s": 2.0,  # long enough for a loaded CI machine; HANG tests wait it out
        "poll_interval_s": 0.05,
        "allow_private_targets": True,
        "rng": random.Random(7),
    }
    return DispatchOptions(**(base | changes))


async def register(
    conn: Connection, dealer_id: str, url: str, events: Sequence[str] = ("order.*",)
) -> WebhookCreated:
    """An endpoint of ``dealer_id`` at ``url``."""
    request = WebhookCreate.model_validate({"url": url, "event_types": list(events)})
    return await create_webhook(conn, dealer_id, request)


async def settle(dispatcher: WebhookDispatcher, conn: Connection, within_s: float = 15.0) -> int:
    """Dispatch until the outbox is published and no delivery is pending; the attempts made."""
    made = 0
    async with asyncio.timeout(within_s):
        while True:
            made += await dispatcher.dispatch_once(conn)
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM order_events WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending')"
            )
            row = await cur.fetchone()
            if row is not None and row[0] == 0:
                return made
            await asyncio.sleep(0.01)
