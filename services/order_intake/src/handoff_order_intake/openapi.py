"""Order intake's OpenAPI 3.1 document, built from the msgspec contract types.

Served at `/openapi.json` and committed as `services/order_intake/openapi.json`;
`python -m handoff_order_intake.openapi --write` refreshes the committed file and a
unit test fails when it is stale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import msgspec
from handoff_events.contracts import OrderPlaced

from handoff_order_intake.entrypoints.http import (
    CancellationAccepted,
    CancelRequest,
    OrderAccepted,
)

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
PROBLEM = "application/problem+json"


class ProblemDocument(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details; `reason` uses the same codes as the DLQ, `field` is a JSON path."""

    type: str
    title: str
    status: int
    detail: str | None = None
    reason: str | None = None
    field: str | None = None
    value: str | int | float | bool | None = None


DESCRIPTION = """\
Marketplaces place and cancel orders over HTTP; the same events may instead be
produced to the Kafka topic `handoff.marketplace.orders.v1` (key
`<tenant>/<order_id>`, tenant in the `ce_tenantid` header). Both paths reach the
same decision: the HTTP edge only checks the body's shape and publishes.

**Asynchronous decisions.** `202 Accepted` means Kafka durably holds the
request (acks=all). Validation, splitting into one shipment per origin
location, rejection with machine-readable reasons, and cancellation are decided
by the stream processor and reported as shipment events on
`handoff.shipments.updates.v1`. A repeated request carries the same event id
and changes nothing; the same order id with different content is rejected with
reason `conflict`.

**Cancellation** is always accepted (`202`) for any order id of the caller's
tenant, known or not, and decided per shipment against its latest status:
before allocation it is cancelled, after allocation it is cancelled and the
carrier capacity released, after pickup it is refused. A cancellation can
never reach another tenant's order: orders are scoped by the API key's tenant.

**Authentication**: a per-tenant API key, as `Authorization: Bearer <key>` or
`X-Api-Key: <key>`.
"""


ORDER_EXAMPLE: dict[str, Any] = {
    "order_id": "A-1001",
    "placed_at": "2026-11-20T10:00:00Z",
    "service_level": "next_day",
    "promised_by": "2026-11-21T20:00:00+01:00",
    "delivery_window": {"start": "2026-11-21T17:00:00+01:00", "end": "2026-11-21T20:00:00+01:00"},
    "ship_from": {"location_id": "WH-BER-1"},
    "ship_to": {
        "name": "Ada Muster",
        "line1": "Torstr. 1",
        "city": "Berlin",
        "postal_code": "10119",
        "country": "DE",
        "email": "ada@example.com",
        "phone": "+4930123456",
        "instructions": "2nd floor",
    },
    "lines": [{"sku": "SKU-1", "quantity": 1, "origin_location_id": "WH-BER-1"}],
    "parcels": [
        {
            "parcel_id": "P1",
            "weight_g": 1200,
            "length_mm": 300,
            "width_mm": 200,
            "height_mm": 100,
            "declared_value": {"amount": 4999, "currency": "EUR"},
        }
    ],
    "requirements": {"signature": False, "min_age": 0, "cold_chain": False},
    "preferences": {"channels": ["email", "sms"], "locale": "de-DE"},
}
CANCEL_EXAMPLE: dict[str, Any] = {"reason": "customer changed their mind"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}},
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def openapi_document() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [OrderPlaced, CancelRequest, OrderAccepted, CancellationAccepted, ProblemDocument],
        ref_template="#/components/schemas/{name}",
    )
    common_errors = {
        "401": _problem("No valid tenant API key"),
        "413": _problem("Body larger than 1 MB"),
        "503": _problem("Kafka did not acknowledge the record; retrying is safe"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Handoff order intake",
            "version": "1.0.0",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"bearerAuth": []}, {"apiKey": []}],
        "paths": {
            "/v1/orders": {
                "post": {
                    "operationId": "placeOrder",
                    "summary": "Place an order",
                    "description": "Publishes `handoff.order.placed.v1`; 202 once Kafka has it.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/OrderPlaced"},
                                "example": ORDER_EXAMPLE,
                            }
                        },
                    },
                    "responses": {
                        "202": _json("OrderAccepted", "Kafka holds the order"),
                        "400": _problem("The body is not JSON"),
                        "422": _problem("The body does not match the schema; `field` names it"),
                        **common_errors,
                    },
                }
            },
            "/v1/orders/{order_id}/cancel": {
                "post": {
                    "operationId": "cancelOrder",
                    "summary": "Cancel an order (or some of its origins)",
                    "description": "Publishes `handoff.order.cancelled.v1`, decided later.",
                    "parameters": [
                        {
                            "name": "order_id",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CancelRequest"},
                                "example": CANCEL_EXAMPLE,
                            }
                        },
                    },
                    "responses": {
                        "202": _json("CancellationAccepted", "Kafka holds the cancellation"),
                        "400": _problem("The body is not JSON"),
                        "422": _problem("Bad order id or body; `field` names it"),
                        **common_errors,
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
    }


def render() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print or write order intake's OpenAPI document.")
    parser.add_argument("--write", action="store_true", help=f"write {COMMITTED}")
    args = parser.parse_args(argv)
    if args.write:
        COMMITTED.write_text(render(), encoding="utf-8")
    else:
        print(render(), end="")


if __name__ == "__main__":
    main()
