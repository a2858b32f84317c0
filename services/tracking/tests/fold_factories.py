"""Test data for the tracking fold: lifecycle events, carrier observations, fold inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from handoff_events.contracts import (
    AllocationDecision,
    CarrierAllocated,
    Origin,
    RatesQuoted,
    ShipmentCancelled,
    ShipmentRequested,
    ShipmentState,
    TrackingObserved,
)
from handoff_events.ids import event_id
from handoff_events.values import Address, Location, Money, Parcel, Proof
from handoff_tracking.domain.fold import FoldEvent, FoldInput, fold_all

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
TENANT = "acme"
SHIPMENT = "shp_test0001"
CARRIER = "swift"
TRACKING = "SW123456789"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def inp(event: FoldEvent, tenant: str = TENANT, *, ce_id: str | None = None) -> FoldInput:
    return FoldInput(
        event_id=ce_id or event_id(type(event).__name__, event),
        tenant_id=tenant,
        event=event,
    )


def requested(
    shipment_id: str = SHIPMENT,
    *,
    minutes: float = 0,
    promised_by: datetime | None = None,
    order_id: str = "A-1001",
) -> ShipmentRequested:
    return ShipmentRequested(
        shipment_id=shipment_id,
        order_id=order_id,
        requested_at=at(minutes),
        placed_at=at(minutes - 1),
        service_level="next_day",
        origin=Origin(
            location_id="WH-BER-1",
            kind="warehouse",
            postal_code="10115",
            city="Berlin",
            country="DE",
            time_zone="Europe/Berlin",
        ),
        destination=Address(
            name="Ada Muster",
            line1="Torstr. 1",
            city="Munich",
            postal_code="80331",
            country="DE",
        ),
        parcels=[Parcel(parcel_id="P1", weight_g=1200, length_mm=300, width_mm=200, height_mm=100)],
        promised_by=promised_by if promised_by is not None else at(60 * 36),
    )


def quoted(shipment_id: str = SHIPMENT, *, minutes: float = 1) -> RatesQuoted:
    return RatesQuoted(shipment_id=shipment_id, order_id="A-1001", quoted_at=at(minutes), quotes=[])


def allocated(
    shipment_id: str = SHIPMENT,
    *,
    minutes: float = 2,
    edd: date = date(2026, 11, 21),
    tracking_number: str = TRACKING,
) -> CarrierAllocated:
    return CarrierAllocated(
        shipment_id=shipment_id,
        order_id="A-1001",
        allocated_at=at(minutes),
        carrier=CARRIER,
        service="parcel",
        tracking_number=tracking_number,
        label_ref="LBL-1",
        quote_id="q1",
        price=Money(amount=499, currency="EUR"),
        estimated_delivery_date=edd,
        hub_id="HUB-BER-1",
        decision=AllocationDecision(
            policy_id="default", objective="cost", candidates=[], explanation="cheapest"
        ),
    )


def cancelled(shipment_id: str = SHIPMENT, *, minutes: float = 3) -> ShipmentCancelled:
    return ShipmentCancelled(shipment_id=shipment_id, order_id="A-1001", cancelled_at=at(minutes))


CODES = {
    "picked_up": "PU",
    "in_transit": "IT",
    "out_for_delivery": "OFD",
    "delivery_attempt_failed": "NA",
    "available_for_pickup": "PUP",
    "delivered": "DLV",
    "exception": "EXC",
    "returning_to_sender": "RTS",
    "returned_to_sender": "RTD",
    "unknown": "ZZ9",
}


def observed(
    status: str,
    minutes: float,
    *,
    carrier_event_id: str | None = None,
    shipment_id: str = SHIPMENT,
    sub_status: str | None = None,
    city: str = "Berlin",
    received_delay_min: float = 1,
) -> TrackingObserved:
    return TrackingObserved(
        shipment_id=shipment_id,
        carrier=CARRIER,
        tracking_number=TRACKING,
        carrier_event_id=carrier_event_id or f"{status}-{minutes}",
        carrier_code=CODES[status],
        status=status,  # type: ignore[arg-type]
        occurred_at=at(minutes),
        received_at=at(minutes + received_delay_min),
        sub_status=sub_status,
        description=status.replace("_", " "),
        location=Location(city=city, postal_code="10115", country="DE"),
        proof=Proof(signed_by="A. Muster") if status == "delivered" else None,
        unknown_code=status == "unknown",
    )


def folded_shipment(
    shipment_id: str, tenant: str = TENANT, delivered: bool = False
) -> ShipmentState:
    """A shipment requested, allocated and in transit (then delivered), folded: a state as
    the read model holds it."""
    events = [
        inp(requested(shipment_id), tenant),
        inp(allocated(shipment_id), tenant),
        inp(observed("in_transit", 30, shipment_id=shipment_id), tenant),
    ]
    if delivered:
        events.append(inp(observed("delivered", 90, shipment_id=shipment_id), tenant))
    state = fold_all(events)
    assert state is not None
    return state
