"""The returns HTTP edge: `POST /v1/returns` (its OpenAPI document is in `openapi.py`).

The route only authenticates, checks the request's shape (the same rules the
topic consumer applies) and publishes the request to
`handoff.marketplace.returns.v1` with acks=all. It answers 202 once Kafka has
the record; the decision is made by the stream stage, exactly as for requests
that marketplaces produce to the topic themselves: one decision code path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec
from handoff_events import topics
from handoff_events.contracts import ReturnRequested
from handoff_events.envelope import new_envelope, rfc3339
from handoff_events.ids import event_id
from handoff_events.runtime.http import (
    Problem,
    TenantAuth,
    decode_body,
    json_response,
    publish_or_503,
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
        await publish_or_503(
            publisher(request), topics.RETURN_REQUESTS, order_key(tenant, data.order_id), envelope
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
