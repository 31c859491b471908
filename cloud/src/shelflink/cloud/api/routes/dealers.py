"""Dealers, their warehouse stock and the serial codes shipped to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel

from shelflink.cloud.api.auth import CallerDep, OperatorDep
from shelflink.cloud.api.deps import ConnDep
from shelflink.cloud.api.problems import Problem, problem_responses
from shelflink.cloud.api.routes import make_router
from shelflink.cloud.api.routes.stores import refused
from shelflink.cloud.api_keys import KeyHolder
from shelflink.cloud.database import Connection
from shelflink.cloud.master_data import (
    MasterDataError,
    dealer_stock,
    get_dealer,
    list_dealers,
    record_serial_shipment,
    set_dealer_stock,
    shipped_serial,
    upsert_dealer,
)
from shelflink.cloud.master_data_models import (
    Dealer,
    DealerChanges,
    SerialShipment,
    ShippedSerial,
    StockLevel,
)

router = make_router("dealers")

DealerPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class ShipmentRecorded(BaseModel):
    """How many serials of a shipment were new (a serial is recorded once)."""

    recorded: int


async def visible_dealer(conn: Connection, dealer_id: str, caller: KeyHolder) -> Dealer:
    """The dealer if the caller may see it (itself, or any for an operator), else 404."""
    dealer = None
    if caller.is_operator or caller.dealer_id == dealer_id:
        dealer = await get_dealer(conn, dealer_id)
    if dealer is None:
        raise Problem(404, "not-found", f"no dealer {dealer_id}")
    return dealer


@router.get("/dealers", summary="List dealers", response_model=list[Dealer])
async def dealers(conn: ConnDep, caller: CallerDep) -> list[Dealer]:
    """Every dealer for an operator; a dealer sees itself."""
    return await list_dealers(conn, dealer_id=caller.dealer_id)


@router.get(
    "/dealers/{dealer_id}", summary="One dealer", response_model=Dealer,
    responses=problem_responses(404),
)  # fmt: skip
async def dealer(conn: ConnDep, caller: CallerDep, dealer_id: str) -> Dealer:
    return await visible_dealer(conn, dealer_id, caller)


@router.put(
    "/dealers/{dealer_id}", summary="Create or change a dealer (operators)",
    response_model=Dealer, responses=problem_responses(403),
)  # fmt: skip
async def put_dealer(
    conn: ConnDep, _operator: OperatorDep, dealer_id: DealerPath, changes: DealerChanges
) -> Dealer:
    """Refused when one of the dealer's stores would fall outside the new territory."""
    try:
        return await upsert_dealer(conn, dealer_id, changes)
    except MasterDataError as exc:
        raise refused(exc) from exc


@router.get(
    "/dealers/{dealer_id}/stock", summary="A dealer's warehouse stock",
    response_model=list[StockLevel], responses=problem_responses(404),
)  # fmt: skip
async def stock(conn: ConnDep, caller: CallerDep, dealer_id: str) -> list[StockLevel]:
    await visible_dealer(conn, dealer_id, caller)
    return await dealer_stock(conn, dealer_id)


@router.put(
    "/dealers/{dealer_id}/stock", summary="Report a dealer's warehouse stock",
    response_model=list[StockLevel], responses=problem_responses(404),
)  # fmt: skip
async def put_stock(
    conn: ConnDep, caller: CallerDep, dealer_id: str, levels: list[StockLevel]
) -> list[StockLevel]:
    """The SKUs listed get these levels, others keep theirs; returns the whole stock.
    A dealer reports its own stock; operators any dealer's."""
    await visible_dealer(conn, dealer_id, caller)
    try:
        return await set_dealer_stock(conn, dealer_id, levels)
    except MasterDataError as exc:
        raise refused(exc) from exc


@router.post(
    "/serial-shipments", summary="Record serials shipped to a dealer (operators)",
    response_model=ShipmentRecorded, status_code=201, responses=problem_responses(403),
)  # fmt: skip
async def post_serial_shipment(
    conn: ConnDep, _operator: OperatorDep, shipment: SerialShipment
) -> ShipmentRecorded:
    """A serial recorded before keeps its first shipment."""
    try:
        return ShipmentRecorded(recorded=await record_serial_shipment(conn, shipment))
    except MasterDataError as exc:
        raise refused(exc) from exc


@router.get(
    "/serial-shipments/{gtin}/{serial}", summary="Where a serialised unit was shipped",
    response_model=ShippedSerial, responses=problem_responses(404),
)  # fmt: skip
async def serial_shipment(
    conn: ConnDep, caller: CallerDep, gtin: str, serial: str
) -> ShippedSerial:
    """A dealer finds only the serials shipped to it."""
    found = await shipped_serial(conn, gtin, serial, dealer_id=caller.dealer_id)
    if found is None:
        raise Problem(404, "not-found", f"no shipment of {gtin} serial {serial}")
    return found
