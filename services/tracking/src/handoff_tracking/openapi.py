"""Tracking's `HttpApi`: the tenant-scoped shipment queries plus the carrier webhook.

The queries answer 503 `not_ready` until the read models caught up, which every
query operation documents; the webhook's operation lives with the ingress.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from handoff_events.contracts import ShipmentState
from handoff_events.runtime.openapi import (
    UNAUTHORIZED,
    HttpApi,
    JsonReply,
    Operation,
    Parameter,
    ProblemReply,
)

from handoff_tracking.entrypoints.http import MAX_LIMIT, KpiPage, ShipmentEvents, ShipmentPage
from handoff_tracking.ingress.openapi import INGRESS_OPERATIONS

NOT_READY = ProblemReply(description="the read model is still loading", reasons=("not_ready",))
NOT_FOUND = ProblemReply(description="no such shipment for this tenant", reasons=("not_found",))
QUERY_ERRORS = {401: UNAUTHORIZED, 503: NOT_READY}
SHIPMENT_ID = Parameter(name="shipment_id", location="path")
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]


def _ok(body: Any) -> JsonReply:
    return JsonReply(description="OK", body=body)


QUERY_OPERATIONS = [
    Operation(
        path="/v1/shipments/{shipment_id}",
        method="get",
        operation_id="getShipment",
        summary="A shipment's current state, or its state at `as_of`",
        parameters=[
            SHIPMENT_ID,
            Parameter(
                name="as_of",
                location="query",
                schema=datetime,
                description="RFC 3339: the state refolded from the events "
                "that had occurred by then",
            ),
        ],
        responses={
            200: _ok(ShipmentState),
            400: ProblemReply(description="as_of is not RFC 3339", reasons=("invalid_query",)),
            404: NOT_FOUND,
            **QUERY_ERRORS,
        },
    ),
    Operation(
        path="/v1/shipments/{shipment_id}/events",
        method="get",
        operation_id="getShipmentEvents",
        summary="A shipment's event history in event-time order (applied or not)",
        parameters=[SHIPMENT_ID],
        responses={200: _ok(ShipmentEvents), 404: NOT_FOUND, **QUERY_ERRORS},
    ),
    Operation(
        path="/v1/shipments",
        method="get",
        operation_id="listShipments",
        summary="The tenant's shipments, by id, optionally filtered by status",
        parameters=[
            Parameter(
                name="status", location="query", description="comma-separated canonical statuses"
            ),
            Parameter(name="cursor", location="query"),
            Parameter(name="limit", location="query", schema=PageLimit),
        ],
        responses={
            200: _ok(ShipmentPage),
            400: ProblemReply(description="bad limit", reasons=("invalid_query",)),
            **QUERY_ERRORS,
        },
    ),
    Operation(
        path="/v1/kpis",
        method="get",
        operation_id="listKpis",
        summary="The tenant's delivery KPIs per carrier, lane and day",
        parameters=[
            Parameter(name="carrier", location="query"),
            Parameter(name="day", location="query", schema=date),
        ],
        responses={200: _ok(KpiPage), **QUERY_ERRORS},
    ),
]

API = HttpApi(
    title="Handoff tracking",
    description="Shipment queries (tenant-scoped) and the carrier tracking webhook.",
    module="handoff_tracking.openapi",
    operations=[*QUERY_OPERATIONS, *INGRESS_OPERATIONS],
)
openapi_document = API.document

if __name__ == "__main__":
    raise SystemExit(API.main())
