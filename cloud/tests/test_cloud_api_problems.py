"""Errors are RFC 9457 problem details everywhere; rate limits answer 429 with
Retry-After; the OpenAPI document describes the errors."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.tests.test_cloud_api_harness import api_client, auth, build_world
from shelflink.cloud.api import ApiOptions
from shelflink.cloud.api.rate_limit import RATE_LIMIT_STORES, RateLimitStore, TokenBuckets
from shelflink.cloud.database import Connection


def assert_problem(body: dict[str, Any], status: int, kind: str) -> None:
    assert body["status"] == status
    assert body["type"] == f"urn:shelflink:problem:{kind}"
    assert body["title"] and body["detail"]


async def test_every_kind_of_error_is_a_problem(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    key = auth(world.operator_key)
    async with api_client(migrated_database_url) as (client, _):
        cases = [
            (await client.get("/api/v1/orders"), 401, "unauthorized"),
            (await client.get("/api/v1/nothing-here", headers=key), 404, "not-found"),
            (await client.get("/api/v1/orders/424242", headers=key), 404, "not-found"),
            (await client.get("/api/v1/orders/not-a-number", headers=key), 422, "validation"),
            (await client.delete("/api/v1/orders", headers=key), 405, "method-not-allowed"),
            (await client.put("/api/v1/brand", json={"name": ""}, headers=key), 422, "validation"),
            (await client.post("/api/v1/orders", content=b"{", headers=key), 422, "validation"),
            (
                await client.post(
                    "/api/v1/orders", json={}, headers=key | {"Idempotency-Key": "\x07"}
                ),
                400,
                "bad-idempotency-key",
            ),
        ]
    for response, status, kind in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert_problem(response.json(), status, kind)
    validation = cases[5][0].json()
    assert {tuple(e["loc"]) for e in validation["errors"]} >= {
        ("body", "name"),
        ("body", "currency"),
    }


@pytest.mark.parametrize("store", RATE_LIMIT_STORES)
async def test_a_key_over_its_rate_gets_429(
    db: Connection, migrated_database_url: str, store: RateLimitStore
) -> None:
    world = await build_world(db)
    # A rate this low refills nothing during the test: the burst is all there is.
    options = ApiOptions(rate_per_s=0.01, burst=3, rate_limit_store=store, pool_max_size=4)
    async with api_client(migrated_database_url, options) as (client, _):
        answers = [
            (await client.get("/api/v1/stores", headers=auth(world.north_key))) for _ in range(4)
        ]
        other_key = await client.get("/api/v1/stores", headers=auth(world.south_key))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert_problem(answers[-1].json(), 429, "rate-limited")
    assert other_key.status_code == 200


def test_token_buckets_refill_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("k") == 0.0 and buckets.take("k") == 0.0
    assert buckets.take("k") == pytest.approx(0.5)
    assert buckets.take("other") == 0.0
    now[0] = 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("k") == pytest.approx(0.5)
    now[0] = 100.0
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


async def test_openapi_documents_routes_and_their_problems(migrated_database_url: str) -> None:
    async with api_client(migrated_database_url) as (client, _):
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
    ]
    assert len(operations) >= 25
    for path, method, op in operations:
        assert op.get("summary"), (method, path)
        for status in ("401", "422", "429"):
            content = op["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
    transition = schema["paths"]["/api/v1/orders/{order_id}/transitions"]["post"]
    assert {"404", "409", "412", "428"} <= set(transition["responses"])
