"""Carrier allocation's events: decisions, capacity, tenders' outcomes."""

from __future__ import annotations

from datetime import date

from handoff_events.contracts.base import Event
from handoff_events.values import AwareDatetime, CarrierCode, Frozen, Money, Reason


class CapacityBucket(Frozen, frozen=True, kw_only=True):
    carrier: CarrierCode
    hub_id: str
    day: date

    @property
    def key(self) -> str:
        return f"{self.carrier}/{self.hub_id}/{self.day.isoformat()}"


class CapacityReservationRequested(Event, frozen=True, kw_only=True):
    """Keyed by bucket: the bucket's single owner decides, so over-booking is impossible."""

    ce_type = "handoff.capacity.reservation_requested.v1"

    request_id: str
    shipment_id: str
    bucket: CapacityBucket
    requested_at: AwareDatetime


class CapacityReleaseRequested(Event, frozen=True, kw_only=True):
    ce_type = "handoff.capacity.release_requested.v1"

    request_id: str
    shipment_id: str
    bucket: CapacityBucket
    requested_at: AwareDatetime
    reason: str


class CapacityReserved(Event, frozen=True, kw_only=True):
    ce_type = "handoff.capacity.reserved.v1"

    request_id: str
    shipment_id: str
    bucket: CapacityBucket
    reserved_at: AwareDatetime
    remaining: int


class CapacityRefused(Event, frozen=True, kw_only=True):
    ce_type = "handoff.capacity.refused.v1"

    request_id: str
    shipment_id: str
    bucket: CapacityBucket
    refused_at: AwareDatetime
    reason: str = "bucket_full"


class CapacityReleased(Event, frozen=True, kw_only=True):
    ce_type = "handoff.capacity.released.v1"

    request_id: str
    shipment_id: str
    bucket: CapacityBucket
    released_at: AwareDatetime
    remaining: int


class Candidate(Frozen, frozen=True, kw_only=True):
    carrier: CarrierCode
    service: str
    quote_id: str | None
    total: Money | None
    score: float | None
    eligible: bool
    outcome: str
    """chosen, lost, ineligible, declined, timed_out, no_capacity, not_tried"""
    reasons: list[Reason] = []


class AllocationDecision(Frozen, frozen=True, kw_only=True):
    policy_id: str
    objective: str
    candidates: list[Candidate]
    explanation: str


class CarrierAllocated(Event, frozen=True, kw_only=True):
    ce_type = "handoff.carrier.allocated.v1"

    shipment_id: str
    order_id: str
    allocated_at: AwareDatetime
    carrier: CarrierCode
    service: str
    tracking_number: str
    label_ref: str
    quote_id: str
    price: Money
    estimated_delivery_date: date
    hub_id: str
    decision: AllocationDecision


class TenderFailed(Event, frozen=True, kw_only=True):
    """A carrier declined or did not answer in time; allocation moves to the next candidate."""

    ce_type = "handoff.tender.failed.v1"

    shipment_id: str
    tender_id: str
    carrier: CarrierCode
    failed_at: AwareDatetime
    outcome: str
    """declined or timed_out"""
    detail: str | None = None


class AllocationFailed(Event, frozen=True, kw_only=True):
    ce_type = "handoff.allocation.failed.v1"

    shipment_id: str
    order_id: str
    failed_at: AwareDatetime
    reasons: list[Reason]
    decision: AllocationDecision | None = None


class AllocationReleased(Event, frozen=True, kw_only=True):
    """A cancelled allocated shipment: capacity released, label voided."""

    ce_type = "handoff.allocation.released.v1"

    shipment_id: str
    released_at: AwareDatetime
    carrier: CarrierCode
    label_ref: str | None = None
