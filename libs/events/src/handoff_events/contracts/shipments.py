"""What Handoff tells marketplaces: shipment updates and the latest shipment state (public, v1)."""

from __future__ import annotations

from datetime import date

from handoff_events.contracts.base import Event
from handoff_events.contracts.tracking import ObservedStatus
from handoff_events.values import AwareDatetime, CarrierCode, Frozen, Location, Money, Proof, Reason

UPDATE_TYPES: dict[str, str] = {
    "requested": "handoff.shipment.update.requested.v1",
    "rejected": "handoff.shipment.update.rejected.v1",
    "quoted": "handoff.shipment.update.quoted.v1",
    "allocated": "handoff.shipment.update.allocated.v1",
    "allocation_failed": "handoff.shipment.update.allocation_failed.v1",
    "cancelled": "handoff.shipment.update.cancelled.v1",
    "cancellation_refused": "handoff.shipment.update.cancellation_refused.v1",
    "status_changed": "handoff.shipment.update.status_changed.v1",
    "exception": "handoff.shipment.update.exception.v1",
    "delivered": "handoff.shipment.update.delivered.v1",
    "return_authorised": "handoff.shipment.update.return_authorised.v1",
    "return_refused": "handoff.shipment.update.return_refused.v1",
    "return_received": "handoff.shipment.update.return_received.v1",
    "refund_eligible": "handoff.shipment.update.refund_eligible.v1",
    "return_expired": "handoff.shipment.update.return_expired.v1",
}
"""Milestone → CloudEvents type. Every update shares the `ShipmentUpdate` shape."""


class ExceptionInfo(Frozen, frozen=True, kw_only=True):
    kind: str
    """late, stuck, failed_attempt, returned_to_sender, carrier_exception"""
    detected_at: AwareDatetime
    detail: str | None = None
    sub_status: str | None = None


class ShipmentUpdate(Event, frozen=True, kw_only=True):
    """One milestone of a shipment, for marketplaces. `ce_type` varies by milestone (see UPDATE_TYPES)."""

    ce_type = "handoff.shipment.update.status_changed.v1"

    update_id: str
    shipment_id: str
    order_id: str
    tenant_id: str
    milestone: str
    status: str
    occurred_at: AwareDatetime
    sub_status: str | None = None
    carrier: CarrierCode | None = None
    tracking_number: str | None = None
    label_ref: str | None = None
    promised_by: AwareDatetime | None = None
    estimated_delivery_date: date | None = None
    location: Location | None = None
    proof: Proof | None = None
    exception: ExceptionInfo | None = None
    reasons: list[Reason] = []
    rma_id: str | None = None
    return_shipment_id: str | None = None
    is_return: bool = False
    service: str | None = None
    lane: str | None = None
    """`lane_of(...)`: origin country-postal prefix > destination country-postal prefix."""
    picked_up_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    detail: dict[str, str] = {}


class ShipmentFacts(Frozen, frozen=True, kw_only=True, omit_defaults=True):
    """What one event asserted about a shipment (order, route, carrier, promise).

    Kept on the event's `HistoryEntry` so the whole state can be refolded from the
    history alone (queries `as_of`, replays); None means "this event did not say".
    Fields an event did not assert are left out of the JSON (absent = null): each
    entry names only the few facts its event carried, which keeps state records small.
    """

    order_id: str | None = None
    service_level: str | None = None
    origin_location_id: str | None = None
    origin_postal_code: str | None = None
    origin_country: str | None = None
    destination_postal_code: str | None = None
    destination_country: str | None = None
    placed_at: AwareDatetime | None = None
    promised_by: AwareDatetime | None = None
    carrier: CarrierCode | None = None
    service: str | None = None
    tracking_number: str | None = None
    label_ref: str | None = None
    price: Money | None = None
    estimated_delivery_date: date | None = None
    is_return: bool | None = None
    return_of_shipment_id: str | None = None
    rma_id: str | None = None
    return_shipment_id: str | None = None
    reasons: list[Reason] | None = None


class HistoryEntry(Frozen, frozen=True, kw_only=True):
    """One event as the fold saw it: kept even when it did not move the status."""

    event_id: str
    type: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    status: ObservedStatus | None = None
    sub_status: str | None = None
    source: str | None = None
    description: str | None = None
    location: Location | None = None
    applied: bool = True
    note: str | None = None
    carrier_event_id: str | None = None
    carrier_code: str | None = None
    proof: Proof | None = None
    facts: ShipmentFacts | None = None


class DeliveryAttempt(Frozen, frozen=True, kw_only=True):
    attempted_at: AwareDatetime
    outcome: str
    sub_status: str | None = None


class ShipmentState(Event, frozen=True, kw_only=True):
    """The latest full state of one shipment (compacted topic `handoff.shipments.state.v1`)."""

    ce_type = "handoff.shipment.state.v1"

    shipment_id: str
    order_id: str
    tenant_id: str
    status: str
    updated_at: AwareDatetime
    version: int
    sub_status: str | None = None
    service_level: str | None = None
    origin_location_id: str | None = None
    destination_postal_code: str | None = None
    destination_country: str | None = None
    carrier: CarrierCode | None = None
    service: str | None = None
    tracking_number: str | None = None
    label_ref: str | None = None
    price: Money | None = None
    placed_at: AwareDatetime | None = None
    promised_by: AwareDatetime | None = None
    estimated_delivery_date: date | None = None
    picked_up_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    proof: Proof | None = None
    attempts: list[DeliveryAttempt] = []
    exceptions: list[ExceptionInfo] = []
    reasons: list[Reason] = []
    is_return: bool = False
    return_of_shipment_id: str | None = None
    rma_id: str | None = None
    history: list[HistoryEntry] = []
    origin_postal_code: str | None = None
    origin_country: str | None = None
    lane: str | None = None
    """`lane_of(...)` once both ends are known."""
    return_shipment_id: str | None = None
    """The latest reverse shipment authorised for this (outbound) shipment."""
    on_time: bool | None = None
    """Delivered no later than `promised_by`; None until delivered or without a promise."""
    unknown_observations: int = 0
    """Carrier scans whose code could not be normalised (kept in the history, flagged)."""
