"""Test data for carrier allocation: quotes, shipment requests, envelopes."""

from __future__ import annotations

from datetime import UTC, date, datetime

from handoff_events.contracts import (
    Origin,
    PriceBreakdown,
    Quote,
    RatesQuoted,
    ShipmentRequested,
)
from handoff_events.values import Address, Money, Parcel, Requirements

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SHIP_DAY = date(2026, 11, 20)


def quote(
    carrier: str,
    total: int,
    *,
    service: str = "parcel",
    eta: date = date(2026, 11, 21),
    meets_promise: bool = True,
    on_time: float = 0.95,
    capabilities: tuple[str, ...] = (),
    hub_id: str = "HUB-BER-1",
    ship_date: date = SHIP_DAY,
    currency: str = "EUR",
) -> Quote:
    money = Money(amount=total, currency=currency)
    return Quote(
        quote_id=f"q-{carrier}-{service}",
        carrier=carrier,
        service=service,
        service_level="next_day",
        hub_id=hub_id,
        price=PriceBreakdown(
            base=money, surcharges=[], tax=Money(amount=0, currency=currency), total=money
        ),
        actual_weight_g=1200,
        dimensional_weight_g=1000,
        billable_weight_g=1200,
        zone="DE-1",
        ship_date=ship_date,
        estimated_delivery_date=eta,
        meets_promise=meets_promise,
        on_time_probability=on_time,
        transit_basis="observed",
        capabilities=list(capabilities),
    )


def rates(shipment_id: str, *quotes: Quote) -> RatesQuoted:
    return RatesQuoted(shipment_id=shipment_id, order_id="A-1", quoted_at=NOW, quotes=list(quotes))


def request(shipment_id: str, requirements: Requirements | None = None) -> ShipmentRequested:
    return ShipmentRequested(
        shipment_id=shipment_id,
        order_id="A-1",
        requested_at=NOW,
        placed_at=NOW,
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
            name="Ada Muster", line1="Torstr. 1", city="Berlin", postal_code="10119", country="DE"
        ),
        parcels=[Parcel(parcel_id="P1", weight_g=1200, length_mm=300, width_mm=200, height_mm=100)],
        requirements=requirements or Requirements(),
    )
