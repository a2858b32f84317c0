"""Properties of the validator: no input crashes it, and what it accepts is normalised."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from handoff_events.contracts import OrderCancelled, OrderLine, OrderPlaced, ShipFrom
from handoff_events.envelope import DecodeError, decode_data
from handoff_events.values import (
    Address,
    DeliveryWindow,
    Money,
    Parcel,
    Preferences,
    Requirements,
)
from handoff_order_intake.domain.ledger import decide_order_cancellation, decide_placement
from handoff_order_intake.domain.validation import (
    Accepted,
    Invalid,
    is_country,
    normalise_postal_code,
    validate_order,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.order_intake.tests.unit.orders import NOW, catalogue, order_doc

CATALOGUE = catalogue()
CANCEL = OrderCancelled(order_id="A-1001", cancelled_at=NOW)
LOCATION_IDS = [*CATALOGUE, "WH-NOWHERE", "", " WH-BER-1"]

messy_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "10119", "1234 ab", "sw1a1aa", "+4930123456", "ada@example.com"]),
    st.text(alphabet="0123456789 +-()ABab", max_size=20),
)
maybe_text = st.none() | messy_text
countries = st.sampled_from(["DE", "NL", "FR", "GB", "US", "AT", "XX", "de", "", "D"]) | st.text(
    max_size=3
)
currencies = st.sampled_from(["EUR", "GBP", "USD", "XXX", "EUX", "eur", ""])
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.one_of(
    st.datetimes(timezones=st.none() | offsets),  # naive ones included: messy on purpose
    st.datetimes(
        min_value=datetime(2026, 11, 19), max_value=datetime(2026, 11, 23), timezones=offsets
    ),
)
small_ints = st.integers(-10, 40_000) | st.sampled_from([0, 1, 1750, 1751, 31_500, 31_501])

parcels = st.builds(
    Parcel,
    parcel_id=messy_text,
    weight_g=small_ints,
    length_mm=small_ints,
    width_mm=small_ints,
    height_mm=small_ints,
    declared_value=st.none()
    | st.builds(Money, amount=st.integers(-5, 10**12), currency=currencies),
    origin_location_id=st.none() | st.sampled_from(LOCATION_IDS),
)
lines = st.builds(
    OrderLine,
    sku=messy_text,
    quantity=st.integers(-2, 20_000),
    origin_location_id=st.none() | st.sampled_from(LOCATION_IDS),
)
addresses = st.builds(
    Address,
    name=messy_text,
    line1=messy_text,
    line2=maybe_text,
    city=messy_text,
    postal_code=messy_text,
    country=countries,
    email=maybe_text,
    phone=maybe_text,
    instructions=maybe_text,
)
orders = st.builds(
    OrderPlaced,
    order_id=st.sampled_from(["A-1001", "", "bad id", "x" * 80]) | messy_text,
    placed_at=moments,
    service_level=st.sampled_from(["next_day", "same_day", "teleport"]),
    ship_from=st.builds(ShipFrom, location_id=st.sampled_from(LOCATION_IDS) | messy_text),
    ship_to=addresses,
    lines=st.lists(lines, max_size=4),
    parcels=st.lists(parcels, max_size=4),
    promised_by=st.none() | moments,
    delivery_window=st.none() | st.builds(DeliveryWindow, start=moments, end=moments),
    requirements=st.builds(
        Requirements,
        signature=st.booleans(),
        min_age=st.integers(-1, 120),
        cold_chain=st.booleans(),
    ),
    preferences=st.builds(
        Preferences,
        channels=st.lists(st.sampled_from(["email", "sms", "webhook", "pigeon"]), max_size=3),
        locale=messy_text,
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders)
def test_no_order_value_crashes_the_validator(order: OrderPlaced) -> None:
    verdict = validate_order(order, tenant_id="acme", catalogue=CATALOGUE, requested_at=NOW)
    if isinstance(verdict, Invalid):
        assert verdict.reasons
        assert all(r.field and r.field.startswith("$") and r.code for r in verdict.reasons)
        return
    assert isinstance(verdict, Accepted)
    assert verdict.shipments
    for shipment in verdict.shipments:
        destination = shipment.destination
        assert is_country(destination.country)
        # Accepted output is already normal: normalising it again changes nothing.
        assert normalise_postal_code(destination.country, destination.postal_code) == (
            destination.postal_code
        )
        assert destination.phone is None or destination.phone.startswith("+")
        assert shipment.origin.location_id in CATALOGUE
        assert all(1 <= p.weight_g <= 31_500 for p in shipment.parcels)
    parcel_ids = [p.parcel_id for s in verdict.shipments for p in s.parcels]
    assert len(parcel_ids) == len(order.parcels)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
FIELDS = [*order_doc().keys(), "ship_to.postal_code", "ship_to.phone", "parcels", "lines"]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIELDS), json_values, st.booleans())
def test_no_json_body_crashes_decoding_plus_validation(field: str, value: Any, drop: bool) -> None:
    """What the HTTP edge and the stream do: decode, then validate. Only DecodeError escapes."""
    doc = order_doc()
    node: dict[str, Any] = doc
    *parents, last = field.split(".")
    for part in parents:
        node = node[part]
    if drop:
        node.pop(last, None)
    else:
        node[last] = value
    try:
        decoded = decode_data(OrderPlaced, msgspec.json.encode(doc))
    except DecodeError as err:
        assert err.field and err.field.startswith("$")
        return
    verdict = validate_order(decoded, tenant_id="acme", catalogue=CATALOGUE, requested_at=NOW)
    assert isinstance(verdict, Accepted | Invalid)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["DE", "FR", "NL", "GB", "US", "AT"]), messy_text)
def test_postal_code_normalisation_is_idempotent(country: str, raw: str) -> None:
    once = normalise_postal_code(country, raw)
    if once is not None:
        assert normalise_postal_code(country, once) == once


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders, st.booleans())
def test_any_order_placed_twice_is_decided_once(order: OrderPlaced, cancelled_first: bool) -> None:
    """The ledger never raises either, and a repeat of the same content changes nothing."""
    record = decide_order_cancellation(None, CANCEL).record if cancelled_first else None
    first = decide_placement(record, order, tenant_id="acme", catalogue=CATALOGUE, now=NOW)
    assert first.kind in ("accepted", "rejected")
    assert bool(first.requested) != (first.rejected is not None)
    again = decide_placement(first.record, order, tenant_id="acme", catalogue=CATALOGUE, now=NOW)
    assert again.kind == "duplicate" and again.record is None
