"""Pricing a shipment from a carrier's rate card: pure integer arithmetic.

This module owns how a price is made up:

1. Per parcel, the **dimensional weight** is `ceil(L × W × H / divisor)` grams
   (millimetres, divisor in mm³ per gram, which is numerically the familiar
   cm³ per kg: 5000 means 5000 cm³ weigh as 1 kg). The **billable weight** is
   `max(actual, dimensional)`.
2. Per parcel, the **base** is the price of the first weight break whose
   `max_g` is at least the billable weight, in the lane's zone.
3. **Surcharges**, itemised and in this fixed order: `fuel` (basis points of
   the base), `residential` (per parcel, home delivery), `remote_area` (per
   parcel, destination postal prefix listed), `oversize` (per parcel whose
   longest side exceeds the threshold), `signature` and `age_check` (per
   shipment, when required), `cold_chain` (per parcel, when required). Lines
   that come to zero are left out.
4. **Tax** in basis points of the net (base + surcharges).

**Rounding rule (the only one):** every percentage line (fuel, tax) is
rounded half up to a whole minor unit, on its own, with integer arithmetic:
`(amount × bp + 5000) // 10000`. All other lines are whole minor units by
construction, so `total = base + Σ surcharges + tax` exactly. No floats are
involved anywhere; amounts are never negative.
"""

from __future__ import annotations

from dataclasses import dataclass

from handoff_events.values import Parcel, Reason, Requirements

from handoff_rate_shopping.domain.catalogue import Carrier, Service

BP_PER_UNIT = 10_000


def percentage_of(amount: int, basis_points: int) -> int:
    """`amount × bp / 10 000`, rounded half up (amount and bp are never negative)."""
    if amount < 0 or basis_points < 0:
        raise ValueError("percentages apply to non-negative amounts and rates")
    return (amount * basis_points + BP_PER_UNIT // 2) // BP_PER_UNIT


def dimensional_weight_g(parcel: Parcel, divisor: int) -> int:
    """`ceil(L × W × H / divisor)` in grams, with integer ceiling division."""
    volume_mm3 = parcel.length_mm * parcel.width_mm * parcel.height_mm
    return -(-volume_mm3 // divisor)


def billable_weight_g(parcel: Parcel, divisor: int) -> int:
    return max(parcel.weight_g, dimensional_weight_g(parcel, divisor))


def shipment_weights(parcels: list[Parcel], divisor: int) -> tuple[int, int, int]:
    """(actual, dimensional, billable) grams summed over the parcels; billable is per parcel."""
    actual = sum(p.weight_g for p in parcels)
    dimensional = sum(dimensional_weight_g(p, divisor) for p in parcels)
    billable = sum(billable_weight_g(p, divisor) for p in parcels)
    return actual, dimensional, billable


def longest_side_mm(parcel: Parcel) -> int:
    return max(parcel.length_mm, parcel.width_mm, parcel.height_mm)


@dataclass(frozen=True, slots=True)
class PriceLine:
    code: str
    amount: int


@dataclass(frozen=True, slots=True)
class PricedShipment:
    """A rate-card price, every line in minor units of `currency`."""

    currency: str
    base: int
    surcharges: tuple[PriceLine, ...]
    tax: int
    actual_weight_g: int
    dimensional_weight_g: int
    billable_weight_g: int

    @property
    def net(self) -> int:
        return self.base + sum(line.amount for line in self.surcharges)

    @property
    def total(self) -> int:
        return self.net + self.tax


def unmet_requirements(carrier: Carrier, requirements: Requirements) -> list[Reason]:
    """Handling the carrier does not offer at all (signature, age check, cold chain)."""
    s = carrier.surcharges
    reasons = []
    if requirements.signature and s.signature is None:
        reasons.append(_reason("signature_not_offered", "$.requirements.signature", "true"))
    if requirements.min_age > 0 and s.age_check is None:
        reasons.append(
            _reason("age_check_not_offered", "$.requirements.min_age", str(requirements.min_age))
        )
    if requirements.cold_chain and s.cold_chain_per_parcel is None:
        reasons.append(_reason("cold_chain_not_offered", "$.requirements.cold_chain", "true"))
    return reasons


def parcel_limits(carrier: Carrier, service: Service, parcels: list[Parcel]) -> list[Reason]:
    """Parcels this service cannot carry (too heavy once billable, too long)."""
    reasons = []
    for i, parcel in enumerate(parcels):
        billable = billable_weight_g(parcel, carrier.dimensional_divisor)
        if billable > service.max_weight_g:
            reasons.append(
                Reason(
                    code="overweight",
                    field=f"$.parcels[{i}].weight_g",
                    message=f"billable weight {billable} g exceeds {service.max_weight_g} g",
                    value=str(parcel.weight_g),
                )
            )
        side = longest_side_mm(parcel)
        if side > service.max_longest_side_mm:
            reasons.append(
                Reason(
                    code="too_long",
                    field=f"$.parcels[{i}]",
                    message=f"longest side {side} mm exceeds {service.max_longest_side_mm} mm",
                    value=str(side),
                )
            )
    return reasons


def price_shipment(
    carrier: Carrier,
    service: Service,
    zone: str,
    parcels: list[Parcel],
    *,
    dest_country: str,
    dest_postal: str,
    origin_country: str,
    requirements: Requirements,
) -> PricedShipment:
    """The itemised price. Call `parcel_limits` and `unmet_requirements` first:
    a parcel beyond the last weight break raises ValueError here."""
    s = carrier.surcharges
    base = 0
    actual = dimensional = billable = 0
    oversize_parcels = 0
    for parcel in parcels:
        dim = dimensional_weight_g(parcel, carrier.dimensional_divisor)
        weight = max(parcel.weight_g, dim)
        actual += parcel.weight_g
        dimensional += dim
        billable += weight
        base += _break_price(service, zone, weight)
        if (
            s.oversize_longest_side_mm is not None
            and longest_side_mm(parcel) > s.oversize_longest_side_mm
        ):
            oversize_parcels += 1
    n = len(parcels)
    home_delivery = service.service_level != "pickup_point"
    candidates = [
        PriceLine("fuel", percentage_of(base, s.fuel_bp)),
        PriceLine("residential", s.residential_per_parcel * n if home_delivery else 0),
        PriceLine(
            "remote_area",
            s.remote_area_per_parcel * n if s.is_remote(dest_country, dest_postal) else 0,
        ),
        PriceLine("oversize", s.oversize_per_parcel * oversize_parcels),
        PriceLine("signature", (s.signature or 0) if requirements.signature else 0),
        PriceLine("age_check", (s.age_check or 0) if requirements.min_age > 0 else 0),
        PriceLine(
            "cold_chain", (s.cold_chain_per_parcel or 0) * n if requirements.cold_chain else 0
        ),
    ]
    surcharges = tuple(line for line in candidates if line.amount > 0)
    net = base + sum(line.amount for line in surcharges)
    tax = percentage_of(net, carrier.tax_rate_for(origin_country))
    return PricedShipment(
        currency=carrier.currency,
        base=base,
        surcharges=surcharges,
        tax=tax,
        actual_weight_g=actual,
        dimensional_weight_g=dimensional,
        billable_weight_g=billable,
    )


def _break_price(service: Service, zone: str, billable_g: int) -> int:
    for weight_break in service.weight_breaks:
        if billable_g <= weight_break.max_g:
            return weight_break.prices[zone]
    raise ValueError(f"{billable_g} g is beyond {service.code}'s last weight break")


def _reason(code: str, field: str, value: str) -> Reason:
    return Reason(code=code, field=field, message=code.replace("_", " "), value=value)
