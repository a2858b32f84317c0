"""Idempotency, conflicts and cancellation fan-out of the order ledger (pure)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from handoff_events.contracts import CancellationRequested, OrderCancelled, ShipmentUpdate
from handoff_events.ids import shipment_id
from handoff_order_intake.domain.cancellation import (
    CancellationDecision,
    ShipmentStatusView,
    decide_shipment_cancellation,
    observe_update,
)
from handoff_order_intake.domain.ledger import (
    OrderRecord,
    Placement,
    decide_order_cancellation,
    decide_placement,
    fingerprint,
)
from handoff_order_intake.domain.splitting import conflict_shipment_id, planned_shipment_ids

from services.order_intake.tests.unit.orders import NOW, catalogue, order, order_doc

CATALOGUE = catalogue()
LATER = NOW + timedelta(minutes=5)


def two_origin_order() -> dict[str, Any]:
    doc = order_doc()
    doc["lines"].append({"sku": "SKU-9", "quantity": 1, "origin_location_id": "WH-AMS-1"})
    doc["parcels"].append(
        {
            "parcel_id": "P9",
            "weight_g": 300,
            "length_mm": 100,
            "width_mm": 100,
            "height_mm": 10,
            "origin_location_id": "WH-AMS-1",
        }
    )
    return doc


def place(record: OrderRecord | None, **changes: Any) -> Placement:
    return decide_placement(
        record, order(**changes), tenant_id="acme", catalogue=CATALOGUE, now=NOW
    )


def test_a_valid_order_is_accepted_and_recorded() -> None:
    placement = place(None)
    assert placement.kind == "accepted"
    assert placement.record is not None
    assert placement.record.fingerprint == fingerprint(order())
    assert [r.shipment_id for r in placement.record.shipments] == planned_shipment_ids(
        "acme", order()
    )


def test_the_same_order_twice_yields_nothing_new() -> None:
    first = place(None)
    again = place(first.record)
    assert again.kind == "duplicate"
    assert again.record is None and not again.requested and again.rejected is None


def test_the_same_order_id_with_other_content_is_a_conflict_answered_once() -> None:
    first = place(None)
    conflict = place(first.record, service_level="same_day")
    assert conflict.kind == "conflict"
    assert conflict.rejected is not None
    assert [r.code for r in conflict.rejected.reasons] == ["conflict"]
    changed = order(service_level="same_day")
    assert conflict.rejected.shipment_id == conflict_shipment_id(
        "acme", "A-1001", fingerprint(changed)
    )
    assert conflict.rejected.shipment_id not in {r.shipment_id for r in first.record.shipments}  # type: ignore[union-attr]
    assert place(conflict.record, service_level="same_day").kind == "duplicate"


def test_an_invalid_order_is_rejected_with_all_reasons_on_the_ship_from_shipment() -> None:
    doc = order_doc()
    doc["ship_to"]["country"] = "XX"
    doc["parcels"][0]["weight_g"] = 0
    placement = place(None, **doc)
    assert placement.kind == "rejected"
    assert placement.rejected is not None
    assert placement.rejected.shipment_id == shipment_id("acme", "A-1001", "WH-BER-1")
    assert {r.code for r in placement.rejected.reasons} == {
        "invalid_country",
        "weight_out_of_range",
    }
    assert place(placement.record, **doc).kind == "duplicate"


def cancel(**changes: Any) -> OrderCancelled:
    doc = {"order_id": "A-1001", "cancelled_at": LATER.isoformat(), "reason": "customer"} | changes
    return msgspec.convert(doc, OrderCancelled)


def test_cancelling_an_order_requests_cancellation_of_each_shipment_once() -> None:
    placed = place(None, **two_origin_order())
    decision = decide_order_cancellation(placed.record, cancel())
    assert [r.shipment_id for r in decision.requests] == [
        shipment_id("acme", "A-1001", "WH-BER-1"),
        shipment_id("acme", "A-1001", "WH-AMS-1"),
    ]
    assert decide_order_cancellation(decision.record, cancel()).requests == ()


def test_a_cancellation_can_select_origins() -> None:
    placed = place(None, **two_origin_order())
    decision = decide_order_cancellation(placed.record, cancel(origin_location_ids=["WH-AMS-1"]))
    assert [r.shipment_id for r in decision.requests] == [shipment_id("acme", "A-1001", "WH-AMS-1")]
    rest = decide_order_cancellation(decision.record, cancel())
    assert [r.shipment_id for r in rest.requests] == [shipment_id("acme", "A-1001", "WH-BER-1")]


def test_a_cancellation_before_the_order_rejects_the_order_when_it_comes() -> None:
    early = decide_order_cancellation(None, cancel())
    assert early.kind == "remembered" and not early.requests
    placement = place(early.record)
    assert placement.kind == "rejected"
    assert placement.rejected is not None
    assert [r.code for r in placement.rejected.reasons] == ["order_cancelled"]
    assert not placement.requested


def update(status: str) -> ShipmentUpdate:
    return ShipmentUpdate(
        update_id=f"u-{status}",
        shipment_id="shp_1",
        order_id="A-1001",
        tenant_id="acme",
        milestone="status_changed",
        status=status,
        occurred_at=NOW,
    )


def decide(statuses: list[str]) -> CancellationDecision:
    view: ShipmentStatusView | None = None
    for status in statuses:
        view = observe_update(view, update(status))
    request = CancellationRequested(
        shipment_id="shp_1", order_id="A-1001", requested_at=NOW, reason="customer"
    )
    return decide_shipment_cancellation(view, request, now=LATER)


def test_cancellation_before_any_status_or_allocation_cancels_without_release() -> None:
    for statuses in ([], ["requested"], ["requested", "quoted"]):
        decision = decide(statuses)
        assert decision.kind == "cancelled"
        assert decision.event.release_capacity is False  # type: ignore[union-attr]


def test_cancellation_after_allocation_releases_capacity() -> None:
    decision = decide(["requested", "quoted", "allocated"])
    assert decision.kind == "cancelled"
    assert decision.event.release_capacity is True  # type: ignore[union-attr]
    assert decision.view is not None and decision.view.cancelled
    repeat = CancellationRequested(shipment_id="shp_1", order_id="A-1001", requested_at=LATER)
    again = decide_shipment_cancellation(decision.view, repeat, now=LATER)
    assert again.kind == "already_cancelled" and again.event is None


def test_cancellation_after_pickup_or_a_terminal_status_is_refused() -> None:
    picked = decide(["allocated", "picked_up"])
    assert picked.kind == "refused"
    assert [r.code for r in picked.event.reasons] == ["already_picked_up"]  # type: ignore[union-attr]
    delivered = decide(["allocated", "picked_up", "delivered"])
    assert [r.code for r in delivered.event.reasons] == ["already_delivered"]  # type: ignore[union-attr]


def test_a_late_update_never_leaves_a_terminal_status() -> None:
    decision = decide(["delivered", "in_transit"])
    assert [r.code for r in decision.event.reasons] == ["already_delivered"]  # type: ignore[union-attr]
