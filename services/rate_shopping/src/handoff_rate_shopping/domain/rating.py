"""Rating one shipment against the catalogue: who can carry it, when, and at what price.

This module owns the decision of eligibility (with reasons) and the assembly of
a `Quote`. It is split in two steps so that a carrier with its own quoting API
can supply the price while Handoff still decides eligibility and dates from the
catalogue:

* `plan_carrier` → a `ServicePlan` per eligible service (hub, zone, ship date,
  estimated delivery date, promise, observed percentiles) and the reasons for
  every service that is not eligible;
* `quote_of(plan, price)` → the contract `Quote`.

`rate_with_cards` does both with rate-card prices, for every carrier: the
whole rating as one pure function (used by the bench and unit tests).

Ship dates assume the parcel is handed over at the shipment's `requested_at`,
so a replay of the same request gives the same dates whatever the clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfoNotFoundError

from handoff_events.contracts import (
    IneligibleCarrier,
    PriceBreakdown,
    Quote,
    ShipmentRequested,
    Surcharge,
)
from handoff_events.ids import digest
from handoff_events.values import Money, Reason, lane_of

from handoff_rate_shopping.domain.catalogue import (
    SPEED_RANK,
    Carrier,
    Catalogue,
    Hub,
    Service,
    covered,
)
from handoff_rate_shopping.domain.delivery_dates import (
    BusinessCalendar,
    estimated_delivery_date,
    meets_promise,
    promise_deadline,
    ship_date,
    zone,
)
from handoff_rate_shopping.domain.pricing import (
    PricedShipment,
    parcel_limits,
    price_shipment,
    unmet_requirements,
)
from handoff_rate_shopping.domain.transit_history import TransitHistory


class InvalidRequest(ValueError):
    """A request the schema accepted but that cannot be rated (names the field and value)."""

    def __init__(self, code: str, message: str, field: str, value: str):
        super().__init__(f"{code}: {message} ({field}={value!r})")
        self.code = code
        self.message = message
        self.field = field
        self.value = value


def check_request(shipment: ShipmentRequested) -> None:
    """Origin facts every carrier's plan relies on: a real time zone and an `HH:MM` cut-off."""
    origin = shipment.origin
    try:
        zone(origin.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            "invalid_time_zone", "not an IANA time zone", "$.origin.time_zone", origin.time_zone
        ) from None
    try:
        time.fromisoformat(origin.cutoff_local)
    except ValueError:
        raise InvalidRequest(
            "invalid_cutoff", "not a local time HH:MM", "$.origin.cutoff_local", origin.cutoff_local
        ) from None


TransitBasis = Literal["observed", "advertised"]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """Everything about one carrier service for one shipment except its price."""

    carrier: Carrier
    service: Service
    hub: Hub
    zone: str
    lane: str
    ship_date: date
    estimated_delivery_date: date
    meets_promise: bool
    on_time_probability: float
    transit_basis: TransitBasis
    p50_delivery_date: date | None
    p90_delivery_date: date | None


@dataclass(frozen=True, slots=True)
class CarrierPlan:
    carrier: Carrier
    plans: tuple[ServicePlan, ...]
    ineligible: tuple[IneligibleCarrier, ...]


def quote_id(shipment_id: str, carrier: str, service: str) -> str:
    """Deterministic: the same shipment quoted again yields the same quote ids."""
    return "quo_" + digest("quote", shipment_id, carrier, service)


def _reason(code: str, message: str, field: str | None = None, value: str | None = None) -> Reason:
    return Reason(code=code, message=message, field=field, value=value)


def _level_fits(service: Service, shipment: ShipmentRequested) -> bool:
    """Pickup points only for pickup-point requests; home delivery at least as fast as asked."""
    wanted = shipment.service_level
    if (wanted == "pickup_point") != (service.service_level == "pickup_point"):
        return False
    return SPEED_RANK[service.service_level] <= SPEED_RANK[wanted]


def plan_carrier(
    carrier: Carrier, shipment: ShipmentRequested, history: TransitHistory | None = None
) -> CarrierPlan:
    origin, dest = shipment.origin, shipment.destination
    carrier_reasons: list[Reason] = []
    hub = carrier.hub_for(origin.location_id, origin.country, origin.postal_code)
    if hub is None:
        carrier_reasons.append(
            _reason(
                "origin_not_served",
                "no hub collects from this origin",
                "$.origin.location_id",
                origin.location_id,
            )
        )
    if not covered(carrier.coverage, dest.country, dest.postal_code):
        carrier_reasons.append(
            _reason(
                "destination_not_covered",
                f"{carrier.code} does not deliver to {dest.country} {dest.postal_code}",
                "$.destination.postal_code",
                dest.postal_code,
            )
        )
    zone_name = carrier.zone_for(origin.country, origin.postal_code, dest.country, dest.postal_code)
    if zone_name is None and not carrier_reasons:
        carrier_reasons.append(
            _reason(
                "lane_not_served",
                "no zone in the carrier's chart for this lane",
                "$.destination.postal_code",
                f"{origin.country}-{origin.postal_code}>{dest.country}-{dest.postal_code}",
            )
        )
    carrier_reasons += unmet_requirements(carrier, shipment.requirements)
    if carrier_reasons or hub is None or zone_name is None:
        return CarrierPlan(
            carrier,
            (),
            (IneligibleCarrier(carrier=carrier.code, service=None, reasons=carrier_reasons),),
        )

    plans: list[ServicePlan] = []
    ineligible: list[IneligibleCarrier] = []
    for service in carrier.services:
        reasons: list[Reason] = []
        if not _level_fits(service, shipment):
            reasons.append(
                _reason(
                    "service_level_mismatch",
                    f"{service.service_level} does not fulfil a {shipment.service_level} request",
                    "$.service_level",
                    shipment.service_level,
                )
            )
        if service.coverage is not None and not covered(
            service.coverage, dest.country, dest.postal_code
        ):
            reasons.append(
                _reason(
                    "destination_not_covered",
                    f"{service.code} does not deliver to {dest.country} {dest.postal_code}",
                    "$.destination.postal_code",
                    dest.postal_code,
                )
            )
        reasons += parcel_limits(carrier, service, shipment.parcels)
        if reasons:
            ineligible.append(
                IneligibleCarrier(carrier=carrier.code, service=service.code, reasons=reasons)
            )
            continue
        plans.append(
            _plan_service(
                carrier,
                service=service,
                hub=hub,
                zone_name=zone_name,
                shipment=shipment,
                history=history,
            )
        )
    return CarrierPlan(carrier, tuple(plans), tuple(ineligible))


def _effective_cutoff(origin_cutoff: str, hub: Hub, service: Service) -> time:
    """The earlier of the origin's own hand-over cut-off and the carrier's collection cut-off."""
    carrier_cutoff = service.cutoff_local or hub.cutoff_local
    return min(time.fromisoformat(origin_cutoff), carrier_cutoff)


def _plan_service(
    carrier: Carrier,
    *,
    service: Service,
    hub: Hub,
    zone_name: str,
    shipment: ShipmentRequested,
    history: TransitHistory | None,
) -> ServicePlan:
    origin, dest = shipment.origin, shipment.destination
    origin_calendar = BusinessCalendar(carrier.working_days, ((origin.country, hub.subdivision),))
    transit_regions = tuple(dict.fromkeys(((origin.country, None), (dest.country, None))))
    transit_calendar = BusinessCalendar(carrier.working_days, transit_regions)
    cutoff = _effective_cutoff(origin.cutoff_local, hub, service)
    shipped = ship_date(shipment.requested_at, origin.time_zone, cutoff, origin_calendar)
    estimated = estimated_delivery_date(
        shipped, service.transit_days_for(zone_name), transit_calendar
    )
    meets = meets_promise(
        estimated,
        service.delivery_start,
        service.delivery_end,
        shipment.promised_by,
        shipment.delivery_window,
    )
    lane = lane_of(origin.country, origin.postal_code, dest.country, dest.postal_code)
    observed = history.distribution(carrier.code, service.code, lane) if history else None
    if observed is None:
        return ServicePlan(
            carrier=carrier,
            service=service,
            hub=hub,
            zone=zone_name,
            lane=lane,
            ship_date=shipped,
            estimated_delivery_date=estimated,
            meets_promise=meets,
            on_time_probability=service.advertised_on_time_rate if meets else 0.0,
            transit_basis="advertised",
            p50_delivery_date=None,
            p90_delivery_date=None,
        )
    origin_tz = zone(origin.time_zone)
    picked_up = datetime.combine(shipped, cutoff, tzinfo=origin_tz)
    local_tz = shipment.promised_by.tzinfo if shipment.promised_by else origin_tz

    def arrival_day(hours: float) -> date:
        arrival = (picked_up + timedelta(hours=hours)).astimezone(local_tz).date()
        return transit_calendar.on_or_after(arrival)

    deadline = promise_deadline(
        shipment.promised_by, shipment.delivery_window, estimated, service.delivery_end, origin_tz
    )
    allowed_hours = (deadline - picked_up).total_seconds() / 3600
    return ServicePlan(
        carrier=carrier,
        service=service,
        hub=hub,
        zone=zone_name,
        lane=lane,
        ship_date=shipped,
        estimated_delivery_date=estimated,
        meets_promise=meets,
        on_time_probability=observed.share_within(allowed_hours),
        transit_basis="observed",
        p50_delivery_date=arrival_day(observed.quantile(0.5)),
        p90_delivery_date=arrival_day(observed.quantile(0.9)),
    )


def rate_card_price(plan: ServicePlan, shipment: ShipmentRequested) -> PricedShipment:
    return price_shipment(
        plan.carrier,
        plan.service,
        plan.zone,
        shipment.parcels,
        dest_country=shipment.destination.country,
        dest_postal=shipment.destination.postal_code,
        origin_country=shipment.origin.country,
        requirements=shipment.requirements,
    )


def quote_of(plan: ServicePlan, price: PricedShipment, shipment_id: str) -> Quote:
    currency = price.currency
    return Quote(
        quote_id=quote_id(shipment_id, plan.carrier.code, plan.service.code),
        carrier=plan.carrier.code,
        service=plan.service.code,
        service_level=plan.service.service_level,
        hub_id=plan.hub.hub_id,
        price=PriceBreakdown(
            base=Money(amount=price.base, currency=currency),
            surcharges=[
                Surcharge(code=line.code, amount=Money(amount=line.amount, currency=currency))
                for line in price.surcharges
            ],
            tax=Money(amount=price.tax, currency=currency),
            total=Money(amount=price.total, currency=currency),
        ),
        actual_weight_g=price.actual_weight_g,
        dimensional_weight_g=price.dimensional_weight_g,
        billable_weight_g=price.billable_weight_g,
        zone=plan.zone,
        ship_date=plan.ship_date,
        estimated_delivery_date=plan.estimated_delivery_date,
        meets_promise=plan.meets_promise,
        on_time_probability=plan.on_time_probability,
        transit_basis=plan.transit_basis,
        p50_delivery_date=plan.p50_delivery_date,
        p90_delivery_date=plan.p90_delivery_date,
        capabilities=list(plan.carrier.capabilities),
    )


@dataclass(frozen=True, slots=True)
class Rating:
    quotes: tuple[Quote, ...]
    ineligible: tuple[IneligibleCarrier, ...]


def sort_quotes(quotes: list[Quote]) -> tuple[Quote, ...]:
    """A stable, meaningful order: cheapest first, then earliest, then by name."""
    return tuple(
        sorted(
            quotes,
            key=lambda q: (q.price.total.amount, q.estimated_delivery_date, q.carrier, q.service),
        )
    )


def rate_with_cards(
    catalogue: Catalogue, shipment: ShipmentRequested, history: TransitHistory | None = None
) -> Rating:
    """Rate every carrier from its rate card (no quoting APIs): one pure function."""
    check_request(shipment)
    quotes: list[Quote] = []
    ineligible: list[IneligibleCarrier] = []
    for carrier in catalogue.carriers:
        carrier_plan = plan_carrier(carrier, shipment, history)
        ineligible.extend(carrier_plan.ineligible)
        for plan in carrier_plan.plans:
            quotes.append(quote_of(plan, rate_card_price(plan, shipment), shipment.shipment_id))
    return Rating(sort_quotes(quotes), tuple(ineligible))
