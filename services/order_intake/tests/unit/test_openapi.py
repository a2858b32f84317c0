"""The committed OpenAPI document is the one the service serves (regenerate with --write)."""

from __future__ import annotations

import json

import msgspec
from handoff_events.contracts import OrderPlaced
from handoff_events.envelope import decode_data
from handoff_events.examples import example
from handoff_order_intake.domain.validation import Accepted, validate_order
from handoff_order_intake.entrypoints.http import CancelRequest
from handoff_order_intake.openapi import API, CANCEL_EXAMPLE, openapi_document

from services.order_intake.tests.unit.orders import NOW, catalogue, order_doc


def test_the_committed_openapi_document_is_current() -> None:
    API.check_committed()


def test_the_document_is_openapi_3_1_with_both_operations_and_contract_schemas() -> None:
    doc = json.loads(API.committed.read_text(encoding="utf-8"))
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/v1/orders", "/v1/orders/{order_id}/cancel"}
    schemas = openapi_document()["components"]["schemas"]
    assert {"OrderPlaced", "Address", "Parcel", "CancelRequest", "Problem"} <= set(schemas)
    assert "asynchronously" in doc["info"]["description"] or "decided" in doc["info"]["description"]
    cancel = doc["paths"]["/v1/orders/{order_id}/cancel"]["post"]
    assert cancel["parameters"][0]["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    assert cancel["requestBody"]["required"] is False


def test_the_documented_example_order_is_accepted() -> None:
    documented = openapi_document()["paths"]["/v1/orders"]["post"]["requestBody"]["content"]
    body = msgspec.json.encode(documented["application/json"]["example"])
    order = decode_data(OrderPlaced, body)
    assert order == example(OrderPlaced.ce_type)
    verdict = validate_order(order, tenant_id="acme", catalogue=catalogue(), requested_at=NOW)
    assert isinstance(verdict, Accepted), verdict


def test_the_example_is_the_order_the_tests_place() -> None:
    assert msgspec.convert(order_doc(), OrderPlaced) == example(OrderPlaced.ce_type)
    assert decode_data(CancelRequest, msgspec.json.encode(CANCEL_EXAMPLE)) == CANCEL_EXAMPLE
