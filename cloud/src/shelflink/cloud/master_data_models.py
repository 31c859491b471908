"""The master data's shapes: brand, dealers, stores, SKUs, planograms, dealer stock,
serial shipments.

Pydantic models, so that the API validates a request with the same rules the
accessors rely on (and the database's CHECKs hold as the last line).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
DealerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["dlr-north"])]
StoreId = Annotated[str, Field(min_length=1, max_length=64, examples=["s0001"])]
Gtin = Annotated[str, Field(pattern=r"^[0-9]{8,14}$", examples=["4006381333931"])]
# strict: JSON true/false or "12" are not integers, whatever Python would make of them.
Minor = Annotated[int, Field(ge=0, le=2**62, strict=True)]
Region = Annotated[str, Field(min_length=1, max_length=32)]
ColdChain = Literal["ambient", "chilled", "frozen"]
Weekday = Annotated[int, Field(ge=1, le=7, strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Brand(_Model):
    """The tenant this database serves."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    currency: Currency


class DealerChanges(_Model):
    """What an operator sets on a dealer."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    territory: list[Region] = Field(default_factory=list, description="region codes served")
    currency: Currency = "EUR"
    auto_approve_below_minor: Minor = Field(
        default=0,
        description="orders worth less than this (minor units, in the dealer's currency) "
        "are approved by the system at creation; 0 approves nothing",
    )


class Dealer(DealerChanges):
    """A dealer as stored."""

    dealer_id: DealerId
    created_at: datetime


class StoreChanges(_Model):
    """What an operator sets on a store."""

    dealer_id: DealerId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    region: Region
    lead_time_days: Annotated[int, Field(ge=0, le=365, strict=True)]
    delivery_weekdays: Annotated[
        list[Weekday], Field(min_length=1, description="ISO weekdays, 1 = Monday")
    ]


class Store(StoreChanges):
    """A store as stored; store_id is the id its gateways send for."""

    store_id: StoreId


class StoreUpsert(StoreChanges):
    """One store of a bulk load."""

    store_id: StoreId


class SkuChanges(_Model):
    """What an operator sets on a SKU."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    case_pack: Annotated[int, Field(gt=0, le=100_000, strict=True)]
    min_order_units: Annotated[int, Field(gt=0, le=10_000_000, strict=True)]
    shelf_life_days: Annotated[int, Field(gt=0, le=36_500, strict=True)] | None = None
    cold_chain: ColdChain = "ambient"
    list_price_minor: Minor
    min_resale_minor: Minor
    currency: Currency

    @model_validator(mode="after")
    def _whole_cases(self) -> SkuChanges:
        if self.min_order_units % self.case_pack:
            raise ValueError("min_order_units must be a multiple of case_pack")
        return self


class Sku(SkuChanges):
    """A SKU of the brand's catalog."""

    gtin: Gtin


class PlanogramLane(_Model):
    """One lane of a shelf device and the SKU it holds."""

    device: Annotated[str, Field(min_length=1, max_length=128)]
    lane: Annotated[int, Field(ge=0, le=63, strict=True)]
    gtin: Gtin
    capacity: Annotated[int, Field(gt=0, le=100_000, strict=True)]


class StockLevel(_Model):
    """Units of one SKU in a dealer's warehouse."""

    gtin: Gtin
    units: Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)]


class SerialShipment(_Model):
    """Serialised units of one GTIN the brand shipped to a dealer."""

    dealer_id: DealerId
    gtin: Gtin
    serials: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=10_000),
    ]
    shipment_ref: Annotated[str, Field(min_length=1, max_length=128)]
    shipped_at: datetime


class ShippedSerial(_Model):
    """Where one serialised unit went."""

    gtin: Gtin
    serial: str
    dealer_id: DealerId
    shipment_ref: str
    shipped_at: datetime
