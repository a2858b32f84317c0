"""Rate shopping's output (internal topic `handoff.rate_shopping.quotes.v1`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from handoff_events.contracts.base import Event
from handoff_events.values import AwareDatetime, CarrierCode, Frozen, Money, Reason, ServiceLevel

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Surcharge(Frozen, frozen=True, kw_only=True):
    code: str
    """fuel, residential, remote_area, oversize, signature, age_check, cold_chain, …"""
    amount: Money


class PriceBreakdown(Frozen, frozen=True, kw_only=True):
    base: Money
    surcharges: list[Surcharge]
    tax: Money
    total: Money


class Quote(Frozen, frozen=True, kw_only=True):
    quote_id: str
    carrier: CarrierCode
    service: str
    service_level: ServiceLevel
    hub_id: str
    price: PriceBreakdown
    actual_weight_g: int
    dimensional_weight_g: int
    billable_weight_g: int
    zone: str
    ship_date: date
    estimated_delivery_date: date
    meets_promise: bool
    on_time_probability: Probability
    transit_basis: Literal["observed", "advertised"]
    p50_delivery_date: date | None = None
    p90_delivery_date: date | None = None
    capabilities: list[str] = []


class IneligibleCarrier(Frozen, frozen=True, kw_only=True):
    carrier: CarrierCode
    service: str | None
    reasons: list[Reason]


class RatesQuoted(Event, frozen=True, kw_only=True):
    ce_type = "handoff.rates.quoted.v1"

    shipment_id: str
    order_id: str
    quoted_at: AwareDatetime
    quotes: list[Quote]
    ineligible: list[IneligibleCarrier] = []


class RatingFailed(Event, frozen=True, kw_only=True):
    ce_type = "handoff.rating.failed.v1"

    shipment_id: str
    order_id: str
    failed_at: AwareDatetime
    reasons: list[Reason]
    ineligible: list[IneligibleCarrier] = []
