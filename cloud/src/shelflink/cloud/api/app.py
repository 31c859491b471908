"""The dealer API application: ``create_app(database_url)``.

Nothing is created at import time: the pool opens in the app's lifespan, so
the same factory serves ``shelflink cloud serve`` and each test's own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from shelflink.cloud.api.idempotency import purge_expired
from shelflink.cloud.api.problems import PROBLEM_JSON, install_problem_handlers
from shelflink.cloud.api.rate_limit import (
    RATE_LIMIT_STORES,
    DatabaseLimiter,
    ProcessLimiter,
    RateLimiter,
    TokenBuckets,
)
from shelflink.cloud.api.routes import alerts, catalog, dealers, keys, orders, stores, webhooks
from shelflink.cloud.api.state import ApiOptions, ApiState
from shelflink.cloud.database import Connection, create_pool

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DESCRIPTION = """\
Replenishment orders and master data for dealers and the brand's operators.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. A dealer's
key sees only that dealer's stores, orders and alerts; an operator's key sees
everything and may change master data. Errors are RFC 9457 problem details
(`application/problem+json`). POSTs accept an `Idempotency-Key` header. See
docs/dealer-api.md.
"""


class Health(BaseModel):
    """The API and its database answer."""

    status: str


def create_app(database_url: str, options: ApiOptions | None = None) -> FastAPI:
    """The dealer API on the database at ``database_url`` (migrated to 0004 or later;
    0007 or later for the "database" rate-limit store)."""
    opts = options or ApiOptions()
    if opts.rate_limit_store not in RATE_LIMIT_STORES:
        raise ValueError(f"rate_limit_store must be one of {', '.join(RATE_LIMIT_STORES)}")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Connection] = create_pool(
            database_url,
            min_size=opts.pool_min_size,
            max_size=opts.pool_max_size,
            name="shelflink-dealer-api",
        )
        async with pool:
            shared: DatabaseLimiter | None = None
            limiter: RateLimiter = ProcessLimiter(TokenBuckets(opts.rate_per_s, opts.burst))
            if opts.rate_limit_store == "database":
                limiter = shared = DatabaseLimiter(opts.rate_per_s, opts.burst)
            app.state.shelflink = ApiState(options=opts, pool=pool, rate_limiter=limiter)
            purger = asyncio.create_task(_purge(pool, opts.purge_every_s, shared))
            try:
                yield
            finally:
                purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purger

    app = FastAPI(
        title="Shelflink dealer API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_problem_handlers(app)
    for module in (stores, orders, alerts, catalog, dealers, keys, webhooks):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get("/health", summary="Liveness and database check", response_model=Health)
    async def health() -> Health:
        state: ApiState = app.state.shelflink
        async with state.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return Health(status="ok")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_only_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _problem_only_errors(schema: dict[str, Any]) -> dict[str, Any]:
    # FastAPI lists a response model under application/json too; our errors are
    # only ever application/problem+json.
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_JSON in content:
                    content.pop("application/json", None)
    return schema


async def _purge(
    pool: AsyncConnectionPool[Connection], every_s: float, buckets: DatabaseLimiter | None
) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            async with pool.connection() as conn:
                purged = await purge_expired(conn)
                idle = 0 if buckets is None else await buckets.purge_idle(conn)
            logger.info(
                "purged %d expired idempotency records and %d idle rate-limit buckets",
                purged,
                idle,
            )
        except Exception:  # a database hiccup must not end the purging for good
            logger.exception("purging idempotency records and rate-limit buckets failed")
