"""Returns' events (topic `handoff.returns.returns.v1`, keyed by the original shipment id)."""

from __future__ import annotations

from handoff_events.contracts.base import Event
from handoff_events.contracts.marketplace import ReturnItem
from handoff_events.values import AwareDatetime, Money, Reason


class ReturnAuthorised(Event, frozen=True, kw_only=True):
    ce_type = "handoff.return.authorised.v1"

    rma_id: str
    return_request_id: str
    order_id: str
    shipment_id: str
    """The original (outbound) shipment."""
    return_shipment_id: str
    items: list[ReturnItem]
    reason_code: str
    method: str
    authorised_at: AwareDatetime
    label_valid_until: AwareDatetime
    free_of_charge: bool = True
    fee: Money | None = None


class ReturnRefused(Event, frozen=True, kw_only=True):
    ce_type = "handoff.return.refused.v1"

    return_request_id: str
    order_id: str
    shipment_id: str
    refused_at: AwareDatetime
    reasons: list[Reason]


class ReturnReceived(Event, frozen=True, kw_only=True):
    ce_type = "handoff.return.received.v1"

    rma_id: str
    shipment_id: str
    return_shipment_id: str
    received_at: AwareDatetime


class RefundEligible(Event, frozen=True, kw_only=True):
    ce_type = "handoff.return.refund_eligible.v1"

    rma_id: str
    order_id: str
    shipment_id: str
    items: list[ReturnItem]
    eligible_at: AwareDatetime
    policy_outcome: str
    refund_fee: Money | None = None


class ReturnExpired(Event, frozen=True, kw_only=True):
    ce_type = "handoff.return.expired.v1"

    rma_id: str
    shipment_id: str
    return_shipment_id: str
    expired_at: AwareDatetime


# ---- internal to the returns service (re-keying between its stages) -------------------


class ShipmentIndexed(Event, frozen=True, kw_only=True):
    """Internal to returns: a shipment of an order, re-keyed by `<tenant>/<order_id>`.

    Lets a return request that names no shipment be routed to the shipment that holds its items.
    """

    ce_type = "handoff.return.shipment_indexed.v1"
    subject_field = "order_id"

    order_id: str
    shipment_id: str
    origin_location_id: str
    skus: list[str]
    indexed_at: AwareDatetime


class ReturnShipmentLinked(Event, frozen=True, kw_only=True):
    """Internal to returns: an RMA's terms re-keyed by the RETURN shipment id.

    The reverse shipment's updates are keyed by the return shipment id, the RMA by the original
    shipment id; this record puts what completion and expiry need where those updates arrive.
    """

    ce_type = "handoff.return.shipment_linked.v1"
    subject_field = "return_shipment_id"

    rma_id: str
    return_request_id: str
    order_id: str
    shipment_id: str
    """The original (outbound) shipment."""
    return_shipment_id: str
    items: list[ReturnItem]
    reason_code: str
    label_valid_until: AwareDatetime
    linked_at: AwareDatetime
    free_of_charge: bool = True
    fee: Money | None = None
