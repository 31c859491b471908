"""The shapes of webhooks: what registering an endpoint takes, an endpoint as listed,
and the delivery log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from shelflink.cloud.orders_workflow import OrderState


class WebhookEvent(StrEnum):
    """What an endpoint subscribes to: an order entering one state, or every state."""

    SUGGESTED = "order.suggested"
    APPROVED = "order.approved"
    PICKING = "order.picking"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    REJECTED = "order.rejected"
    CANCELLED = "order.cancelled"
    ANY = "order.*"


def event_for(state: OrderState) -> WebhookEvent:
    """The event an order entering ``state`` is announced as."""
    return WebhookEvent(f"order.{state}")


DeliveryState = Literal["pending", "delivered", "dead"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookCreate(_Model):
    """An endpoint to register: where to POST, and which events."""

    url: Annotated[HttpUrl, Field(description="http(s) URL the events are POSTed to")]
    event_types: Annotated[
        list[WebhookEvent],
        Field(min_length=1, max_length=len(WebhookEvent), examples=[["order.approved"]]),
    ]
    description: Annotated[str, Field(max_length=200)] = ""
    dealer_id: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="whose orders (operators only; a dealer key registers its own)",
        ),
    ] = None

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: HttpUrl) -> HttpUrl:
        # Credentials in a URL end up in logs and in the listing; the signature
        # is how a receiver authenticates us.
        if url.username or url.password:
            raise ValueError("the URL must not carry a user name or password")
        return url

    @field_validator("event_types")
    @classmethod
    def _distinct(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        if len(set(events)) != len(events):
            raise ValueError("an event type is listed twice")
        return events


class Webhook(_Model):
    """A registered endpoint, without its secret."""

    webhook_id: int
    dealer_id: str
    url: str
    event_types: list[WebhookEvent]
    description: str
    created_at: datetime


class WebhookCreated(Webhook):
    """A new endpoint and its signing secret, shown this once."""

    secret: str = Field(description="verifies X-Shelflink-Signature; not shown again")


class DeliveryAttempt(_Model):
    """One try to deliver: the HTTP status, or the error when there was no answer."""

    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: float
    next_attempt_at: datetime | None = Field(description="when the retry is due; null: none")


class Delivery(_Model):
    """One event for one endpoint, with every attempt, oldest first."""

    delivery_id: UUID = Field(description="the X-Shelflink-Delivery header of every attempt")
    event_id: int
    order_id: int
    event_type: WebhookEvent
    state: DeliveryState
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[DeliveryAttempt]
