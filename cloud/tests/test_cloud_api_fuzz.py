"""Fuzzing the dealer API from its own OpenAPI document (schemathesis): every operation,
valid and invalid inputs, with an operator's key and a dealer's key, against the app
in process on a seeded database of the test's own.

No input may cause a server error, and every answer must match the document (its
status codes, content types, headers and schemas). Examples are few and
derandomised, so a run is reproducible and bounded; raise ``MAX_EXAMPLES``
locally to search harder.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from psycopg import sql
from schemathesis import checks
from schemathesis.python.asgi import shutdown_lifespans

from cloud.tests.test_cloud_api_harness import auth, build_world, new_order
from shelflink.cloud.api import ApiOptions, create_app
from shelflink.cloud.database import connect, with_database
from shelflink.cloud.webhooks import create_webhook
from shelflink.cloud.webhooks_models import WebhookCreate

MAX_EXAMPLES = 12


@dataclass(frozen=True)
class Target:
    """The app under test and the two scopes every case is sent with."""

    app: FastAPI
    operator_key: str
    dealer_key: str


async def _seed(database_url: str) -> tuple[str, str]:
    async with await connect(database_url) as conn:
        world = await build_world(conn, auto_approve_below_minor=1000)
        for store in ("s0001", "s0002", "s0001"):
            await new_order(conn, store)
        await create_webhook(
            conn, "north",
            WebhookCreate.model_validate(
                {"url": "https://hooks.example.com/x", "event_types": ["order.*"]}
            ),
        )  # fmt: skip
    return world.operator_key, world.north_key


@pytest.fixture(scope="module")
def fuzz_database_url(database_url: str, _migrated_template: str) -> Iterator[str]:
    """One migrated database for every operation of this module (each operation's
    cases share it, as a real API's clients do), dropped afterwards."""
    name = f"shelflink_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(_migrated_template)
            )
        )
    try:
        yield with_database(database_url, name)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def fuzz_target(fuzz_database_url: str) -> Iterator[Target]:
    operator_key, dealer_key = asyncio.run(_seed(fuzz_database_url))
    # Generous rate limits: the fuzzer is not testing the 429.
    app = create_app(
        fuzz_database_url, ApiOptions(rate_per_s=100_000.0, burst=100_000, pool_max_size=4)
    )
    try:
        yield Target(app, operator_key, dealer_key)
    finally:
        # The app's lifespan (its pool), started by the first call, ends before the
        # database is dropped.
        shutdown_lifespans()


# Every other check of schemathesis runs (not_a_server_error first among them).
# These two expect what a stateful API cannot promise:
TOO_STRICT = [
    # "A schema-valid request is accepted": here a valid request may name an order or
    # dealer that does not exist (404), break a master-data rule (422), or need the
    # If-Match the workflow demands (428). It also misjudges integers just above
    # 2**62 as valid, comparing them as floats.
    checks.positive_data_acceptance,
    # "An undeclared method answers 405": PUT /skus/bulk is PUT /skus/{gtin} with
    # the GTIN "bulk", which is rightly a 422.
    checks.unsupported_method,
]

# The document of the app itself: routes are known without a database.
schema = schemathesis.openapi.from_dict(create_app("postgresql://unused").openapi())


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_breaks_the_api_or_its_contract(case: Any, fuzz_target: Target) -> None:
    # The ignored_auth check sends its own probe (the request without the key) to the
    # app of the operation's schema, which a schema loaded from a document lacks.
    case.operation.schema.app = fuzz_target.app
    for key in (fuzz_target.operator_key, fuzz_target.dealer_key):
        excluded = list(TOO_STRICT)
        if case.path.endswith("/bulk"):
            # OPTIONS /stores/bulk answers 405 with Allow: GET, POST, PUT, and rightly:
            # GET and PUT of that path reach /stores/{store_id}. The document lists
            # POST only for it.
            excluded.append(checks.allow_header_conformance)
        case.call_and_validate(app=fuzz_target.app, headers=auth(key), excluded_checks=excluded)
