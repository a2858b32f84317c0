"""Order intake's decisions (internal topic `handoff.order_intake.shipments.v1`)."""

from __future__ import annotations

from typing import Literal

from handoff_events.contracts.base import Event
from handoff_events.values import (
    Address,
    AwareDatetime,
    CountryCode,
    DeliveryWindow,
    Frozen,
    Parcel,
    Preferences,
    Reason,
    Requirements,
    ServiceLevel,
)

OriginKind = Literal["warehouse", "store", "micro_fulfilment", "return_centre", "customer"]


class Origin(Frozen, frozen=True, kw_only=True):
    """A resolved origin: the catalogue's facts about where the shipment leaves from."""

    location_id: str
    kind: OriginKind
    postal_code: str
    city: str
    country: CountryCode
    time_zone: str
    cutoff_local: str = "17:00"
    """Local cut-off time `HH:MM`: handed over after it, the parcel leaves a business day later."""


class ShipmentRequested(Event, frozen=True, kw_only=True):
    ce_type = "handoff.shipment.requested.v1"

    shipment_id: str
    order_id: str
    requested_at: AwareDatetime
    placed_at: AwareDatetime
    service_level: ServiceLevel
    origin: Origin
    destination: Address
    parcels: list[Parcel]
    skus: list[str] = []
    promised_by: AwareDatetime | None = None
    delivery_window: DeliveryWindow | None = None
    requirements: Requirements = Requirements()
    preferences: Preferences = Preferences()
    is_return: bool = False
    return_of_shipment_id: str | None = None
    rma_id: str | None = None
    return_method: str | None = None


class ShipmentRejected(Event, frozen=True, kw_only=True):
    """An order (or one origin's part of it) Handoff will not ship, with every reason."""

    ce_type = "handoff.shipment.rejected.v1"

    shipment_id: str
    order_id: str
    rejected_at: AwareDatetime
    reasons: list[Reason]


class ShipmentCancelled(Event, frozen=True, kw_only=True):
    ce_type = "handoff.shipment.cancelled.v1"

    shipment_id: str
    order_id: str
    cancelled_at: AwareDatetime
    reason: str | None = None
    release_capacity: bool = False
    """True when the shipment was already allocated: allocation releases capacity and voids the label."""


class CancellationRefused(Event, frozen=True, kw_only=True):
    ce_type = "handoff.shipment.cancellation_refused.v1"

    shipment_id: str
    order_id: str
    refused_at: AwareDatetime
    reasons: list[Reason]


class CancellationRequested(Event, frozen=True, kw_only=True):
    """Internal to order intake: a cancellation re-keyed by shipment, decided against its status."""

    ce_type = "handoff.shipment.cancellation_requested.v1"

    shipment_id: str
    order_id: str
    requested_at: AwareDatetime
    reason: str | None = None
