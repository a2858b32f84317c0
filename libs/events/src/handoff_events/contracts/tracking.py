"""Tracking's events: normalised observations, the tracking-number join, KPIs."""

from __future__ import annotations

from datetime import date
from typing import Literal

from handoff_events.contracts.base import Event
from handoff_events.values import AwareDatetime, CarrierCode, Location, Money, Proof

CanonicalStatus = Literal[
    "requested",
    "rejected",
    "quoted",
    "allocated",
    "allocation_failed",
    "cancelled",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivery_attempt_failed",
    "available_for_pickup",
    "delivered",
    "exception",
    "returning_to_sender",
    "returned_to_sender",
]
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"rejected", "cancelled", "delivered", "returned_to_sender", "allocation_failed"}
)
ObservedStatus = CanonicalStatus | Literal["unknown"]

SUB_STATUSES: dict[str, frozenset[str]] = {
    # The sub-status/reason vocabulary of carrier observations, per canonical status
    # (docs/integrating-carriers.md). Learned from AfterShip subtags and Karrio's
    # incident reasons; a `TrackingObserved.sub_status` is one of these or None.
    "allocated": frozenset({"info_received", "courier_assigned", "courier_at_pickup"}),
    "picked_up": frozenset({"collected_from_sender", "dropped_off_by_sender"}),
    "in_transit": frozenset(
        {"arrived_at_facility", "departed_facility", "customs_clearance", "customs_cleared"}
    ),
    "out_for_delivery": frozenset({"courier_nearby"}),
    "delivery_attempt_failed": frozenset(
        {"recipient_absent", "address_problem", "refused", "access_restricted", "business_closed"}
    ),
    "available_for_pickup": frozenset({"at_pickup_point", "at_locker", "at_depot"}),
    "delivered": frozenset(
        {
            "delivered_to_recipient",
            "delivered_to_neighbour",
            "delivered_to_safe_place",
            "delivered_to_locker",
        }
    ),
    "exception": frozenset(
        {"damaged", "lost", "weather", "customs", "capacity", "delayed", "held_at_depot"}
    ),
    "returning_to_sender": frozenset({"refused", "unclaimed", "undeliverable", "sender_request"}),
    "returned_to_sender": frozenset(),
}


class TrackingNumberAssigned(Event, frozen=True, kw_only=True):
    """Join table row, keyed `<carrier>/<tracking_number>`: which shipment a tracking number is."""

    ce_type = "handoff.tracking.number_assigned.v1"
    subject_field = "tracking_number"

    carrier: CarrierCode
    tracking_number: str
    shipment_id: str
    assigned_at: AwareDatetime


class TrackingObserved(Event, frozen=True, kw_only=True):
    """A carrier scan normalised to the canonical vocabulary, keyed by shipment id."""

    ce_type = "handoff.tracking.observed.v1"

    shipment_id: str
    carrier: CarrierCode
    tracking_number: str
    carrier_event_id: str
    carrier_code: str
    status: ObservedStatus
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    sub_status: str | None = None
    description: str | None = None
    location: Location | None = None
    proof: Proof | None = None
    unknown_code: bool = False


class KpiSnapshot(Event, frozen=True, kw_only=True):
    """Delivery KPIs for one (carrier, lane, tenant, day); compacted, latest wins."""

    ce_type = "handoff.kpi.snapshot.v1"
    subject_field = "kpi_key"

    kpi_key: str
    carrier: CarrierCode
    lane: str
    tenant_id: str
    day: date
    shipments_delivered: int
    delivered_on_time: int
    first_attempt_deliveries: int
    exceptions: int
    transit_hours_sum: float
    transit_hours_p90: float | None
    cost_total: Money | None
    computed_at: AwareDatetime
    service: str | None = None
    transit_hours: list[float] = []
    """Observed transit times (hours) behind the p90, for consumers that build their own distribution."""
    shipments_with_promise: int | None = None
    """Denominator of the on-time rate: delivered shipments that had a promise."""


class KpiContribution(Event, frozen=True, kw_only=True):
    """One delivered shipment's share of a KPI bucket (repartitioned by `kpi_key`).

    Re-sent whenever the shipment's figures change; `retract` withdraws it from a
    bucket it no longer belongs to (e.g. an earlier delivery scan moved its day).
    """

    ce_type = "handoff.tracking.kpi_contribution.v1"
    subject_field = "kpi_key"

    kpi_key: str
    shipment_id: str
    tenant_id: str
    carrier: CarrierCode
    lane: str
    day: date
    contributed_at: AwareDatetime
    service: str | None = None
    had_promise: bool = False
    on_time: bool = False
    first_attempt: bool = False
    had_exception: bool = False
    transit_hours: float | None = None
    cost: Money | None = None
    retract: bool = False
