"""The shapes of orders: what creating one takes, an order as stored, its history,
and who acts on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shelflink.cloud.master_data_models import Currency, Gtin, StoreId
from shelflink.cloud.orders_workflow import OrderState

ActorKind = Literal["dealer", "operator", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes an order: an API key's holder, or the system (auto-approval, the planner)."""

    kind: ActorKind
    key_id: str | None = None
    dealer_id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewOrderLine(_Model):
    """One SKU of a new order."""

    gtin: Gtin
    quantity: Annotated[int, Field(gt=0, le=1_000_000, description="units")]
    unit_price_minor: Annotated[int, Field(ge=0, le=2**62)] | None = Field(
        default=None, description="default: the SKU's list price"
    )


class NewOrder(_Model):
    """An order to create: one delivery of the store's dealer to the store."""

    store_id: StoreId
    lines: Annotated[list[NewOrderLine], Field(min_length=1, max_length=500)]
    reason: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            description="why it is ordered, e.g. the planner's reason code",
            examples=["below_reorder_point"],
        ),
    ]
    expedite: bool = False


class OrderLine(_Model):
    """One line of an order."""

    line_no: int
    gtin: Gtin
    quantity: int
    unit_price_minor: int


class Order(_Model):
    """An order as stored; ``version`` changes with every transition (the ETag)."""

    order_id: int
    dealer_id: str
    store_id: str
    state: OrderState
    reason: str
    expedite: bool
    value_minor: int
    currency: Currency
    version: int
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLine]


class OrderTransition(_Model):
    """One entry of an order's audit trail; ``from_state`` None is its creation."""

    transition_id: int
    from_state: OrderState | None
    to_state: OrderState
    actor_kind: ActorKind
    actor_key_id: str | None
    actor_dealer_id: str | None
    note: str
    at: datetime
