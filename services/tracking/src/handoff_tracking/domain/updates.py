"""Milestones -> the public `ShipmentUpdate` events marketplaces consume (pure)."""

from __future__ import annotations

from handoff_events.contracts import ShipmentState, ShipmentUpdate

from handoff_tracking.domain.fold import Milestone


def shipment_update(state: ShipmentState, milestone: Milestone) -> ShipmentUpdate:
    """The update for one milestone, as seen from the state right after it happened."""
    cause = milestone.cause
    facts = cause.facts
    delivered = milestone.milestone == "delivered"
    detail: dict[str, str] = {}
    if cause.note:
        detail["note"] = cause.note
    if cause.description:
        detail["description"] = cause.description
    if state.unknown_observations:
        detail["unknown_observations"] = str(state.unknown_observations)
    return ShipmentUpdate(
        update_id=milestone.update_id,
        shipment_id=state.shipment_id,
        order_id=state.order_id,
        tenant_id=state.tenant_id,
        milestone=milestone.milestone,
        status=state.status,
        occurred_at=cause.occurred_at,
        sub_status=cause.sub_status,
        carrier=state.carrier,
        tracking_number=state.tracking_number,
        label_ref=state.label_ref,
        promised_by=state.promised_by,
        estimated_delivery_date=state.estimated_delivery_date,
        location=cause.location,
        proof=cause.proof if delivered else None,
        exception=milestone.exception,
        reasons=list(facts.reasons or []) if facts else [],
        rma_id=(facts.rma_id if facts else None) or state.rma_id,
        return_shipment_id=(facts.return_shipment_id if facts else None)
        or state.return_shipment_id,
        is_return=state.is_return,
        service=state.service,
        lane=state.lane,
        picked_up_at=state.picked_up_at,
        delivered_at=state.delivered_at,
        detail=detail,
    )
