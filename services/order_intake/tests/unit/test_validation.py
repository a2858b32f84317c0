"""Validation and normalisation over a table of good and bad orders (pure, no broker)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from handoff_events.ids import shipment_id
from handoff_order_intake.domain.validation import (
    Accepted,
    Invalid,
    normalise_phone,
    normalise_postal_code,
    validate_order,
)

from services.order_intake.tests.unit.orders import NOW, catalogue, order, order_doc, with_path

CATALOGUE = catalogue()


def verdict(doc: dict[str, Any]) -> Accepted | Invalid:
    from handoff_events.contracts import OrderPlaced

    return validate_order(
        msgspec.convert(doc, OrderPlaced), tenant_id="acme", catalogue=CATALOGUE, requested_at=NOW
    )


def accepted(doc: dict[str, Any]) -> Accepted:
    result = verdict(doc)
    assert isinstance(result, Accepted), result
    return result


def reasons(doc: dict[str, Any]) -> set[tuple[str, str | None]]:
    result = verdict(doc)
    assert isinstance(result, Invalid), result
    return {(r.code, r.field) for r in result.reasons}


def test_the_example_order_becomes_one_normalised_shipment() -> None:
    result = accepted(order_doc())
    (shipment,) = result.shipments
    assert shipment.shipment_id == shipment_id("acme", "A-1001", "WH-BER-1")
    assert shipment.origin.location_id == "WH-BER-1"
    assert shipment.origin.time_zone == "Europe/Berlin"
    assert shipment.origin.cutoff_local == "18:00"
    assert shipment.destination.phone == "+4930123456"
    assert shipment.skus == ["SKU-1"]
    assert shipment.parcels[0].origin_location_id == "WH-BER-1"
    assert shipment.requested_at == NOW


@pytest.mark.parametrize(
    ("country", "raw", "normalised"),
    [
        ("NL", "1234 ab", "1234 AB"),
        ("NL", "1012AB", "1012 AB"),
        ("GB", "sw1a1aa", "SW1A 1AA"),
        ("GB", "  ec1a 1bb ", "EC1A 1BB"),
        ("GB", "M1 1AE", "M1 1AE"),
        ("DE", " 10119 ", "10119"),
        ("FR", "75001", "75001"),
        ("US", "10001", "10001"),
        ("US", "123456789", "12345-6789"),
        ("US", "12345-6789", "12345-6789"),
        ("AT", "1010", "1010"),
    ],
)
def test_postal_codes_are_normalised(country: str, raw: str, normalised: str) -> None:
    assert normalise_postal_code(country, raw) == normalised


@pytest.mark.parametrize(
    ("country", "raw"),
    [
        ("DE", "1011"),
        ("DE", "101199"),
        ("DE", "١٠١١٩"),  # Arabic-Indic digits are digits to Python, not to Deutsche Post
        ("FR", "7500A"),
        ("NL", "0123 AB"),
        ("NL", "1234 SS"),
        ("NL", "12345"),
        ("GB", "SW1A"),
        ("GB", "1AA SW1"),
        ("US", "1234"),
        ("US", "12345-67"),
        ("AT", "!!"),
    ],
)
def test_bad_postal_codes_are_refused(country: str, raw: str) -> None:
    assert normalise_postal_code(country, raw) is None


def test_an_order_to_nl_gets_its_postal_code_and_phone_normalised() -> None:
    doc = order_doc()
    doc["ship_to"] |= {"country": "NL", "postal_code": "1017 ab", "phone": "020 123 4567"}
    (shipment,) = accepted(doc).shipments
    assert shipment.destination.postal_code == "1017 AB"
    assert shipment.destination.phone == "+31201234567"


def test_national_phone_numbers_use_the_destination_country() -> None:
    assert normalise_phone("030 123456", "DE") == "+4930123456"
    assert normalise_phone("07911 123456", "GB") == "+447911123456"
    assert normalise_phone("12", "DE") is None
    assert normalise_phone("not a phone", "DE") is None


def test_email_is_normalised() -> None:
    doc = with_path(order_doc(), "ship_to.email", "Ada@EXAMPLE.com")
    (shipment,) = accepted(doc).shipments
    assert shipment.destination.email == "Ada@example.com"


def test_text_is_trimmed_and_optional_contacts_may_be_absent() -> None:
    doc = order_doc()
    doc["ship_to"] |= {"name": "  Ada   Muster ", "email": None, "phone": None}
    (shipment,) = accepted(doc).shipments
    assert shipment.destination.name == "Ada Muster"
    assert shipment.destination.email is None


def test_an_order_from_two_origins_splits_into_two_shipments() -> None:
    doc = order_doc(
        ship_from={"location_id": "WH-BER-1"},
        lines=[
            {"sku": "SKU-1", "quantity": 1},
            {"sku": "SKU-2", "quantity": 2, "origin_location_id": "WH-MUC-1"},
            {"sku": "SKU-3", "quantity": 1, "origin_location_id": "WH-MUC-1"},
        ],
        parcels=[
            {
                "parcel_id": "P1",
                "weight_g": 500,
                "length_mm": 100,
                "width_mm": 100,
                "height_mm": 50,
            },
            {
                "parcel_id": "P2",
                "weight_g": 900,
                "length_mm": 100,
                "width_mm": 100,
                "height_mm": 50,
                "origin_location_id": "WH-MUC-1",
            },
        ],
    )
    berlin, munich = accepted(doc).shipments
    assert (berlin.origin.location_id, munich.origin.location_id) == ("WH-BER-1", "WH-MUC-1")
    assert berlin.shipment_id == shipment_id("acme", "A-1001", "WH-BER-1")
    assert munich.shipment_id == shipment_id("acme", "A-1001", "WH-MUC-1")
    assert [p.parcel_id for p in berlin.parcels] == ["P1"]
    assert [p.parcel_id for p in munich.parcels] == ["P2"]
    assert berlin.skus == ["SKU-1"]
    assert munich.skus == ["SKU-2", "SKU-3"]


def _bad(path: str, value: Any) -> dict[str, Any]:
    return with_path(order_doc(), path, value)


@pytest.mark.parametrize(
    ("doc", "code", "field"),
    [
        (_bad("ship_to.country", "XX"), "invalid_country", "$.ship_to.country"),
        (_bad("ship_to.postal_code", "1011"), "invalid_postal_code", "$.ship_to.postal_code"),
        (_bad("ship_to.postal_code", "   "), "required", "$.ship_to.postal_code"),
        (_bad("ship_to.name", " "), "required", "$.ship_to.name"),
        (_bad("ship_to.phone", "+49 12"), "invalid_phone", "$.ship_to.phone"),
        (_bad("ship_to.email", "ada@"), "invalid_email", "$.ship_to.email"),
        (_bad("ship_to.email", "ada example.com"), "invalid_email", "$.ship_to.email"),
        (_bad("parcels.0.weight_g", 0), "weight_out_of_range", "$.parcels[0].weight_g"),
        (_bad("parcels.0.weight_g", 31_501), "weight_out_of_range", "$.parcels[0].weight_g"),
        (_bad("parcels.0.length_mm", 1751), "dimension_out_of_range", "$.parcels[0].length_mm"),
        (_bad("parcels.0.height_mm", 0), "dimension_out_of_range", "$.parcels[0].height_mm"),
        (
            _bad("parcels.0.declared_value.currency", "EUX"),
            "invalid_currency",
            "$.parcels[0].declared_value.currency",
        ),
        (
            _bad("parcels.0.declared_value.amount", -1),
            "invalid_amount",
            "$.parcels[0].declared_value.amount",
        ),
        (_bad("parcels", []), "required", "$.parcels"),
        (_bad("lines", []), "required", "$.lines"),
        (_bad("lines.0.sku", "  "), "required", "$.lines[0].sku"),
        (
            _bad("ship_from.location_id", "WH-NOWHERE"),
            "unknown_location",
            "$.ship_from.location_id",
        ),
        (
            _bad("lines.0.origin_location_id", "WH-NOWHERE"),
            "unknown_location",
            "$.lines[0].origin_location_id",
        ),
        (
            _bad("lines.0.origin_location_id", "RC-DE-1"),
            "origin_not_shippable",
            "$.lines[0].origin_location_id",
        ),
        (
            _bad("lines.0.origin_location_id", "WH-MUC-1"),
            "origin_without_parcels",
            "$.lines[0].origin_location_id",
        ),
        (_bad("requirements.min_age", 21), "unsupported_min_age", "$.requirements.min_age"),
        (
            _bad("requirements.cold_chain", True),
            "cold_chain_unsupported",
            "$.requirements.cold_chain",
        ),
        (_bad("promised_by", "2026-11-20T09:00:00Z"), "promise_before_placement", "$.promised_by"),
        (
            _bad("delivery_window.end", "2026-11-21T16:00:00+01:00"),
            "window_inverted",
            "$.delivery_window.end",
        ),
        (
            _bad("delivery_window.start", "2026-11-19T16:00:00+01:00"),
            "window_before_placement",
            "$.delivery_window.start",
        ),
        (
            _bad("promised_by", "2026-11-21T19:00:00+01:00"),
            "window_after_promise",
            "$.delivery_window.end",
        ),
    ],
)
def test_bad_orders_are_refused_with_a_reason_naming_the_field(
    doc: dict[str, Any], code: str, field: str
) -> None:
    assert (code, field) in reasons(doc)


def test_cold_chain_from_a_cold_chain_site_is_fine() -> None:
    doc = order_doc(ship_from={"location_id": "WH-MUC-1"})
    doc["lines"][0]["origin_location_id"] = "WH-MUC-1"
    doc["requirements"]["cold_chain"] = True
    accepted(doc)


def test_an_unknown_ship_from_is_reported_on_ship_from() -> None:
    doc = order_doc(ship_from={"location_id": "WH-NOWHERE"})
    doc["lines"][0].pop("origin_location_id")
    assert reasons(doc) == {("unknown_location", "$.ship_from.location_id")}


def test_every_reason_is_reported_at_once() -> None:
    doc = order_doc()
    doc["ship_to"] |= {"country": "XX", "email": "nope"}
    doc["parcels"][0]["weight_g"] = 0
    doc["requirements"]["min_age"] = 21
    found = reasons(doc)
    assert {code for code, _ in found} >= {
        "invalid_country",
        "invalid_email",
        "weight_out_of_range",
        "unsupported_min_age",
    }


def test_duplicate_parcel_ids_are_refused() -> None:
    doc = order_doc()
    doc["parcels"].append(dict(doc["parcels"][0]))
    assert ("duplicate_parcel_id", "$.parcels[1].parcel_id") in reasons(doc)


def test_a_valid_order_is_not_changed_by_validating_it_twice() -> None:
    first = accepted(order_doc())
    second = validate_order(order(), tenant_id="acme", catalogue=CATALOGUE, requested_at=NOW)
    assert first == second
