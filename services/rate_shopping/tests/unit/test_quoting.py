"""Eligibility, the Quoter (rate cards and a carrier API), deterministic ids."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from handoff_events.contracts import Origin, RatesQuoted, RatingFailed, ShipmentRequested
from handoff_events.values import Parcel, Requirements
from handoff_rate_shopping.adapters.carriers import HttpQuoteAdapter
from handoff_rate_shopping.adapters.circuit_breaker import CircuitBreaker
from handoff_rate_shopping.domain.catalogue import Catalogue, QuoteApi
from handoff_rate_shopping.domain.rating import quote_id, rate_with_cards
from handoff_rate_shopping.domain.transit_history import TransitHistory
from handoff_rate_shopping.quoting import Quoter

MONDAY_10_BERLIN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
USD_PRICE = {"service": "express", "currency": "USD", "base": 1, "tax": 0}
NOW = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)


def _reasons(result: RatesQuoted | RatingFailed) -> set[tuple[str, str | None, str]]:
    return {(i.carrier, i.service, r.code) for i in result.ineligible for r in i.reasons}


def test_a_berlin_next_day_shipment(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    shipment = shipment_factory(service_level="next_day", requested_at=MONDAY_10_BERLIN)
    rating = rate_with_cards(catalogue, shipment)
    offered = {(q.carrier, q.service, q.hub_id) for q in rating.quotes}
    assert offered == {
        ("swift", "express", "SW-BER"),
        ("gigly", "tonight", "GG-BER"),
        ("gigly", "tomorrow_evening", "GG-BER"),
        ("velo", "sameday", "VL-BER"),
    }
    reasons = {(i.carrier, i.service, r.code) for i in rating.ineligible for r in i.reasons}
    assert (
        "nordpost",
        "parcel",
        "service_level_mismatch",
    ) in reasons  # standard is slower than next_day
    assert ("nordpost", "parcelshop", "service_level_mismatch") in reasons
    assert ("swift", "economy", "service_level_mismatch") in reasons
    totals = [q.price.total.amount for q in rating.quotes]
    assert totals == sorted(totals)  # cheapest first
    assert all(q.ship_date.isoformat() == "2026-11-23" for q in rating.quotes)
    same_day = next(q for q in rating.quotes if q.carrier == "velo")
    assert same_day.estimated_delivery_date == same_day.ship_date
    assert same_day.quote_id == quote_id("shp_test_1", "velo", "sameday")
    assert rate_with_cards(catalogue, shipment) == rating  # deterministic


def test_urban_fleets_do_not_leave_their_city(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    shipment = shipment_factory(
        dest_postal="80331", service_level="same_day", requested_at=MONDAY_10_BERLIN
    )
    result = asyncio.run(Quoter(catalogue, TransitHistory()).quote(shipment, NOW))
    assert isinstance(result, RatingFailed)
    assert result.reasons[0].code == "no_eligible_carrier"
    reasons = _reasons(result)
    assert ("velo", None, "lane_not_served") in reasons  # Berlin origin, Munich destination
    assert ("gigly", None, "lane_not_served") in reasons
    assert ("nordpost", "parcel", "service_level_mismatch") in reasons


def test_heavy_and_cold_parcels(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    shipment = shipment_factory(
        service_level="standard",
        parcels=[
            Parcel(parcel_id="P1", weight_g=12_000, length_mm=500, width_mm=400, height_mm=300)
        ],
        requirements=Requirements(cold_chain=True),
        requested_at=MONDAY_10_BERLIN,
    )
    rating = rate_with_cards(catalogue, shipment)
    assert {(q.carrier, q.service) for q in rating.quotes} == {
        ("swift", "express"),
        ("swift", "economy"),
    }
    reasons = {(i.carrier, i.service, r.code) for i in rating.ineligible for r in i.reasons}
    assert ("nordpost", None, "cold_chain_not_offered") in reasons
    assert ("velo", None, "cold_chain_not_offered") in reasons
    cold = next(q for q in rating.quotes if q.service == "economy")
    assert "cold_chain" in [s.code for s in cold.price.surcharges]
    assert "cold_chain" in cold.capabilities


def test_a_customer_return_is_collected_by_postal_prefix(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    customer = Origin(
        location_id="customer", kind="customer", postal_code="50667", city="Köln", country="DE",
        time_zone="Europe/Berlin", cutoff_local="23:59",
    )  # fmt: skip
    shipment = shipment_factory(
        origin=customer,
        dest_postal="04129",
        service_level="standard",
        requested_at=MONDAY_10_BERLIN,
        is_return=True,
    )
    hubs = {(q.carrier, q.hub_id) for q in rate_with_cards(catalogue, shipment).quotes}
    assert ("nordpost", "NP-DE-RETAIL") in hubs
    assert ("swift", "SW-DE-PICKUP") in hubs


def _with_api(catalogue: Catalogue, code: str, **api: object) -> Catalogue:
    carriers = tuple(
        dataclasses.replace(c, quote_api=QuoteApi(url="http://carrier.test/quote", **api))  # type: ignore[arg-type]
        if c.code == code
        else c
        for c in catalogue.carriers
    )
    return Catalogue(carriers)


def test_prices_from_a_carrier_api(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        prices = [
            {
                "service": s["service"],
                "currency": "EUR",
                "base": 1000,
                "tax": 190,
                "surcharges": [{"code": "fuel", "amount": 50}],
            }
            for s in body["services"]
        ]
        return httpx.Response(200, json={"prices": prices})

    cat = _with_api(catalogue, "swift")
    swift = cat.carrier("swift")
    assert swift is not None
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    quoter = Quoter(cat, TransitHistory(), {"swift": HttpQuoteAdapter(swift, client)})
    shipment = shipment_factory(service_level="two_day", requested_at=MONDAY_10_BERLIN)
    result = asyncio.run(quoter.quote(shipment, NOW))
    assert isinstance(result, RatesQuoted)
    swift_quotes = {q.service: q for q in result.quotes if q.carrier == "swift"}
    assert set(swift_quotes) == {"express", "economy"}
    assert swift_quotes["economy"].price.total.amount == 1240  # 1000 + 50 + 190
    assert swift_quotes["economy"].billable_weight_g == 1200  # weights are still ours
    assert seen[0]["services"] == [
        {"service": "express", "zone": "Z1"},
        {"service": "economy", "zone": "Z1"},
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timeouts_and_the_circuit(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    calls = 0

    def timeout(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("too slow", request=request)

    cat = _with_api(catalogue, "swift", attempts=2, failure_threshold=2, open_for_s=60.0)
    swift = cat.carrier("swift")
    assert swift is not None
    clock = Clock()
    adapter = HttpQuoteAdapter(
        swift,
        httpx.AsyncClient(transport=httpx.MockTransport(timeout)),
        CircuitBreaker(2, 60.0, clock),
        clock,
    )
    quoter = Quoter(cat, TransitHistory(), {"swift": adapter})
    shipment = shipment_factory(service_level="next_day", requested_at=MONDAY_10_BERLIN)

    first = asyncio.run(quoter.quote(shipment, NOW))
    assert isinstance(first, RatesQuoted)  # the others still quote
    assert ("swift", None, "carrier_timeout") in _reasons(first)
    assert "swift" not in {q.carrier for q in first.quotes}
    assert calls == 2  # one retry within the budget

    asyncio.run(quoter.quote(shipment, NOW))  # second failure opens the circuit
    assert adapter.breaker.state == "open"
    third = asyncio.run(quoter.quote(shipment, NOW))
    assert ("swift", None, "circuit_open") in _reasons(third)
    assert calls == 4  # not asked while open
    clock.now += 60
    asyncio.run(
        quoter.quote(shipment, NOW)
    )  # half-open: one probe (with its retry), fails, reopens
    assert calls == 6
    assert adapter.breaker.state == "open"


def test_server_errors_and_bad_answers(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(
                200,
                json={
                    "prices": [{"service": "express", "currency": "EUR", "base": 10.5, "tax": 0}]
                },
            ),
            httpx.Response(400, json={"error": "no"}),
            httpx.Response(200, json={"prices": [{**USD_PRICE}]}),
        ]
    )
    cat = _with_api(catalogue, "swift", attempts=1, failure_threshold=5)
    swift = cat.carrier("swift")
    assert swift is not None
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers)))
    quoter = Quoter(cat, TransitHistory(), {"swift": HttpQuoteAdapter(swift, client)})
    shipment = shipment_factory(service_level="next_day", requested_at=MONDAY_10_BERLIN)
    codes = [
        {
            r.code
            for i in asyncio.run(quoter.quote(shipment, NOW)).ineligible
            if (i.carrier, i.service) == ("swift", None)
            for r in i.reasons
        }
        for _ in range(4)
    ]
    assert codes == [
        {"carrier_unavailable"},
        {"carrier_invalid_response"},  # 10.5 is not an integer amount
        {"carrier_refused"},
        {"carrier_invalid_response"},  # USD from a EUR carrier
    ]
