"""Object-level authorisation on every route: another dealer's key finds nothing of
north's (404 for objects, absent from lists), operator-only routes answer 403, and
north's own key (and an operator's) does find them, so the refusals mean something.

The routes come from ``app.routes``: a route added without a row in ROUTES fails
here, so no route can be forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi.routing import APIRoute, iter_route_contexts
from psycopg.types.json import Jsonb

from cloud.tests.test_cloud_api_harness import (
    GTIN_WATER,
    World,
    api_client,
    auth,
    build_world,
    new_order,
)
from shelflink.cloud.api import API_PREFIX, create_app
from shelflink.cloud.api.idempotency import IdempotentRoute
from shelflink.cloud.api_keys import issue_key
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import record_serial_shipment, set_dealer_stock
from shelflink.cloud.master_data_models import SerialShipment, StockLevel
from shelflink.cloud.webhooks import create_webhook
from shelflink.cloud.webhooks_models import WebhookCreate

Kind = Literal["object", "list", "operator", "catalog"]


@dataclass(frozen=True)
class Objects:
    """North's objects that south must not reach."""

    order_id: int
    alert_id: int
    spare_key_id: str
    webhook_id: int


@dataclass(frozen=True)
class Case:
    kind: Kind
    # For lists: the field whose value names north's object, and that value.
    marker: tuple[str, str] | None = None


STORE = {"dealer_id": "north", "name": "n", "region": "N1", "lead_time_days": 1,
         "delivery_weekdays": [1]}  # fmt: skip
HOOK_URL = "https://hooks.example.com/shelflink"
SKU = {"name": "Water", "case_pack": 12, "min_order_units": 12, "list_price_minor": 40,
       "min_resale_minor": 59, "currency": "EUR"}  # fmt: skip

ROUTES: dict[tuple[str, str], Case] = {
    ("GET", "/stores"): Case("list", ("store_id", "s0001")),
    ("GET", "/stores/{store_id}"): Case("object"),
    ("PUT", "/stores/{store_id}"): Case("operator"),
    ("POST", "/stores/bulk"): Case("operator"),
    ("GET", "/stores/{store_id}/planogram"): Case("object"),
    ("PUT", "/stores/{store_id}/planogram"): Case("operator"),
    ("GET", "/stores/{store_id}/backroom-stock"): Case("object"),
    ("GET", "/orders"): Case("list", ("dealer_id", "north")),
    ("POST", "/orders"): Case("operator"),
    ("GET", "/orders/{order_id}"): Case("object"),
    ("POST", "/orders/{order_id}/transitions"): Case("object"),
    ("GET", "/orders/{order_id}/history"): Case("object"),
    ("GET", "/alerts"): Case("list", ("dealer_id", "north")),
    ("GET", "/alerts/{alert_id}"): Case("object"),
    ("GET", "/brand"): Case("catalog"),
    ("PUT", "/brand"): Case("operator"),
    ("GET", "/skus"): Case("catalog"),
    ("GET", "/skus/{gtin}"): Case("catalog"),
    ("PUT", "/skus/{gtin}"): Case("operator"),
    ("POST", "/skus/bulk"): Case("operator"),
    ("GET", "/dealers"): Case("list", ("dealer_id", "north")),
    ("GET", "/dealers/{dealer_id}"): Case("object"),
    ("PUT", "/dealers/{dealer_id}"): Case("operator"),
    ("GET", "/dealers/{dealer_id}/stock"): Case("object"),
    ("PUT", "/dealers/{dealer_id}/stock"): Case("object"),
    ("POST", "/serial-shipments"): Case("operator"),
    ("GET", "/serial-shipments/{gtin}/{serial}"): Case("object"),
    ("GET", "/keys"): Case("list", ("dealer_id", "north")),
    ("DELETE", "/keys/{key_id}"): Case("object"),
    ("POST", "/webhooks"): Case("object"),
    ("GET", "/webhooks"): Case("list", ("dealer_id", "north")),
    ("GET", "/webhooks/{webhook_id}"): Case("object"),
    ("GET", "/webhooks/{webhook_id}/deliveries"): Case("object"),
    ("DELETE", "/webhooks/{webhook_id}"): Case("object"),  # last: it deletes the endpoint
}


def api_routes() -> dict[tuple[str, str], APIRoute]:
    app = create_app("postgresql://unused")  # routes only: the pool opens in the lifespan
    found: dict[tuple[str, str], APIRoute] = {}
    # Included routers are nested in app.routes; iter_route_contexts flattens them
    # with their full paths.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, APIRoute) and path.startswith(API_PREFIX):
            for method in context.methods or ():
                found[(method, path.removeprefix(API_PREFIX))] = route
    return found


def test_every_route_has_a_case_and_every_post_is_idempotent() -> None:
    routes = api_routes()
    assert set(routes) == set(ROUTES), "add the new route to ROUTES with what it must hide"
    for (method, path), route in routes.items():
        assert isinstance(route, IdempotentRoute), path
        assert route.summary, f"{method} {path} has no OpenAPI summary"


async def arrange(db: Connection, world: World) -> Objects:
    order = await new_order(db)
    cur = await db.execute(
        "INSERT INTO alerts (dealer_id, store_id, kind, severity, evidence)"
        " VALUES ('north', 's0001', 'grey_market', 'warning', %s) RETURNING alert_id",
        (Jsonb({"serial": "A1"}),),
    )
    row = await cur.fetchone()
    assert row is not None
    await set_dealer_stock(db, "north", [StockLevel(gtin=GTIN_WATER, units=48)])
    await record_serial_shipment(
        db,
        SerialShipment(dealer_id="north", gtin=GTIN_WATER, serials=["A1"], shipment_ref="x",
                       shipped_at=datetime(2024, 1, 1, tzinfo=UTC)),
    )  # fmt: skip
    spare = await issue_key(db, "north", label="spare")
    webhook = await create_webhook(
        db, "north", WebhookCreate.model_validate({"url": HOOK_URL, "event_types": ["order.*"]})
    )
    return Objects(order.order_id, row[0], spare.key_id, webhook.webhook_id)


def request_for(
    method: str, path: str, objects: Objects, etag: str | None
) -> tuple[str, dict[str, Any] | list[Any] | None, dict[str, str]]:
    url = API_PREFIX + path.format(
        store_id="s0001", order_id=objects.order_id, alert_id=objects.alert_id,
        dealer_id="north", gtin=GTIN_WATER, serial="A1", key_id=objects.spare_key_id,
        webhook_id=objects.webhook_id,
    )  # fmt: skip
    headers: dict[str, str] = {}
    body: dict[str, Any] | list[Any] | None = None
    match (method, path):
        case ("PUT", "/stores/{store_id}"):
            body = STORE
        case ("POST", "/stores/bulk"):
            body = {"stores": [STORE | {"store_id": "s0001"}]}
        case ("PUT", "/stores/{store_id}/planogram"):
            body = [{"device": "d", "lane": 0, "gtin": GTIN_WATER, "capacity": 5}]
        case ("POST", "/orders"):
            body = {"store_id": "s0001", "lines": [{"gtin": GTIN_WATER, "quantity": 12}],
                    "reason": "manual"}  # fmt: skip
        case ("POST", "/orders/{order_id}/transitions"):
            body = {"to": "cancelled", "note": "authz"}
            headers["If-Match"] = etag or '"0.0"'
        case ("PUT", "/brand"):
            body = {"name": "Other", "currency": "EUR"}
        case ("PUT", "/skus/{gtin}"):
            body = SKU
        case ("POST", "/skus/bulk"):
            body = {"skus": [SKU | {"gtin": GTIN_WATER}]}
        case ("PUT", "/dealers/{dealer_id}"):
            body = {"name": "Hijacked", "territory": ["N1", "N2"]}
        case ("PUT", "/dealers/{dealer_id}/stock"):
            body = [{"gtin": GTIN_WATER, "units": 0}]
        case ("POST", "/webhooks"):
            # Naming north: a dealer key may register only for itself.
            body = {"url": HOOK_URL, "event_types": ["order.*"], "dealer_id": "north"}
        case ("POST", "/serial-shipments"):
            body = {"dealer_id": "south", "gtin": GTIN_WATER, "serials": ["A9"],
                    "shipment_ref": "x", "shipped_at": "2024-01-01T00:00:00Z"}  # fmt: skip
    return url, body, headers


async def call(
    client: httpx.AsyncClient, key: str, method: str, path: str, objects: Objects, etag: str
) -> httpx.Response:
    url, body, headers = request_for(method, path, objects, etag)
    return await client.request(method, url, json=body, headers=auth(key) | headers)


async def current_etag(client: httpx.AsyncClient, world: World, order_id: int) -> str:
    response = await client.get(f"{API_PREFIX}/orders/{order_id}", headers=auth(world.operator_key))
    return response.headers["etag"]


def listed(response: httpx.Response, marker: tuple[str, str]) -> bool:
    body = response.json()
    items = body["items"] if isinstance(body, dict) else body
    field, value = marker
    return any(item[field] == value for item in items)


async def test_another_dealer_reaches_nothing_of_north(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    objects = await arrange(db, world)
    failures: list[str] = []
    async with api_client(migrated_database_url) as (client, _):
        for (method, path), case in ROUTES.items():
            etag = await current_etag(client, world, objects.order_id)
            south = await call(client, world.south_key, method, path, objects, etag)
            where = f"{method} {path}"
            if case.kind == "object" and south.status_code != 404:
                failures.append(f"{where}: south got {south.status_code}, not 404")
            if case.kind == "operator" and south.status_code != 403:
                failures.append(f"{where}: south got {south.status_code}, not 403")
            if case.kind == "list":
                assert case.marker is not None
                if south.status_code != 200 or listed(south, case.marker):
                    failures.append(f"{where}: south's list shows north's ({south.text[:200]})")
            if case.kind == "catalog" and south.status_code != 200:
                failures.append(f"{where}: the catalog is everyone's, got {south.status_code}")
            if south.status_code in (403, 404) and (
                south.headers["content-type"] != "application/problem+json"
            ):
                failures.append(f"{where}: the refusal is not a problem")

            # The same call from north (an operator for operator routes) succeeds.
            owner = world.operator_key if case.kind == "operator" else world.north_key
            etag = await current_etag(client, world, objects.order_id)
            allowed = await call(client, owner, method, path, objects, etag)
            if allowed.status_code >= 300:
                failures.append(f"{where}: the owner got {allowed.status_code} {allowed.text}")
            elif case.kind == "list" and case.marker and not listed(allowed, case.marker):
                failures.append(f"{where}: the owner's list lacks its own object")
            if case.kind == "operator":
                north = await call(client, world.north_key, method, path, objects, etag)
                if north.status_code != 403:
                    failures.append(f"{where}: a dealer key got {north.status_code}, not 403")
    assert not failures, "\n".join(failures)


async def test_operators_see_every_dealers_objects(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    objects = await arrange(db, world)
    await new_order(db, "s0002")
    async with api_client(migrated_database_url) as (client, _):
        orders = await client.get(f"{API_PREFIX}/orders", headers=auth(world.operator_key))
        assert {o["dealer_id"] for o in orders.json()["items"]} == {"north", "south"}
        stores = await client.get(f"{API_PREFIX}/stores", headers=auth(world.operator_key))
        assert [s["store_id"] for s in stores.json()["items"]] == ["s0001", "s0002"]
        alert = await client.get(
            f"{API_PREFIX}/alerts/{objects.alert_id}", headers=auth(world.operator_key)
        )
        assert alert.status_code == 200 and alert.json()["evidence"] == {"serial": "A1"}
