"""Rate limits that hold across API processes: one bucket per key in PostgreSQL,
shared by every app on the database, exact under concurrent requests, failing
open when the bucket table cannot be reached, and idle buckets purged."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import httpx
import pytest

from cloud.tests.test_cloud_api_harness import api_client, auth, build_world, count
from shelflink.cloud.api import ApiOptions
from shelflink.cloud.api.rate_limit import (
    MIN_IDLE_BEFORE_PURGE_S,
    DatabaseLimiter,
    RateLimitStore,
)
from shelflink.cloud.api.serve import SchemaMissing, check_schema
from shelflink.cloud.api.state import ApiState
from shelflink.cloud.database import Connection, create_pool

# A rate this low refills nothing during a test: the burst is all there is.
SLOW_RATE = 0.001


def limited(burst: int, store: RateLimitStore = "database") -> ApiOptions:
    return ApiOptions(rate_per_s=SLOW_RATE, burst=burst, rate_limit_store=store, pool_max_size=4)


async def test_two_api_processes_spend_from_one_bucket_per_key(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    north, south = auth(world.north_key), auth(world.south_key)
    async with (
        api_client(migrated_database_url, limited(3)) as (one, _),
        api_client(migrated_database_url, limited(3)) as (two, _),
    ):
        answers = [
            await client.get("/api/v1/stores", headers=north)
            for client in (one, two, one, two, one)
        ]
        other_key = await two.get("/api/v1/stores", headers=south)
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    for refused in answers[3:]:
        assert refused.json()["type"] == "urn:shelflink:problem:rate-limited"
        # The wait is for the next token at the shared rate, not a guess.
        assert 0.9 / SLOW_RATE < int(refused.headers["retry-after"]) <= 1 / SLOW_RATE
    assert other_key.status_code == 200
    assert await count(db, "SELECT count(*) FROM api_rate_buckets") == 2


async def test_the_process_store_gives_each_process_its_own_bucket(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    north = auth(world.north_key)
    async with (
        api_client(migrated_database_url, limited(2, "process")) as (one, _),
        api_client(migrated_database_url, limited(2, "process")) as (two, _),
    ):
        answers = [
            await client.get("/api/v1/stores", headers=north) for client in (one, one, one, two)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429, 200]
    assert await count(db, "SELECT count(*) FROM api_rate_buckets") == 0


async def test_concurrent_requests_of_one_key_get_exactly_the_burst(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    burst, requests = 5, 24
    async with AsyncExitStack() as stack:
        clients: list[httpx.AsyncClient] = [
            (await stack.enter_async_context(api_client(migrated_database_url, limited(burst))))[0]
            for _ in range(2)
        ]
        answers = await asyncio.gather(
            *(
                clients[i % 2].get("/api/v1/stores", headers=auth(world.north_key))
                for i in range(requests)
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * burst + [429] * (requests - burst)


async def test_an_unreachable_bucket_table_lets_requests_through(
    db: Connection, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url, limited(1)) as (client, app):
        await db.execute("ALTER TABLE api_rate_buckets RENAME TO api_rate_buckets_away")
        with caplog.at_level(logging.WARNING, logger="shelflink.cloud.api.rate_limit"):
            answers = [
                await client.get("/api/v1/stores", headers=auth(world.north_key)) for _ in range(3)
            ]
            state: ApiState = app.state.shelflink
            assert isinstance(state.rate_limiter, DatabaseLimiter)
            assert state.rate_limiter.failures == 3
            with pytest.raises(SchemaMissing, match="0007"):
                await check_schema(migrated_database_url, "database")
            await check_schema(migrated_database_url, "process")

            await db.execute("ALTER TABLE api_rate_buckets_away RENAME TO api_rate_buckets")
            back = [
                await client.get("/api/v1/stores", headers=auth(world.north_key)) for _ in range(2)
            ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    # Limited again: the first request spends the burst of 1.
    assert [a.status_code for a in back] == [200, 429]
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("rate_limit")]
    assert len(warnings) == 2  # one when it failed, one when it answered again
    assert "3 requests went unlimited" in warnings[1]


async def test_buckets_idle_past_the_horizon_are_purged(
    db: Connection, migrated_database_url: str
) -> None:
    async with create_pool(migrated_database_url, max_size=2) as pool, pool.connection() as own:
        limiter = DatabaseLimiter(rate=SLOW_RATE, burst=2)
        for key in ("idle", "recent"):
            assert await limiter.take(key, own) == 0.0
        await db.execute(
            "UPDATE api_rate_buckets SET updated_at = updated_at - make_interval(secs => %s)"
            " WHERE key_id = 'idle'",
            (MIN_IDLE_BEFORE_PURGE_S + 60,),
        )
        async with pool.connection() as conn:
            assert await limiter.purge_idle(conn) == 1
        # A purged bucket is a full one: the key starts again with its whole burst.
        assert [await limiter.take("idle", own) for _ in range(2)] == [0.0, 0.0]
        assert await limiter.take("idle", own) > 0.9 / SLOW_RATE
    cur = await db.execute("SELECT key_id FROM api_rate_buckets ORDER BY 1")
    assert await cur.fetchall() == [("idle",), ("recent",)]
