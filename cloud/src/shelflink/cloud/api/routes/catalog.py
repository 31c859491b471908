"""The brand and its SKU catalog: every key reads them, operators change them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from shelflink.cloud.api.auth import CallerDep, OperatorDep
from shelflink.cloud.api.deps import ConnDep
from shelflink.cloud.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    decode_str_cursor,
    page_of,
)
from shelflink.cloud.api.problems import Problem, problem_responses
from shelflink.cloud.api.routes import make_router
from shelflink.cloud.api.routes.stores import Upserted
from shelflink.cloud.master_data import (
    get_brand,
    get_sku,
    list_skus,
    set_brand,
    sku_from_changes,
    upsert_skus,
)
from shelflink.cloud.master_data_models import Brand, Sku, SkuChanges

router = make_router("catalog")

GtinPath = Annotated[str, Path(pattern=r"^[0-9]{8,14}$", examples=["4006381333931"])]


class SkuBulk(BaseModel):
    """SKUs to create or change, all or none."""

    model_config = ConfigDict(extra="forbid")
    skus: list[Sku] = Field(min_length=1, max_length=10_000)


@router.get("/brand", summary="The brand", response_model=Brand, responses=problem_responses(404))
async def brand(conn: ConnDep, _caller: CallerDep) -> Brand:
    found = await get_brand(conn)
    if found is None:
        raise Problem(404, "not-found", "the brand is not set up yet")
    return found


@router.put(
    "/brand", summary="Set the brand (operators)", response_model=Brand,
    responses=problem_responses(403),
)  # fmt: skip
async def put_brand(conn: ConnDep, _operator: OperatorDep, body: Brand) -> Brand:
    return await set_brand(conn, body)


@router.get("/skus", summary="List the catalog", response_model=Page[Sku])
async def skus(
    conn: ConnDep, _caller: CallerDep, cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_LIMIT
) -> Page[Sku]:
    """SKUs by GTIN."""
    found = await list_skus(conn, after=decode_str_cursor(cursor), limit=limit + 1)
    return page_of(found, lambda s: s.gtin, limit)


@router.get("/skus/{gtin}", summary="One SKU", response_model=Sku, responses=problem_responses(404))
async def sku(conn: ConnDep, _caller: CallerDep, gtin: str) -> Sku:
    found = await get_sku(conn, gtin)
    if found is None:
        raise Problem(404, "not-found", f"no SKU {gtin}")
    return found


@router.put(
    "/skus/{gtin}", summary="Create or change a SKU (operators)", response_model=Sku,
    responses=problem_responses(403),
)  # fmt: skip
async def put_sku(
    conn: ConnDep, _operator: OperatorDep, gtin: GtinPath, changes: SkuChanges
) -> Sku:
    (stored,) = await upsert_skus(conn, [sku_from_changes(gtin, changes)])
    return stored


@router.post(
    "/skus/bulk", summary="Create or change many SKUs (operators)", response_model=Upserted,
    responses=problem_responses(403),
)  # fmt: skip
async def bulk_skus(conn: ConnDep, _operator: OperatorDep, body: SkuBulk) -> Upserted:
    return Upserted(upserted=len(await upsert_skus(conn, body.skus)))
