"""Order intake's HTTP API (place and cancel orders) as an OpenAPI 3.1 `HttpApi`.

`python -m handoff_order_intake.openapi --write` refreshes `services/order_intake/openapi.json`.
"""

from __future__ import annotations

from handoff_events.contracts import OrderPlaced
from handoff_events.contracts.marketplace import OrderId
from handoff_events.runtime.openapi import (
    JSON_BODY_ERRORS,
    HttpApi,
    JsonReply,
    Operation,
    Parameter,
    ProblemReply,
)

from handoff_order_intake.entrypoints.http import (
    CancellationAccepted,
    CancelRequest,
    OrderAccepted,
)

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


CANCEL_EXAMPLE = CancelRequest(reason="customer changed their mind")
# Both routes publish before answering: Kafka's acknowledgement is part of the answer.
PUBLISH_ERRORS = {
    **JSON_BODY_ERRORS,
    503: ProblemReply(
        description="Kafka did not acknowledge the record; retrying is safe",
        reasons=("broker_unavailable",),
    ),
}

API = HttpApi(
    title="Handoff order intake",
    description=DESCRIPTION,
    module="handoff_order_intake.openapi",
    operations=[
        Operation(
            path="/v1/orders",
            method="post",
            operation_id="placeOrder",
            summary="Place an order",
            description="Publishes `handoff.order.placed.v1`; 202 once Kafka has it.",
            request=OrderPlaced,
            responses={
                202: JsonReply(description="Kafka holds the order", body=OrderAccepted),
                422: ProblemReply(
                    description="The body does not match the schema; `field` names it"
                ),
                **PUBLISH_ERRORS,
            },
        ),
        Operation(
            path="/v1/orders/{order_id}/cancel",
            method="post",
            operation_id="cancelOrder",
            summary="Cancel an order (or some of its origins)",
            description="Publishes `handoff.order.cancelled.v1`, decided later.",
            parameters=[Parameter(name="order_id", location="path", schema=OrderId)],
            request=CancelRequest,
            request_required=False,
            example=CANCEL_EXAMPLE,
            responses={
                202: JsonReply(
                    description="Kafka holds the cancellation", body=CancellationAccepted
                ),
                422: ProblemReply(description="Bad order id or body; `field` names it"),
                **PUBLISH_ERRORS,
            },
        ),
    ],
)
openapi_document = API.document

if __name__ == "__main__":
    raise SystemExit(API.main())
