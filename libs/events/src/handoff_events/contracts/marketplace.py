"""What marketplaces send: orders, cancellations and return requests (public, v1)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from handoff_events.contracts.base import Event
from handoff_events.values import (
    Address,
    AwareDatetime,
    DeliveryWindow,
    Frozen,
    NonEmptyStr,
    Parcel,
    Preferences,
    Requirements,
    ServiceLevel,
)

OrderId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class ShipFrom(Frozen, frozen=True, kw_only=True):
    location_id: NonEmptyStr


class OrderLine(Frozen, frozen=True, kw_only=True):
    sku: NonEmptyStr
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    origin_location_id: str | None = None


class OrderPlaced(Event, frozen=True, kw_only=True):
    ce_type = "handoff.order.placed.v1"
    subject_field = "order_id"

    order_id: OrderId
    placed_at: AwareDatetime
    service_level: ServiceLevel
    ship_from: ShipFrom
    ship_to: Address
    lines: list[OrderLine]
    parcels: list[Parcel]
    promised_by: AwareDatetime | None = None
    delivery_window: DeliveryWindow | None = None
    requirements: Requirements = Requirements()
    preferences: Preferences = Preferences()


class OrderCancelled(Event, frozen=True, kw_only=True):
    ce_type = "handoff.order.cancelled.v1"
    subject_field = "order_id"

    order_id: OrderId
    cancelled_at: AwareDatetime
    reason: str | None = None
    origin_location_ids: list[str] | None = None
    """Cancel only the shipments from these origins; None cancels the whole order."""


ReturnReasonCode = Literal[
    "damaged", "wrong_item", "not_as_described", "changed_mind", "too_late", "defective", "other"
]
ReturnMethod = Literal["drop_off", "locker", "home_pickup"]


class ReturnItem(Frozen, frozen=True, kw_only=True):
    sku: NonEmptyStr
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    parcel_id: str | None = None


class ReturnRequested(Event, frozen=True, kw_only=True):
    ce_type = "handoff.return.requested.v1"
    subject_field = "order_id"

    return_request_id: NonEmptyStr
    """The marketplace's id for this request: the idempotency key."""
    order_id: OrderId
    requested_at: AwareDatetime
    items: list[ReturnItem]
    reason_code: ReturnReasonCode
    method: ReturnMethod
    shipment_id: str | None = None
    pickup_address: Address | None = None
    comment: str | None = None
