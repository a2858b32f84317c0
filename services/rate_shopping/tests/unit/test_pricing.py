"""Pricing against hand-computed cases (arithmetic in the comments) and properties."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from handoff_events.contracts import ShipmentRequested
from handoff_events.values import Parcel, Requirements
from handoff_rate_shopping.domain.catalogue import Catalogue
from handoff_rate_shopping.domain.pricing import (
    billable_weight_g,
    dimensional_weight_g,
    percentage_of,
    price_shipment,
)
from handoff_rate_shopping.domain.rating import rate_with_cards
from hypothesis import given, settings
from hypothesis import strategies as st

MONDAY_10_BERLIN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_percentage_rounds_half_up_on_integers() -> None:
    assert percentage_of(10, 1450) == 1  # 10 × 14.50 % = 1.45 → 1
    assert percentage_of(100, 1450) == 15  # 100 × 14.50 % = 14.50 → half up → 15
    assert percentage_of(30, 500) == 2  # 30 × 5 % = 1.50 → half up → 2
    assert percentage_of(29, 500) == 1  # 29 × 5 % = 1.45 → 1
    assert percentage_of(449, 500) == 22  # 449 × 5 % = 22.45 → 22
    assert percentage_of(471, 1900) == 89  # 471 × 19 % = 89.49 → 89
    assert percentage_of(0, 1900) == 0
    with pytest.raises(ValueError):
        percentage_of(-1, 1900)


def test_dimensional_weight_is_a_ceiling_in_grams(parcel_factory: Callable[..., Parcel]) -> None:
    # 300 × 200 × 100 mm = 6 000 000 mm³; / 5000 = 1200 g exactly
    assert dimensional_weight_g(parcel_factory(500, 300, 200, 100), 5000) == 1200
    # 301 × 200 × 100 = 6 020 000 mm³; / 5000 = 1204 g exactly; / 6000 = 1003.33 → 1004 g
    assert dimensional_weight_g(parcel_factory(500, 301, 200, 100), 5000) == 1204
    assert dimensional_weight_g(parcel_factory(500, 301, 200, 100), 6000) == 1004
    assert billable_weight_g(parcel_factory(2500, 301, 200, 100), 6000) == 2500


def test_dimensional_weight_wins_and_moves_the_weight_break(
    catalogue: Catalogue,
    shipment_factory: Callable[..., ShipmentRequested],
    parcel_factory: Callable[..., Parcel],
) -> None:
    swift = catalogue.carrier("swift")
    assert swift is not None
    express = swift.services[0]
    # A light but bulky box: 800 g actual; 400 × 300 × 200 mm = 24 000 000 mm³ / 5000 = 4800 g.
    box = parcel_factory(800, 400, 300, 200)
    shipment = shipment_factory(
        parcels=[box], service_level="next_day", requested_at=MONDAY_10_BERLIN
    )
    # Berlin 10317 → Berlin 10119: same first digit → zone Z1.
    zone = swift.zone_for("DE", "10317", "DE", "10119")
    assert zone == "Z1"
    price = price_shipment(
        swift, express, zone, shipment.parcels,
        dest_country="DE", dest_postal="10119", origin_country="DE", requirements=Requirements(),
    )  # fmt: skip
    assert (price.actual_weight_g, price.dimensional_weight_g, price.billable_weight_g) == (
        800,
        4800,
        4800,
    )
    # 4800 g falls in the ≤ 5000 g break (800 g alone would have been ≤ 1000 g at 899): base 1099
    assert price.base == 1099
    # fuel 14.50 % of 1099 = 159.355 → 159; residential 150 per parcel
    assert [(line.code, line.amount) for line in price.surcharges] == [
        ("fuel", 159),
        ("residential", 150),
    ]
    # net 1099 + 159 + 150 = 1408; VAT 19 % = 267.52 → 268; total 1676
    assert price.tax == 268
    assert price.total == 1676


def test_remote_area_surcharge_on_an_island(
    catalogue: Catalogue,
    shipment_factory: Callable[..., ShipmentRequested],
    parcel_factory: Callable[..., Parcel],
) -> None:
    shipment = shipment_factory(
        dest_postal="25980",  # Sylt
        parcels=[parcel_factory(1500, 200, 150, 100)],
        requested_at=MONDAY_10_BERLIN,
    )
    rating = rate_with_cards(catalogue, shipment)
    quote = next(q for q in rating.quotes if q.carrier == "nordpost")
    # dimensional 200 × 150 × 100 = 3 000 000 / 6000 = 500 g < 1500 g actual
    # → billable 1500 g → the ≤ 2000 g break
    assert quote.billable_weight_g == 1500
    # 10317 vs 25980: different two-digit region → zone "national": 499
    assert quote.zone == "national"
    assert quote.price.base.amount == 499
    # fuel 5 % of 499 = 24.95 → 25; remote area 250 (25980 is listed)
    assert [(s.code, s.amount.amount) for s in quote.price.surcharges] == [
        ("fuel", 25),
        ("remote_area", 250),
    ]
    # net 499 + 25 + 250 = 774; VAT 19 % = 147.06 → 147; total 921
    assert quote.price.tax.amount == 147
    assert quote.price.total.amount == 921
    assert quote.price.total.currency == "EUR"


def test_two_parcels_with_signature_and_age_check_from_the_netherlands(
    catalogue: Catalogue,
    shipment_factory: Callable[..., ShipmentRequested],
    parcel_factory: Callable[..., Parcel],
) -> None:
    shipment = shipment_factory(
        origin="MFC-AMS-1",
        dest_country="NL",
        dest_postal="3511 AB",
        service_level="next_day",
        parcels=[
            parcel_factory(2000, 300, 200, 150, "P1"),
            parcel_factory(2000, 300, 200, 150, "P2"),
        ],
        requirements=Requirements(signature=True, min_age=18),
        requested_at=MONDAY_10_BERLIN,
    )
    rating = rate_with_cards(catalogue, shipment)
    quote = next(q for q in rating.quotes if q.carrier == "swift" and q.service == "express")
    # per parcel: dimensional 300 × 200 × 150 = 9 000 000 / 5000 = 1800 g < 2000 g → ≤ 5000 g break
    # 1043 → 3511: different first digit → Z2 = 1249 per parcel; base 2 × 1249 = 2498
    assert (quote.zone, quote.price.base.amount) == ("Z2", 2498)
    # fuel 14.5 % of 2498 = 362.21 → 362; residential 2 × 150 = 300; signature 200; age check 350
    assert [(s.code, s.amount.amount) for s in quote.price.surcharges] == [
        ("fuel", 362),
        ("residential", 300),
        ("signature", 200),
        ("age_check", 350),
    ]
    # net 2498 + 362 + 300 + 200 + 350 = 3710; Dutch VAT 21 % = 779.1 → 779; total 4489
    assert quote.price.tax.amount == 779
    assert quote.price.total.amount == 4489
    assert quote.hub_id == "SW-AMS"
    # Nordpost does not offer age checks, Velo neither: ineligible with that reason
    codes = {(i.carrier, r.code) for i in rating.ineligible for r in i.reasons}
    assert ("nordpost", "age_check_not_offered") in codes
    assert ("velo", "age_check_not_offered") in codes


parcels = st.builds(
    Parcel,
    parcel_id=st.just("P"),
    weight_g=st.integers(0, 40_000),
    length_mm=st.integers(0, 2000),
    width_mm=st.integers(0, 800),
    height_mm=st.integers(0, 800),
)
destinations = st.sampled_from(
    [
        ("DE", "10119"),
        ("DE", "80331"),
        ("DE", "25980"),
        ("DE", "04109"),
        ("NL", "1017"),
        ("NL", "1791"),
        ("NL", "3511"),
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    parcel_list=st.lists(parcels, min_size=1, max_size=3),
    destination=destinations,
    origin=st.sampled_from(["WH-BER-1", "WH-MUC-1", "MFC-AMS-1", "ST-BER-2"]),
    level=st.sampled_from(["same_day", "next_day", "two_day", "standard", "pickup_point"]),
    signature=st.booleans(),
    cold_chain=st.booleans(),
)
def test_prices_are_never_negative_and_never_floats(
    catalogue: Catalogue,
    shipment_factory: Callable[..., ShipmentRequested],
    parcel_list: list[Parcel],
    destination: tuple[str, str],
    origin: str,
    level: str,
    signature: bool,
    cold_chain: bool,
) -> None:
    shipment = shipment_factory(
        origin=origin,
        dest_country=destination[0],
        dest_postal=destination[1],
        service_level=level,
        parcels=parcel_list,
        requirements=Requirements(signature=signature, cold_chain=cold_chain),
        requested_at=MONDAY_10_BERLIN,
    )
    for quote in rate_with_cards(catalogue, shipment).quotes:
        breakdown = quote.price
        lines = [
            breakdown.base,
            breakdown.tax,
            breakdown.total,
            *(s.amount for s in breakdown.surcharges),
        ]
        for money in lines:
            assert type(money.amount) is int
            assert money.amount >= 0
        assert breakdown.total.amount == (
            breakdown.base.amount
            + sum(s.amount.amount for s in breakdown.surcharges)
            + breakdown.tax.amount
        )
        assert quote.billable_weight_g >= quote.actual_weight_g
        assert quote.billable_weight_g >= 0
