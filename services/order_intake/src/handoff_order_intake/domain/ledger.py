"""The order ledger: idempotency per (tenant, order_id) and what a placement or cancellation yields.

One `OrderRecord` per order lives in the "orders" stage's store (keyed
`<tenant>/<order_id>`, backed by a compacted changelog), so the decisions below
depend only on Kafka-held state, never on process memory:

* the same order placed again (same content fingerprint) yields nothing new;
* the same order id with different content yields one `ShipmentRejected` with
  reason `conflict`, keyed by a shipment id derived from the conflicting
  fingerprint (see `splitting.conflict_shipment_id`), never a silent merge; a
  corrected order must be sent under a new order id;
* a cancellation fans out to one `CancellationRequested` per selected shipment,
  at most once per shipment;
* a cancellation that arrives before its order is remembered, and the order,
  when it comes, is rejected with reason `order_cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec
from handoff_events.contracts import (
    CancellationRequested,
    OrderCancelled,
    OrderPlaced,
    ShipmentRejected,
    ShipmentRequested,
)
from handoff_events.ids import digest
from handoff_events.values import Reason

from handoff_order_intake.domain.locations import LocationCatalogue
from handoff_order_intake.domain.splitting import conflict_shipment_id, rejection_shipment_id
from handoff_order_intake.domain.validation import Accepted, validate_order

Outcome = Literal["accepted", "rejected", "cancelled_before_placement"]

_canonical = msgspec.json.Encoder(order="sorted")


def order_key(tenant_id: str, order_id: str) -> str:
    """The Kafka key and store key of an order: tenant scoping is by key."""
    return f"{tenant_id}/{order_id}"


def fingerprint(order: OrderPlaced) -> str:
    """A digest of the order's content (canonical JSON with sorted keys)."""
    return digest("order-content", _canonical.encode(order).decode(), length=32)


class ShipmentRef(msgspec.Struct, frozen=True, kw_only=True):
    origin_location_id: str
    shipment_id: str


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger knows about one order."""

    outcome: Outcome
    fingerprint: str | None = None
    """Content fingerprint of the order as first placed (None if only a cancellation was seen)."""
    shipments: list[ShipmentRef] = []
    """Shipments requested (accepted) or the rejection's id (rejected)."""
    conflicts: list[str] = []
    """Fingerprints of conflicting placements already rejected (each is answered once)."""
    cancellation_requested: list[str] = []
    """Origins whose shipments a cancellation was already requested for."""
    cancel_reason: str | None = None


@dataclass(frozen=True)
class Placement:
    """What placing an order yields: the record to store (None = unchanged) and the events."""

    record: OrderRecord | None
    requested: tuple[ShipmentRequested, ...] = ()
    rejected: ShipmentRejected | None = None
    kind: Literal["accepted", "rejected", "duplicate", "conflict"] = "duplicate"


@dataclass(frozen=True)
class Cancellation:
    record: OrderRecord | None
    requests: tuple[CancellationRequested, ...] = field(default=())
    kind: Literal["requested", "remembered", "nothing_to_cancel"] = "nothing_to_cancel"


def decide_placement(
    record: OrderRecord | None,
    order: OrderPlaced,
    *,
    tenant_id: str,
    catalogue: LocationCatalogue,
    now: datetime,
) -> Placement:
    """Decide an `OrderPlaced` against the ledger's record of the order."""
    content = fingerprint(order)
    if record is not None and record.fingerprint is not None:
        if content == record.fingerprint or content in record.conflicts:
            return Placement(None, kind="duplicate")
        rejection = ShipmentRejected(
            shipment_id=conflict_shipment_id(tenant_id, order.order_id, content),
            order_id=order.order_id,
            rejected_at=now,
            reasons=[
                Reason(
                    code="conflict",
                    field="$.order_id",
                    message="this order id was already placed with different content; "
                    "send a changed order under a new order id",
                    value=order.order_id,
                )
            ],
        )
        updated = msgspec.structs.replace(record, conflicts=[*record.conflicts, content])
        return Placement(updated, rejected=rejection, kind="conflict")
    if record is not None and record.outcome == "cancelled_before_placement":
        rejection_id = rejection_shipment_id(tenant_id, order)
        rejection = ShipmentRejected(
            shipment_id=rejection_id,
            order_id=order.order_id,
            rejected_at=now,
            reasons=[
                Reason(
                    code="order_cancelled",
                    field="$.order_id",
                    message="the order was cancelled before it was placed",
                    value=order.order_id,
                )
            ],
        )
        updated = msgspec.structs.replace(
            record,
            outcome="rejected",
            fingerprint=content,
            shipments=[ShipmentRef(origin_location_id="", shipment_id=rejection_id)],
        )
        return Placement(updated, rejected=rejection, kind="rejected")
    verdict = validate_order(order, tenant_id=tenant_id, catalogue=catalogue, requested_at=now)
    if isinstance(verdict, Accepted):
        refs = [
            ShipmentRef(origin_location_id=s.origin.location_id, shipment_id=s.shipment_id)
            for s in verdict.shipments
        ]
        return Placement(
            OrderRecord(outcome="accepted", fingerprint=content, shipments=refs),
            requested=verdict.shipments,
            kind="accepted",
        )
    rejection_id = rejection_shipment_id(tenant_id, order)
    rejection = ShipmentRejected(
        shipment_id=rejection_id,
        order_id=order.order_id,
        rejected_at=now,
        reasons=list(verdict.reasons),
    )
    return Placement(
        OrderRecord(
            outcome="rejected",
            fingerprint=content,
            shipments=[ShipmentRef(origin_location_id="", shipment_id=rejection_id)],
        ),
        rejected=rejection,
        kind="rejected",
    )


def decide_order_cancellation(record: OrderRecord | None, cancel: OrderCancelled) -> Cancellation:
    """Fan a cancellation out to the order's selected shipments (each at most once)."""
    if record is None:
        remembered = OrderRecord(outcome="cancelled_before_placement", cancel_reason=cancel.reason)
        return Cancellation(remembered, kind="remembered")
    if record.outcome != "accepted":
        return Cancellation(None)
    wanted = None if cancel.origin_location_ids is None else set(cancel.origin_location_ids)
    selected = [
        ref
        for ref in record.shipments
        if (wanted is None or ref.origin_location_id in wanted)
        and ref.origin_location_id not in record.cancellation_requested
    ]
    if not selected:
        return Cancellation(None)
    requests = tuple(
        CancellationRequested(
            shipment_id=ref.shipment_id,
            order_id=cancel.order_id,
            requested_at=cancel.cancelled_at,
            reason=cancel.reason,
        )
        for ref in selected
    )
    updated = msgspec.structs.replace(
        record,
        cancellation_requested=[
            *record.cancellation_requested,
            *(ref.origin_location_id for ref in selected),
        ],
        cancel_reason=cancel.reason,
    )
    return Cancellation(updated, requests, kind="requested")
