"""The returns HTTP edge: `POST /v1/returns` and its OpenAPI document.

The route only authenticates, checks the request's shape (the same rules the
topic consumer applies) and publishes the request to
`handoff.marketplace.returns.v1` with acks=all. It answers 202 once Kafka has
the record; the decision is made by the stream stage, exactly as for requests
that marketplaces produce to the topic themselves: one decision code path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from handoff_events import topics
from handoff_events.contracts import ReturnRequested
from handoff_events.envelope import new_envelope, rfc3339
from handoff_events.ids import event_id
from handoff_events.runtime.http import (
    PROBLEM,
    Problem,
    TenantAuth,
    decode_body,
    json_response,
    read_body,
)
from handoff_events.runtime.metrics import HTTP_REQUESTS
from handoff_events.runtime.publisher import EventPublisher
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handoff_returns.domain.requests import rma_id, shape_problems
from handoff_returns.handlers import SOURCE, order_key

SERVICE = "returns"


class ReturnAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """202 body: the request is durably queued; the decision follows as shipment updates."""

    status: str
    return_request_id: str
    order_id: str
    event_id: str
    rma_id_if_authorised: str
    accepted_at: str


def request_event_id(tenant_id: str, return_request_id: str) -> str:
    """Same tenant and request id, same event id: a retried POST is a recognisable duplicate."""
    return event_id("return-request-http", tenant_id, return_request_id)


def routes(
    auth: TenantAuth,
    publisher: Callable[[Request], EventPublisher],
    clock: Callable[[], datetime],
) -> list[Route]:
    async def post_return(request: Request) -> Response:
        try:
            response = await _post_return(request)
        except Problem as problem:
            HTTP_REQUESTS.labels(SERVICE, "/v1/returns", str(problem.status)).inc()
            raise
        HTTP_REQUESTS.labels(SERVICE, "/v1/returns", str(response.status_code)).inc()
        return response

    async def _post_return(request: Request) -> Response:
        tenant = auth.tenant(request)
        body = await read_body(request)
        data = decode_body(ReturnRequested, body)
        problems = shape_problems(data)
        if problems:
            first = problems[0]
            raise Problem(
                422,
                "Invalid request body",
                first.message,
                reason=first.code,
                field=first.field,
                value=first.value,
                errors=[msgspec.to_builtins(p) for p in problems],
            )
        now = clock()
        envelope = new_envelope(
            data,
            source=SOURCE,
            tenant_id=tenant,
            id=request_event_id(tenant, data.return_request_id),
            time=now,
        )
        await publisher(request).publish(
            topics.RETURN_REQUESTS, order_key(tenant, data.order_id), envelope
        )
        accepted = ReturnAccepted(
            status="accepted",
            return_request_id=data.return_request_id,
            order_id=data.order_id,
            event_id=envelope.id,
            rma_id_if_authorised=rma_id(tenant, data.return_request_id),
            accepted_at=rfc3339(now),
        )
        return json_response(accepted, 202)

    return [Route("/v1/returns", post_return, methods=["POST"])]


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the returns edge; schemas generated from the msgspec contract types."""
    (request_schema, accepted_schema), components = msgspec.json.schema_components(
        (ReturnRequested, ReturnAccepted), ref_template="#/components/schemas/{name}"
    )
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem document; `field` is the JSON path of the bad value.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "reason": {"type": "string"},
            "field": {"type": "string"},
            "value": {},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["type", "title", "status"],
    }

    def problem(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Handoff returns",
            "version": "1.0.0",
            "description": "Return requests for delivered shipments. A 202 means the request is "
            "durably queued on `handoff.marketplace.returns.v1`; the decision (return "
            "authorised or refused, then received and refund eligible) arrives as shipment "
            "updates on `handoff.shipments.updates.v1`.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/v1/returns": {
                "post": {
                    "operationId": "requestReturn",
                    "summary": "Request a return for (part of) a delivered order",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request_schema}},
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted: durably queued for a decision",
                            "content": {"application/json": {"schema": accepted_schema}},
                        },
                        "400": problem("The body is not JSON"),
                        "401": problem("No valid tenant API key"),
                        "413": problem("The body is too large"),
                        "422": problem("The body does not match the schema; `field` names it"),
                    },
                }
            }
        },
    }
