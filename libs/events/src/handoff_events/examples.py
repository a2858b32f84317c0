"""One realistic example payload per event type.

Used by the AsyncAPI document (every message has an example that validates
against its schema), by the round-trip tests of the codec, and by the
integration guides. Shipment ids are derived exactly as order intake derives them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from handoff_events import contracts as c
from handoff_events.ids import return_shipment_id, shipment_id
from handoff_events.values import (
    Address,
    DeliveryWindow,
    Location,
    Money,
    Parcel,
    Preferences,
    Proof,
    Reason,
    Requirements,
)

TENANT = "acme"
CET = timezone(timedelta(hours=1))
PLACED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ORDER_ID = "A-1001"
SHIPMENT_ID = shipment_id(TENANT, ORDER_ID, "WH-BER-1")
RMA_ID = "rma_7q2k4m9x"
RETURN_SHIPMENT_ID = return_shipment_id(TENANT, RMA_ID)
ADA = Address(
    name="Ada Muster",
    line1="Torstr. 1",
    city="Berlin",
    postal_code="10119",
    country="DE",
    email="ada@example.com",
    phone="+4930123456",
    instructions="2nd floor",
)
PARCEL = Parcel(
    parcel_id="P1",
    weight_g=1200,
    length_mm=300,
    width_mm=200,
    height_mm=100,
    declared_value=Money(amount=4999, currency="EUR"),
)
EUR = "EUR"
BUCKET = c.CapacityBucket(carrier="swift", hub_id="HUB-BER", day=date(2026, 11, 20))
ORIGIN = c.Origin(
    location_id="WH-BER-1",
    kind="warehouse",
    postal_code="10317",
    city="Berlin",
    country="DE",
    time_zone="Europe/Berlin",
    cutoff_local="17:00",
)
QUOTE = c.Quote(
    quote_id="qt_swift_next_day_1",
    carrier="swift",
    service="swift-express",
    service_level="next_day",
    hub_id="HUB-BER",
    price=c.PriceBreakdown(
        base=Money(amount=690, currency=EUR),
        surcharges=[c.Surcharge(code="fuel", amount=Money(amount=83, currency=EUR))],
        tax=Money(amount=147, currency=EUR),
        total=Money(amount=920, currency=EUR),
    ),
    actual_weight_g=1200,
    dimensional_weight_g=1200,
    billable_weight_g=1200,
    zone="DE-1",
    ship_date=date(2026, 11, 20),
    estimated_delivery_date=date(2026, 11, 21),
    meets_promise=True,
    on_time_probability=0.94,
    transit_basis="observed",
    p50_delivery_date=date(2026, 11, 21),
    p90_delivery_date=date(2026, 11, 21),
    capabilities=["signature", "age_check"],
)
DECISION = c.AllocationDecision(
    policy_id="acme",
    objective="cheapest_meeting_promise",
    candidates=[
        c.Candidate(
            carrier="swift",
            service="swift-express",
            quote_id=QUOTE.quote_id,
            total=Money(amount=920, currency=EUR),
            score=0.0,
            eligible=True,
            outcome="chosen",
        ),
        c.Candidate(
            carrier="nordpost",
            service="nordpost-standard",
            quote_id="qt_nordpost_standard_1",
            total=Money(amount=499, currency=EUR),
            score=None,
            eligible=False,
            outcome="ineligible",
            reasons=[
                Reason(code="misses_promise", message="estimated 2026-11-23 > promised 2026-11-21")
            ],
        ),
    ],
    explanation="swift is the cheapest quote that meets the promise with on-time probability ≥ 0.9",
)

EXAMPLES: dict[str, c.Event] = {}


def _add(event: c.Event, ce_type: str | None = None) -> None:
    EXAMPLES[ce_type or event.ce_type] = event


_add(
    c.OrderPlaced(
        order_id=ORDER_ID,
        placed_at=PLACED,
        service_level="next_day",
        promised_by=datetime(2026, 11, 21, 20, 0, tzinfo=CET),
        delivery_window=DeliveryWindow(
            start=datetime(2026, 11, 21, 17, 0, tzinfo=CET),
            end=datetime(2026, 11, 21, 20, 0, tzinfo=CET),
        ),
        ship_from=c.ShipFrom(location_id="WH-BER-1"),
        ship_to=ADA,
        lines=[c.OrderLine(sku="SKU-1", quantity=1, origin_location_id="WH-BER-1")],
        parcels=[PARCEL],
        requirements=Requirements(),
        preferences=Preferences(channels=["email", "sms"], locale="de-DE"),
    )
)
_add(
    c.OrderCancelled(
        order_id=ORDER_ID, cancelled_at=PLACED + timedelta(hours=1), reason="customer_request"
    )
)
_add(
    c.ReturnRequested(
        return_request_id="RR-555",
        order_id=ORDER_ID,
        requested_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        items=[c.ReturnItem(sku="SKU-1", quantity=1, parcel_id="P1")],
        reason_code="wrong_item",
        method="drop_off",
        shipment_id=SHIPMENT_ID,
    )
)
_add(
    c.CarrierTrackingEvent(
        carrier="swift",
        tracking_number="SW123456789",
        event_id="swift-8841",
        code="OFD",
        description="Out for delivery",
        occurred_at=datetime(2026, 11, 21, 8, 12, tzinfo=CET),
        location=Location(city="Berlin", postal_code="10115", country="DE"),
        proof=Proof(),
    )
)
_add(
    c.TenderRequested(
        tender_id="tdr_1",
        shipment_id=SHIPMENT_ID,
        carrier="swift",
        service="swift-express",
        service_level="next_day",
        attempt=1,
        requested_at=PLACED,
        respond_by=PLACED + timedelta(seconds=30),
        shipment=c.TenderedShipment(
            origin_location_id="WH-BER-1",
            origin_postal_code="10317",
            origin_country="DE",
            destination=ADA,
            parcels=[PARCEL],
        ),
    )
)
_add(
    c.TenderAccepted(
        tender_id="tdr_1",
        shipment_id=SHIPMENT_ID,
        carrier="swift",
        tracking_number="SW123456789",
        label_ref="lbl_SW123456789",
        accepted_at=PLACED + timedelta(seconds=2),
    )
)
_add(
    c.TenderDeclined(
        tender_id="tdr_1",
        shipment_id=SHIPMENT_ID,
        carrier="velo",
        declined_at=PLACED + timedelta(seconds=2),
        reason="no_courier_available",
    )
)
_add(
    c.ShipmentRequested(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        requested_at=PLACED,
        placed_at=PLACED,
        service_level="next_day",
        origin=ORIGIN,
        destination=ADA,
        parcels=[PARCEL],
        skus=["SKU-1"],
        promised_by=datetime(2026, 11, 21, 20, 0, tzinfo=CET),
        preferences=Preferences(channels=["email"], locale="de-DE"),
    )
)
_add(
    c.ShipmentRejected(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        rejected_at=PLACED,
        reasons=[
            Reason(
                code="invalid_postal_code",
                field="$.ship_to.postal_code",
                message="not a German postal code (5 digits)",
                value="1011",
            )
        ],
    )
)
_add(
    c.ShipmentCancelled(
        shipment_id=SHIPMENT_ID, order_id=ORDER_ID, cancelled_at=PLACED, reason="customer_request"
    )
)
_add(c.CancellationRequested(shipment_id=SHIPMENT_ID, order_id=ORDER_ID, requested_at=PLACED))
_add(
    c.CancellationRefused(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        refused_at=PLACED,
        reasons=[Reason(code="already_picked_up", message="the carrier has the parcel")],
    )
)
_add(c.RatesQuoted(shipment_id=SHIPMENT_ID, order_id=ORDER_ID, quoted_at=PLACED, quotes=[QUOTE]))
_add(
    c.RatingFailed(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        failed_at=PLACED,
        reasons=[Reason(code="no_eligible_carrier", message="no carrier covers NL-9999")],
    )
)
_add(
    c.CapacityReservationRequested(
        request_id="cap_1", shipment_id=SHIPMENT_ID, bucket=BUCKET, requested_at=PLACED
    )
)
_add(
    c.CapacityReleaseRequested(
        request_id="cap_2",
        shipment_id=SHIPMENT_ID,
        bucket=BUCKET,
        requested_at=PLACED,
        reason="tender_declined",
    )
)
_add(
    c.CapacityReserved(
        request_id="cap_1", shipment_id=SHIPMENT_ID, bucket=BUCKET, reserved_at=PLACED, remaining=41
    )
)
_add(
    c.CapacityRefused(request_id="cap_1", shipment_id=SHIPMENT_ID, bucket=BUCKET, refused_at=PLACED)
)
_add(
    c.CapacityReleased(
        request_id="cap_2", shipment_id=SHIPMENT_ID, bucket=BUCKET, released_at=PLACED, remaining=42
    )
)
_add(
    c.CarrierAllocated(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        allocated_at=PLACED + timedelta(seconds=3),
        carrier="swift",
        service="swift-express",
        tracking_number="SW123456789",
        label_ref="lbl_SW123456789",
        quote_id=QUOTE.quote_id,
        price=Money(amount=920, currency=EUR),
        estimated_delivery_date=date(2026, 11, 21),
        hub_id="HUB-BER",
        decision=DECISION,
    )
)
_add(
    c.TenderFailed(
        shipment_id=SHIPMENT_ID,
        tender_id="tdr_0",
        carrier="velo",
        failed_at=PLACED,
        outcome="declined",
    )
)
_add(
    c.AllocationFailed(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        failed_at=PLACED,
        reasons=[
            Reason(code="all_candidates_exhausted", message="3 carriers declined or timed out")
        ],
        decision=DECISION,
    )
)
_add(
    c.AllocationReleased(
        shipment_id=SHIPMENT_ID, released_at=PLACED, carrier="swift", label_ref="lbl_SW123456789"
    )
)
_add(
    c.TrackingNumberAssigned(
        carrier="swift", tracking_number="SW123456789", shipment_id=SHIPMENT_ID, assigned_at=PLACED
    )
)
_add(
    c.TrackingObserved(
        shipment_id=SHIPMENT_ID,
        carrier="swift",
        tracking_number="SW123456789",
        carrier_event_id="swift-8841",
        carrier_code="OFD",
        status="out_for_delivery",
        occurred_at=datetime(2026, 11, 21, 8, 12, tzinfo=CET),
        received_at=datetime(2026, 11, 21, 7, 12, 3, tzinfo=UTC),
        description="Out for delivery",
        location=Location(city="Berlin", postal_code="10115", country="DE"),
    )
)
_add(
    c.KpiSnapshot(
        kpi_key="swift/DE-10>DE-10/acme/2026-11-21",
        carrier="swift",
        lane="DE-10>DE-10",
        tenant_id=TENANT,
        day=date(2026, 11, 21),
        shipments_delivered=120,
        delivered_on_time=113,
        first_attempt_deliveries=109,
        exceptions=4,
        transit_hours_sum=2760.0,
        transit_hours_p90=30.5,
        cost_total=Money(amount=110400, currency=EUR),
        computed_at=datetime(2026, 11, 21, 23, 0, tzinfo=UTC),
    )
)
_add(
    c.ShipmentState(
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        tenant_id=TENANT,
        status="out_for_delivery",
        updated_at=datetime(2026, 11, 21, 7, 12, 3, tzinfo=UTC),
        version=7,
        carrier="swift",
        tracking_number="SW123456789",
        promised_by=datetime(2026, 11, 21, 20, 0, tzinfo=CET),
        estimated_delivery_date=date(2026, 11, 21),
        history=[
            c.HistoryEntry(
                event_id="evt_1",
                type="handoff.tracking.observed.v1",
                occurred_at=datetime(2026, 11, 21, 8, 12, tzinfo=CET),
                recorded_at=datetime(2026, 11, 21, 7, 12, 3, tzinfo=UTC),
                status="out_for_delivery",
                source="swift",
            )
        ],
    )
)
_UPDATE_STATUS = {
    "requested": "requested",
    "rejected": "rejected",
    "quoted": "quoted",
    "allocated": "allocated",
    "allocation_failed": "allocation_failed",
    "cancelled": "cancelled",
    "cancellation_refused": "in_transit",
    "status_changed": "out_for_delivery",
    "exception": "delivery_attempt_failed",
    "delivered": "delivered",
}


def _update(milestone: str) -> c.ShipmentUpdate:
    """A realistic update per milestone: what a marketplace really receives."""
    status = _UPDATE_STATUS.get(milestone, "delivered")
    returning = milestone.startswith("return") or milestone == "refund_eligible"
    allocated = status not in ("requested", "rejected", "quoted", "allocation_failed", "cancelled")
    at = datetime(2026, 11, 21, 14, 2, tzinfo=CET)
    extra: dict[str, object] = {}
    if milestone == "rejected":
        extra["reasons"] = [
            Reason(
                code="invalid_postal_code",
                field="$.ship_to.postal_code",
                message="not a German postal code (5 digits)",
                value="1011",
            )
        ]
    if milestone == "cancellation_refused":
        extra["reasons"] = [Reason(code="already_picked_up", message="the carrier has the parcel")]
    if milestone == "allocation_failed":
        extra["reasons"] = [Reason(code="all_candidates_exhausted", message="3 carriers declined")]
    if milestone == "exception":
        extra["sub_status"] = "recipient_absent"
        extra["exception"] = c.ExceptionInfo(
            kind="failed_attempt",
            detected_at=at,
            detail="nobody home; next attempt tomorrow",
            sub_status="recipient_absent",
        )
    if milestone == "delivered":
        extra.update(
            sub_status="delivered_to_recipient",
            proof=Proof(signed_by="A. Muster"),
            service="swift-express",
            lane="DE-10>DE-10",
            picked_up_at=datetime(2026, 11, 20, 17, 40, tzinfo=CET),
            delivered_at=at,
            location=Location(city="Berlin", postal_code="10119", country="DE"),
        )
    if milestone == "status_changed":
        extra["location"] = Location(city="Berlin", postal_code="10115", country="DE")
    if returning:
        extra.update(rma_id=RMA_ID, return_shipment_id=RETURN_SHIPMENT_ID)
    return c.ShipmentUpdate(
        update_id=f"upd_{milestone}",
        shipment_id=SHIPMENT_ID,
        order_id=ORDER_ID,
        tenant_id=TENANT,
        milestone=milestone,
        status=status,
        occurred_at=at,
        carrier="swift" if allocated else None,
        tracking_number="SW123456789" if allocated else None,
        promised_by=datetime(2026, 11, 21, 20, 0, tzinfo=CET),
        **extra,  # type: ignore[arg-type]
    )


for _milestone, _ce_type in c.UPDATE_TYPES.items():
    _add(_update(_milestone), _ce_type)
_add(
    c.NotificationSent(
        notification_id="ntf_1",
        shipment_id=SHIPMENT_ID,
        milestone="out_for_delivery",
        channel="email",
        recipient_ref="rcp_5f1c",
        sent_at=PLACED,
    )
)
_add(
    c.NotificationFailed(
        notification_id="ntf_2",
        shipment_id=SHIPMENT_ID,
        milestone="delivered",
        channel="webhook",
        recipient_ref="rcp_acme_hook",
        failed_at=PLACED,
        attempt=2,
        error="HTTP 503",
        next_attempt_at=PLACED + timedelta(minutes=2),
    )
)
_add(
    c.NotificationDeadLettered(
        notification_id="ntf_2",
        shipment_id=SHIPMENT_ID,
        milestone="delivered",
        channel="webhook",
        recipient_ref="rcp_acme_hook",
        dead_lettered_at=PLACED + timedelta(hours=24),
        attempts=14,
        delivery_log=["attempt 1: HTTP 503", "attempt 14: timeout"],
    )
)
_RETURN_ITEMS = [c.ReturnItem(sku="SKU-1", quantity=1, parcel_id="P1")]
_add(
    c.ReturnAuthorised(
        rma_id=RMA_ID,
        return_request_id="RR-555",
        order_id=ORDER_ID,
        shipment_id=SHIPMENT_ID,
        return_shipment_id=RETURN_SHIPMENT_ID,
        items=_RETURN_ITEMS,
        reason_code="wrong_item",
        method="drop_off",
        authorised_at=datetime(2026, 11, 25, 9, 0, 1, tzinfo=UTC),
        label_valid_until=datetime(2026, 12, 9, 23, 59, 59, tzinfo=CET),
    )
)
_add(
    c.ReturnRefused(
        return_request_id="RR-556",
        order_id=ORDER_ID,
        shipment_id=SHIPMENT_ID,
        refused_at=PLACED,
        reasons=[
            Reason(code="outside_return_window", message="delivered 2026-10-01, window 14 days")
        ],
    )
)
_add(
    c.ReturnReceived(
        rma_id=RMA_ID,
        shipment_id=SHIPMENT_ID,
        return_shipment_id=RETURN_SHIPMENT_ID,
        received_at=datetime(2026, 11, 27, 11, 0, tzinfo=UTC),
    )
)
_add(
    c.RefundEligible(
        rma_id=RMA_ID,
        order_id=ORDER_ID,
        shipment_id=SHIPMENT_ID,
        items=_RETURN_ITEMS,
        eligible_at=datetime(2026, 11, 27, 11, 0, tzinfo=UTC),
        policy_outcome="full_refund",
    )
)
_add(
    c.ReturnExpired(
        rma_id=RMA_ID,
        shipment_id=SHIPMENT_ID,
        return_shipment_id=RETURN_SHIPMENT_ID,
        expired_at=datetime(2026, 12, 10, 0, 0, tzinfo=UTC),
    )
)

# returns-internal re-keying events (handoff.returns.order-shipments.v1, requests-by-shipment.v1)
_add(
    c.ShipmentIndexed(
        order_id=ORDER_ID,
        shipment_id=SHIPMENT_ID,
        origin_location_id="WH-BER-1",
        skus=["SKU-1"],
        indexed_at=PLACED,
    )
)
_add(
    c.ReturnShipmentLinked(
        rma_id=RMA_ID,
        return_request_id="RR-555",
        order_id=ORDER_ID,
        shipment_id=SHIPMENT_ID,
        return_shipment_id=RETURN_SHIPMENT_ID,
        items=_RETURN_ITEMS,
        reason_code="wrong_item",
        label_valid_until=datetime(2026, 12, 9, 9, 0, 1, tzinfo=UTC),
        linked_at=datetime(2026, 11, 25, 9, 0, 1, tzinfo=UTC),
    )
)


def example(ce_type: str) -> c.Event:
    return EXAMPLES[ce_type]


def _add_late_examples() -> None:
    """Examples for event types added after the first cut of the contract."""
    extra: list[c.Event] = []
    if hasattr(c, "TenderWithdrawn") or "handoff.tender.withdrawn.v1" in c.EVENT_TYPES:
        cls = c.EVENT_TYPES["handoff.tender.withdrawn.v1"]
        extra.append(
            cls(
                tender_id="tdr_0",
                shipment_id=SHIPMENT_ID,
                carrier="velo",
                withdrawn_at=PLACED + timedelta(seconds=31),
                reason="not_current",
                tracking_number="VL12345678",
                label_ref="lbl_VL12345678",
            )
        )
    if "handoff.tracking.kpi_contribution.v1" in c.EVENT_TYPES:
        cls = c.EVENT_TYPES["handoff.tracking.kpi_contribution.v1"]
        extra.append(
            cls(
                kpi_key="swift/DE-10>DE-10/acme/2026-11-21",
                shipment_id=SHIPMENT_ID,
                tenant_id=TENANT,
                carrier="swift",
                lane="DE-10>DE-10",
                day=date(2026, 11, 21),
                contributed_at=datetime(2026, 11, 21, 13, 2, tzinfo=UTC),
                service="swift-express",
                had_promise=True,
                on_time=True,
                first_attempt=True,
                transit_hours=27.5,
                cost=Money(amount=920, currency=EUR),
            )
        )
    if "handoff.return.shipment_indexed.v1" in c.EVENT_TYPES:
        cls = c.EVENT_TYPES["handoff.return.shipment_indexed.v1"]
        extra.append(
            cls(
                order_id=ORDER_ID,
                shipment_id=SHIPMENT_ID,
                origin_location_id="WH-BER-1",
                skus=["SKU-1"],
                indexed_at=PLACED,
            )
        )
    if "handoff.return.shipment_linked.v1" in c.EVENT_TYPES:
        cls = c.EVENT_TYPES["handoff.return.shipment_linked.v1"]
        extra.append(
            cls(
                rma_id=RMA_ID,
                return_request_id="RR-555",
                order_id=ORDER_ID,
                shipment_id=SHIPMENT_ID,
                return_shipment_id=RETURN_SHIPMENT_ID,
                items=_RETURN_ITEMS,
                reason_code="wrong_item",
                label_valid_until=datetime(2026, 12, 9, 23, 59, 59, tzinfo=CET),
                linked_at=datetime(2026, 11, 25, 9, 0, 1, tzinfo=UTC),
            )
        )
    for event in extra:
        _add(event)


_add_late_examples()
