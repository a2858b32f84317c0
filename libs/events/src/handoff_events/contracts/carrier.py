"""What carriers send and receive: raw tracking events, tenders and tender replies."""

from __future__ import annotations

from handoff_events.contracts.base import Event
from handoff_events.values import (
    Address,
    AwareDatetime,
    CarrierCode,
    Frozen,
    Location,
    NonEmptyStr,
    Parcel,
    Proof,
    Requirements,
    ServiceLevel,
)


class CarrierTrackingEvent(Event, frozen=True, kw_only=True):
    """A scan in the carrier's own vocabulary (public, carrier → Handoff)."""

    ce_type = "handoff.carrier.tracking_event.v1"
    subject_field = "tracking_number"

    carrier: CarrierCode
    tracking_number: NonEmptyStr
    event_id: NonEmptyStr
    code: NonEmptyStr
    occurred_at: AwareDatetime
    description: str | None = None
    location: Location | None = None
    proof: Proof | None = None


class TenderedShipment(Frozen, frozen=True, kw_only=True):
    origin_location_id: str
    origin_postal_code: str
    origin_country: str
    destination: Address
    parcels: list[Parcel]
    requirements: Requirements = Requirements()


class TenderRequested(Event, frozen=True, kw_only=True):
    """Handoff offers a shipment to a carrier; the carrier accepts or declines."""

    ce_type = "handoff.tender.requested.v1"

    tender_id: str
    shipment_id: str
    carrier: CarrierCode
    service: str
    service_level: ServiceLevel
    attempt: int
    requested_at: AwareDatetime
    respond_by: AwareDatetime
    shipment: TenderedShipment
    is_return: bool = False


class TenderAccepted(Event, frozen=True, kw_only=True):
    ce_type = "handoff.tender.accepted.v1"

    tender_id: str
    shipment_id: str
    carrier: CarrierCode
    tracking_number: NonEmptyStr
    label_ref: NonEmptyStr
    accepted_at: AwareDatetime


class TenderDeclined(Event, frozen=True, kw_only=True):
    ce_type = "handoff.tender.declined.v1"

    tender_id: str
    shipment_id: str
    carrier: CarrierCode
    declined_at: AwareDatetime
    reason: str = "declined"


class TenderWithdrawn(Event, frozen=True, kw_only=True):
    """Handoff takes a tender back: the shipment was cancelled, or the carrier's acceptance
    came after Handoff had moved on (timed out). The carrier voids any label it created."""

    ce_type = "handoff.tender.withdrawn.v1"

    tender_id: str
    shipment_id: str
    carrier: CarrierCode
    withdrawn_at: AwareDatetime
    reason: str
    """cancelled or not_current"""
    tracking_number: str | None = None
    label_ref: str | None = None


class TenderAnswer(Frozen, frozen=True, kw_only=True):
    """The body a carrier integrated by HTTP returns to `POST <tender_url>` (a TenderRequested).

    `accepted` true needs `tracking_number` and `label_ref`; false may give a `reason`.
    """

    accepted: bool
    tracking_number: str | None = None
    label_ref: str | None = None
    reason: str | None = None
