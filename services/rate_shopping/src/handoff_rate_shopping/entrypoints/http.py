"""`POST /v1/quotes`: a synchronous quote for marketplaces that want prices before ordering.

The body is a ShipmentRequested document (the same payload order intake
publishes); the answer is the RatesQuoted payload the stream stage would emit.
When no carrier can take the shipment the answer is a 422 problem document
(`no_eligible_carrier`) listing every carrier and its reasons. Callers
authenticate with a per-tenant API key. The OpenAPI document (`openapi.py`) is
generated from the same msgspec contract types, so it cannot drift from what
the code accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec
from handoff_events.contracts import RatingFailed, ShipmentRequested
from handoff_events.runtime.http import Problem, TenantAuth, decode_body, json_response, read_body
from handoff_events.runtime.metrics import HTTP_REQUESTS
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from handoff_rate_shopping.domain.rating import InvalidRequest
from handoff_rate_shopping.quoting import Quoter


def routes(quoter: Quoter, auth: TenantAuth, clock: Callable[[], datetime]) -> list[BaseRoute]:
    async def post_quote(request: Request) -> Response:
        auth.tenant(request)
        shipment = decode_body(ShipmentRequested, await read_body(request))
        try:
            outcome = await quoter.quote(shipment, clock())
        except InvalidRequest as bad:
            raise Problem(
                422,
                "Invalid request body",
                bad.message,
                reason=bad.code,
                field=bad.field,
                value=bad.value,
            ) from None
        if isinstance(outcome, RatingFailed):
            HTTP_REQUESTS.labels("rate_shopping", "/v1/quotes", "422").inc()
            raise Problem(
                422,
                "No carrier can take this shipment",
                "; ".join(r.message for r in outcome.reasons),
                reason="no_eligible_carrier",
                errors=[msgspec.to_builtins(i) for i in outcome.ineligible],
            )
        HTTP_REQUESTS.labels("rate_shopping", "/v1/quotes", "200").inc()
        return json_response(outcome)

    return [Route("/v1/quotes", post_quote, methods=["POST"])]
