"""The committed OpenAPI document is the one the service serves (regenerate with --write)."""

from __future__ import annotations

import json

import msgspec
from handoff_events.contracts import OrderPlaced
from handoff_events.envelope import decode_data
from handoff_order_intake.domain.validation import Accepted, validate_order
from handoff_order_intake.openapi import COMMITTED, ORDER_EXAMPLE, openapi_document, render

from services.order_intake.tests.unit.orders import NOW, catalogue


def test_the_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "services/order_intake/openapi.json is stale: run "
        "`.venv/bin/python -m handoff_order_intake.openapi --write`"
    )


def test_the_document_is_openapi_3_1_with_both_operations_and_contract_schemas() -> None:
    doc = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/v1/orders", "/v1/orders/{order_id}/cancel"}
    schemas = openapi_document()["components"]["schemas"]
    assert {"OrderPlaced", "Address", "Parcel", "CancelRequest", "ProblemDocument"} <= set(schemas)
    assert "asynchronously" in doc["info"]["description"] or "decided" in doc["info"]["description"]


def test_the_documented_example_order_is_accepted() -> None:
    order = decode_data(OrderPlaced, msgspec.json.encode(ORDER_EXAMPLE))
    verdict = validate_order(order, tenant_id="acme", catalogue=catalogue(), requested_at=NOW)
    assert isinstance(verdict, Accepted), verdict
