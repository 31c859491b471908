"""Stores, their planograms and backroom stock: a dealer sees its own, operators all."""

from __future__ import annotations

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
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import (
    MasterDataError,
    get_store,
    list_stores,
    planogram,
    replace_planogram,
    upsert_stores,
)
from shelflink.cloud.master_data_models import (
    PlanogramLane,
    StockLevel,
    Store,
    StoreChanges,
    StoreUpsert,
)
from shelflink.cloud.orders import backroom_stock

router = make_router("stores")


class StoreBulk(BaseModel):
    """Stores to create or change, all or none."""

    model_config = ConfigDict(extra="forbid")
    stores: list[StoreUpsert] = Field(min_length=1, max_length=10_000)


class Upserted(BaseModel):
    """How many objects a bulk load created or changed."""

    upserted: int


def refused(exc: MasterDataError) -> Problem:
    """A change the master data refuses, as a 422 problem."""
    return Problem(422, "master-data-refused", str(exc), title="Refused by the master data")


async def visible_store(conn: Connection, store_id: str, dealer_id: str | None) -> Store:
    """The store if the caller may see it, else a 404 problem."""
    store = await get_store(conn, store_id, dealer_id=dealer_id)
    if store is None:
        raise Problem(404, "not-found", f"no store {store_id}")
    return store


@router.get("/stores", summary="List stores", response_model=Page[Store])
async def stores(
    conn: ConnDep, caller: CallerDep, cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_LIMIT
) -> Page[Store]:
    """The caller's stores (every store for an operator), by id."""
    found = await list_stores(
        conn, dealer_id=caller.dealer_id, after=decode_str_cursor(cursor), limit=limit + 1
    )
    return page_of(found, lambda s: s.store_id, limit)


@router.get(
    "/stores/{store_id}", summary="One store", response_model=Store,
    responses=problem_responses(404),
)  # fmt: skip
async def store(conn: ConnDep, caller: CallerDep, store_id: str) -> Store:
    return await visible_store(conn, store_id, caller.dealer_id)


@router.put(
    "/stores/{store_id}", summary="Create or change a store (operators)", response_model=Store,
    responses=problem_responses(403),
)  # fmt: skip
async def put_store(
    conn: ConnDep, _operator: OperatorDep, store_id: str, changes: StoreChanges
) -> Store:
    """The store's region must be in its dealer's territory."""
    try:
        (stored,) = await upsert_stores(
            conn, [StoreUpsert(store_id=store_id, **changes.model_dump())]
        )
    except MasterDataError as exc:
        raise refused(exc) from exc
    return stored


@router.post(
    "/stores/bulk", summary="Create or change many stores (operators)", response_model=Upserted,
    responses=problem_responses(403),
)  # fmt: skip
async def bulk_stores(conn: ConnDep, _operator: OperatorDep, body: StoreBulk) -> Upserted:
    """All stores or none: one refused store refuses the load."""
    try:
        stored = await upsert_stores(conn, body.stores)
    except MasterDataError as exc:
        raise refused(exc) from exc
    return Upserted(upserted=len(stored))


@router.get(
    "/stores/{store_id}/planogram", summary="A store's planogram",
    response_model=list[PlanogramLane], responses=problem_responses(404),
)  # fmt: skip
async def store_planogram(conn: ConnDep, caller: CallerDep, store_id: str) -> list[PlanogramLane]:
    await visible_store(conn, store_id, caller.dealer_id)
    return await planogram(conn, store_id)


@router.put(
    "/stores/{store_id}/planogram", summary="Replace a store's planogram (operators)",
    response_model=list[PlanogramLane], responses=problem_responses(403, 404),
)  # fmt: skip
async def put_planogram(
    conn: ConnDep, _operator: OperatorDep, store_id: str, lanes: list[PlanogramLane]
) -> list[PlanogramLane]:
    """Lanes not listed are removed from the planogram."""
    await visible_store(conn, store_id, None)
    try:
        return await replace_planogram(conn, store_id, lanes)
    except MasterDataError as exc:
        raise refused(exc) from exc


@router.get(
    "/stores/{store_id}/backroom-stock", summary="What deliveries put in a store's backroom",
    response_model=list[StockLevel], responses=problem_responses(404),
)  # fmt: skip
async def store_backroom(conn: ConnDep, caller: CallerDep, store_id: str) -> list[StockLevel]:
    await visible_store(conn, store_id, caller.dealer_id)
    return await backroom_stock(conn, store_id)
