"""`POST /v1/quotes` described for marketplaces: rate shopping's `HttpApi` (OpenAPI 3.1).

Committed as `services/rate_shopping/openapi.json`; the request and answer examples
are the contract's own examples, so they are quotes the service really gives.
"""

from __future__ import annotations

from handoff_events.contracts import RatesQuoted, ShipmentRequested
from handoff_events.runtime.openapi import (
    JSON_BODY_ERRORS,
    HttpApi,
    JsonReply,
    Operation,
    ProblemReply,
)

API = HttpApi(
    title="Handoff rate shopping",
    description=(
        "Synchronous quotes from every eligible carrier (prices in integer minor units). "
        "The body is the `ShipmentRequested` payload order intake publishes; the answer is "
        "the `RatesQuoted` payload the stream stage would emit for it."
    ),
    module="handoff_rate_shopping.openapi",
    operations=[
        Operation(
            path="/v1/quotes",
            method="post",
            operation_id="quoteShipment",
            summary="Quote a shipment with every eligible carrier",
            request=ShipmentRequested,
            responses={
                200: JsonReply(
                    description="Quotes, cheapest first; carriers that cannot quote",
                    body=RatesQuoted,
                ),
                422: ProblemReply(
                    description="Invalid body (`field` names it), or no eligible carrier "
                    "(`errors` lists every carrier and its reasons)",
                    reasons=("no_eligible_carrier",),
                ),
                **JSON_BODY_ERRORS,
            },
        )
    ],
)
openapi_document = API.document

if __name__ == "__main__":
    raise SystemExit(API.main())
