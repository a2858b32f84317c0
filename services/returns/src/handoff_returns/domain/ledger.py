"""The returns ledger: what returns knows per shipment id, and the decisions made from it.

One record per shipment id (the ledger stage's store, changelog
`handoff.returns.ledger-changelog.v1`). An OUTBOUND shipment's record holds
what authorisation needs (tenant, order, customer address, SKUs, parcels,
actual delivery time) and the RMAs issued against it. A RETURN shipment's
record holds the RMA link (terms re-keyed by the return shipment id) and
whether the reverse shipment has left the customer or reached the return
centre. Both kinds live in the same store because both are keyed by a
shipment id; the functions below are pure folds over plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from handoff_events.contracts import (
    Origin,
    ReturnItem,
    ReturnRequested,
    ReturnShipmentLinked,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.ids import return_shipment_id
from handoff_events.values import Address, Money, Parcel, Preferences, Reason

from handoff_returns.domain.policy import ReturnPolicy, ReturnTerms, ShipmentFacts, assess, terms
from handoff_returns.domain.requests import rma_id

RmaStatus = Literal["authorised", "received", "expired"]

SHIPPED_STATUSES = frozenset(
    {
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivery_attempt_failed",
        "available_for_pickup",
        "delivered",
    }
)
"""Statuses that prove a carrier has the parcel: a return label used before it expired."""


class IssuedRma(msgspec.Struct, frozen=True, kw_only=True):
    rma_id: str
    return_request_id: str
    return_shipment_id: str
    skus: list[str]
    status: RmaStatus = "authorised"


class RequestOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A decided request: the RMA, or None when refused (a duplicate re-emits nothing)."""

    return_request_id: str
    rma_id: str | None


class ReturnLink(msgspec.Struct, frozen=True, kw_only=True):
    """On a return shipment's record: the RMA it carries and what completion needs."""

    tenant_id: str
    rma_id: str
    return_request_id: str
    order_id: str
    original_shipment_id: str
    items: list[ReturnItem]
    reason_code: str
    label_valid_until: datetime
    free_of_charge: bool
    fee: Money | None = None
    outcome: Literal["awaiting", "received", "expired"] = "awaiting"
    caused_by: str = ""
    """The link event's id: completion and expiry ids derive from it."""


class ShipmentRecord(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str | None = None
    order_id: str | None = None
    is_return: bool = False
    requested: bool = False
    """The ShipmentRequested was seen (and indexed by order)."""
    origin_location_id: str | None = None
    destination: Address | None = None
    skus: list[str] = []
    parcels: list[Parcel] = []
    preferences: Preferences = Preferences()
    delivered_at: datetime | None = None
    shipped_at: datetime | None = None
    outcomes: list[RequestOutcome] = []
    rmas: list[IssuedRma] = []
    link: ReturnLink | None = None

    def outcome_of(self, return_request_id: str) -> RequestOutcome | None:
        for outcome in self.outcomes:
            if outcome.return_request_id == return_request_id:
                return outcome
        return None

    def skus_under_return(self) -> frozenset[str]:
        return frozenset(s for r in self.rmas if r.status != "expired" for s in r.skus)


EMPTY = ShipmentRecord()


def record_shipment(
    record: ShipmentRecord, tenant_id: str, event: ShipmentRequested
) -> ShipmentRecord:
    """Learn an order-intake shipment (re-emissions carry the same facts: idempotent)."""
    return msgspec.structs.replace(
        record,
        tenant_id=tenant_id,
        order_id=event.order_id,
        is_return=event.is_return,
        requested=True,
        origin_location_id=event.origin.location_id,
        destination=event.destination,
        skus=list(event.skus),
        parcels=list(event.parcels),
        preferences=event.preferences,
    )


def record_update(record: ShipmentRecord, event: ShipmentUpdate) -> ShipmentRecord:
    """Fold one shipment update: the actual delivery time and the first carrier scan.

    The earliest instant wins, so a duplicate or late update never moves either time.
    """
    changes: dict[str, object] = {}
    if record.tenant_id is None:
        changes.update(tenant_id=event.tenant_id, order_id=event.order_id)
    scanned = event.status in SHIPPED_STATUSES or event.milestone == "delivered"
    if scanned:
        first_scan = event.picked_up_at or event.occurred_at
        if record.shipped_at is None or first_scan < record.shipped_at:
            changes["shipped_at"] = first_scan
    if event.milestone == "delivered" or event.status == "delivered":
        delivered = event.delivered_at or event.occurred_at
        if record.delivered_at is None or delivered < record.delivered_at:
            changes["delivered_at"] = delivered
    return msgspec.structs.replace(record, **changes) if changes else record


@dataclass(frozen=True, slots=True)
class ReturnCentre:
    """A return centre from the location catalogue."""

    location_id: str
    name: str
    line1: str
    postal_code: str
    city: str
    country: str
    time_zone: str

    def address(self) -> Address:
        return Address(
            name=self.name,
            line1=self.line1,
            postal_code=self.postal_code,
            city=self.city,
            country=self.country,
        )


@dataclass(frozen=True, slots=True)
class Authorised:
    rma_id: str
    return_shipment_id: str
    terms: ReturnTerms
    customer_address: Address
    record: ShipmentRecord


@dataclass(frozen=True, slots=True)
class Refused:
    reasons: list[Reason]
    record: ShipmentRecord


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Already decided: the first decision stands and nothing is emitted again."""


Decision = Authorised | Refused | Duplicate


def decide(
    record: ShipmentRecord,
    tenant_id: str,
    request: ReturnRequested,
    *,
    policies: Mapping[str, ReturnPolicy],
    centres: Mapping[str, ReturnCentre],
    now: datetime,
) -> Decision:
    """Authorise or refuse one return request against the shipment's record."""
    if record.outcome_of(request.return_request_id) is not None:
        return Duplicate()
    reasons = _refusal_reasons(record, tenant_id, request, policies, centres)
    if reasons:
        outcome = RequestOutcome(return_request_id=request.return_request_id, rma_id=None)
        return Refused(
            reasons, msgspec.structs.replace(record, outcomes=[*record.outcomes, outcome])
        )
    assert record.destination is not None
    policy = policies[tenant_id]
    customer = request.pickup_address or record.destination
    agreed = terms(policy, request.reason_code, customer.country, now)
    rma = rma_id(tenant_id, request.return_request_id)
    reverse_id = return_shipment_id(tenant_id, rma)
    issued = IssuedRma(
        rma_id=rma,
        return_request_id=request.return_request_id,
        return_shipment_id=reverse_id,
        skus=[item.sku for item in request.items],
    )
    outcome = RequestOutcome(return_request_id=request.return_request_id, rma_id=rma)
    updated = msgspec.structs.replace(
        record, outcomes=[*record.outcomes, outcome], rmas=[*record.rmas, issued]
    )
    return Authorised(rma, reverse_id, agreed, customer, updated)


def _refusal_reasons(
    record: ShipmentRecord,
    tenant_id: str,
    request: ReturnRequested,
    policies: Mapping[str, ReturnPolicy],
    centres: Mapping[str, ReturnCentre],
) -> list[Reason]:
    policy = policies.get(tenant_id)
    if policy is None:
        return [Reason(code="no_return_policy", message="the tenant has no return policy")]
    if not record.requested or record.destination is None or record.is_return:
        # Never seen as an outbound order-intake shipment: nothing to return.
        return [
            Reason(
                code="not_delivered" if record.tenant_id is None else "shipment_not_returnable",
                field="$.shipment_id" if request.shipment_id else "$.order_id",
                message="no delivered outbound shipment is known for this request",
                value=request.shipment_id or request.order_id,
            )
        ]
    customer = request.pickup_address or record.destination
    facts = ShipmentFacts(
        tenant_id=tenant_id,
        order_id=record.order_id or "",
        skus=frozenset(record.skus),
        delivered_at=record.delivered_at,
        customer_country=customer.country,
        skus_under_return=record.skus_under_return(),
    )
    reasons = assess(policy, request, facts)
    centre_id = policy.return_centre_for(customer.country)
    if not reasons and (centre_id is None or centre_id not in centres):
        reasons.append(
            Reason(
                code="no_return_centre",
                message="the policy's return centre is not in the location catalogue",
                value=centre_id,
            )
        )
    return reasons


def reverse_shipment(
    decision: Authorised,
    request: ReturnRequested,
    original_shipment_id: str,
    *,
    centre: ReturnCentre,
    policy: ReturnPolicy,
    now: datetime,
) -> ShipmentRequested:
    """The reverse shipment: from the customer (a pickup origin) to the return centre."""
    record = decision.record
    customer = decision.customer_address
    wanted_parcels = {item.parcel_id for item in request.items if item.parcel_id}
    parcels = [p for p in record.parcels if p.parcel_id in wanted_parcels] or list(record.parcels)
    origin = Origin(
        location_id=f"customer:{decision.rma_id}",
        kind="customer",
        postal_code=customer.postal_code,
        city=customer.city,
        country=customer.country,
        time_zone=policy.time_zone_for(customer.country).key,
    )
    return ShipmentRequested(
        shipment_id=decision.return_shipment_id,
        order_id=record.order_id or request.order_id,
        requested_at=now,
        placed_at=request.requested_at,
        service_level="standard",
        origin=origin,
        destination=centre.address(),
        parcels=[
            msgspec.structs.replace(p, origin_location_id=origin.location_id) for p in parcels
        ],
        skus=[item.sku for item in request.items],
        preferences=record.preferences,
        is_return=True,
        return_of_shipment_id=original_shipment_id,
        rma_id=decision.rma_id,
        return_method=request.method,
    )


def mark_rma(record: ShipmentRecord, rma: str, status: RmaStatus) -> ShipmentRecord:
    """Back-link from the return side: an RMA was received or expired (expired frees its SKUs).

    A received RMA is final: a late expiry never reopens it.
    """
    changed = [
        msgspec.structs.replace(r, status=status)
        if r.rma_id == rma and r.status != "received"
        else r
        for r in record.rmas
    ]
    return msgspec.structs.replace(record, rmas=changed)


def link_return(
    record: ShipmentRecord, tenant_id: str, event: ReturnShipmentLinked, event_id: str
) -> ShipmentRecord:
    """Attach an RMA to its return shipment's record (idempotent: the first link stands)."""
    if record.link is not None:
        return record
    link = ReturnLink(
        tenant_id=tenant_id,
        rma_id=event.rma_id,
        return_request_id=event.return_request_id,
        order_id=event.order_id,
        original_shipment_id=event.shipment_id,
        items=list(event.items),
        reason_code=event.reason_code,
        label_valid_until=event.label_valid_until,
        free_of_charge=event.free_of_charge,
        fee=event.fee,
        caused_by=event_id,
    )
    return msgspec.structs.replace(record, link=link, is_return=True)


def completion_due(record: ShipmentRecord) -> bool:
    """The linked reverse shipment reached the return centre and that is not yet reported."""
    return (
        record.link is not None
        and record.link.outcome != "received"
        and record.delivered_at is not None
    )


def expiry_at(record: ShipmentRecord) -> datetime | None:
    """When the return label runs out, while it is unused (None: nothing to expire)."""
    if record.link is None or record.link.outcome != "awaiting" or record.shipped_at is not None:
        return None
    return record.link.label_valid_until


def expiry_due(record: ShipmentRecord, now: datetime) -> bool:
    """The label ran out before any carrier scan of the reverse shipment."""
    at = expiry_at(record)
    return at is not None and now >= at


def with_outcome(record: ShipmentRecord, outcome: Literal["received", "expired"]) -> ShipmentRecord:
    assert record.link is not None
    return msgspec.structs.replace(
        record, link=msgspec.structs.replace(record.link, outcome=outcome)
    )


def policy_outcome(link: ReturnLink, *, received_after_expiry: bool = False) -> str:
    """How the refund is to be settled: free, or charged the fee for the reason given."""
    outcome = "free_return" if link.free_of_charge else f"charged_return:{link.reason_code}"
    return f"{outcome};received_after_expiry" if received_after_expiry else outcome
