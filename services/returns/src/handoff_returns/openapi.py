"""How marketplaces request returns over HTTP: the returns edge's `HttpApi` (OpenAPI 3.1).

The 202 body is `ReturnAccepted`; the decision itself only ever arrives as
shipment updates, which is why the document has no "return status" route.
"""

from __future__ import annotations

from handoff_events.contracts import ReturnRequested
from handoff_events.runtime.openapi import (
    JSON_BODY_ERRORS,
    HttpApi,
    JsonReply,
    Operation,
    ProblemReply,
)

from handoff_returns.entrypoints.http import ReturnAccepted

API = HttpApi(
    title="Handoff returns",
    description=(
        "Return requests for delivered shipments. A 202 means the request is durably queued "
        "on `handoff.marketplace.returns.v1`; the decision (return authorised or refused, then "
        "received and refund eligible) arrives as shipment updates on "
        "`handoff.shipments.updates.v1`."
    ),
    module="handoff_returns.openapi",
    operations=[
        Operation(
            path="/v1/returns",
            method="post",
            operation_id="requestReturn",
            summary="Request a return for (part of) a delivered order",
            request=ReturnRequested,
            responses={
                202: JsonReply(
                    description="Accepted: durably queued for a decision", body=ReturnAccepted
                ),
                422: ProblemReply(
                    description="The body does not match the schema or the request's shape "
                    "rules; `field` names the first problem, `errors` lists them all"
                ),
                **JSON_BODY_ERRORS,
            },
        )
    ],
)
openapi_document = API.document

if __name__ == "__main__":
    raise SystemExit(API.main())
