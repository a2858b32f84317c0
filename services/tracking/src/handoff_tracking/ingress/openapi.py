"""The OpenAPI 3.1 fragment of the carrier webhook, to merge into the tracking service's document.

`INGRESS_OPENAPI_PATHS` goes under `paths`, `INGRESS_OPENAPI_COMPONENTS` under
`components` (it holds `schemas` and `securitySchemes`). The event schema is
generated from the contract type, so it cannot drift from what the route decodes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from handoff_events.contracts import CarrierTrackingEvent

from handoff_tracking.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from handoff_tracking.ingress.webhook import PATH

_REF = "#/components/schemas/{name}"
_schemas, _event_components = msgspec.json.schema_components(
    [CarrierTrackingEvent], ref_template=_REF
)


def _problem(description: str, reasons: list[str]) -> dict[str, Any]:
    return {
        "description": f"{description} (reason: {', '.join(reasons)})",
        "content": {"application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}},
    }


INGRESS_OPENAPI_COMPONENTS: dict[str, Any] = {
    "schemas": {
        **_event_components,
        "CarrierTrackingEventBatch": {
            "oneOf": [
                {
                    "type": "array",
                    "items": {"$ref": _REF.format(name="CarrierTrackingEvent")},
                    "minItems": 1,
                    "maxItems": 500,
                },
                {"$ref": _REF.format(name="CarrierTrackingEvent")},
            ]
        },
        "CarrierEventsAccepted": {
            "type": "object",
            "required": ["accepted", "ids"],
            "properties": {
                "accepted": {"type": "integer", "description": "events stored"},
                "ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "CloudEvents ids, derived from (carrier, event_id)",
                },
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem document",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "reason": {"type": "string", "description": "stable machine-readable code"},
                "field": {"type": "string", "description": "JSON path or header at fault"},
                "value": {"description": "the offending value (truncated)"},
            },
        },
    },
    "securitySchemes": {
        "carrierSignature": {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": (
                f"`v1=<hex HMAC-SHA256 of '<{TIMESTAMP_HEADER}>.<raw body>'>` with the carrier's "
                "secret; several comma-separated signatures are accepted during a secret rotation. "
                f"`{TIMESTAMP_HEADER}` (unix seconds) is checked against a 5-minute window; "
                "see docs/integrating-carriers.md."
            ),
        }
    },
}

INGRESS_OPENAPI_PATHS: dict[str, Any] = {
    PATH: {
        "post": {
            "operationId": "postCarrierEvents",
            "summary": "Post tracking events in the carrier's own vocabulary",
            "description": (
                "One event or a batch (array, at most 500 events, 1 MiB). Every event's `carrier` "
                "must be the path's carrier and its tracking number the carrier's own. Answered "
                "202 only once Kafka has stored every event; re-posting the same events is "
                "harmless (ids derive from carrier and event_id)."
            ),
            "tags": ["carriers"],
            "security": [{"carrierSignature": []}],
            "parameters": [
                {
                    "name": "carrier",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$"},
                },
                {
                    "name": TIMESTAMP_HEADER,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                    "description": "unix seconds when the request was signed",
                },
                {
                    "name": SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "example": "v1=5257a869e7ecebeda32affa62cdca3fa"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": _REF.format(name="CarrierTrackingEventBatch")}
                    }
                },
            },
            "responses": {
                "202": {
                    "description": "stored in Kafka",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(name="CarrierEventsAccepted")}
                        }
                    },
                },
                "400": _problem("not JSON", ["invalid_json"]),
                "401": _problem(
                    "signature or timestamp refused",
                    [
                        "missing_timestamp",
                        "invalid_timestamp",
                        "missing_signature",
                        "bad_signature",
                        "stale_timestamp",
                    ],
                ),
                "403": _problem(
                    "an event that is not this carrier's",
                    ["carrier_mismatch", "foreign_tracking_number"],
                ),
                "404": _problem("no such carrier", ["unknown_carrier"]),
                "413": _problem("body or batch too large", ["too_large", "too_many_events"]),
                "422": _problem(
                    "an invalid event; `field` names it, e.g. `$[3].occurred_at`",
                    ["schema_violation", "empty_batch", "invalid_tracking_number"],
                ),
                "503": _problem("Kafka unavailable; retry", ["unavailable", "ownership_loading"]),
            },
        }
    }
}
