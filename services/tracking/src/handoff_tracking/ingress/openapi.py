"""The carrier webhook's OpenAPI operation, for the tracking service's document.

`INGRESS_OPERATIONS` is added to the query operations by `handoff_tracking.openapi`.
The body schema is generated from the contract type the route decodes, so it
cannot drift from what the webhook accepts.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from handoff_events.contracts import CarrierTrackingEvent
from handoff_events.examples import example
from handoff_events.runtime.openapi import (
    NOT_JSON,
    JsonReply,
    Operation,
    Parameter,
    ProblemReply,
    webhook_signature,
)

from handoff_tracking.ingress.settings import TrackingIngressSettings
from handoff_tracking.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from handoff_tracking.ingress.webhook import PATH

MAX_EVENTS: int = TrackingIngressSettings.model_fields["webhook_max_events"].default
"""The default batch limit (`HANDOFF_WEBHOOK_MAX_EVENTS` may change it per deployment)."""

CarrierTrackingEventBatch = (
    Annotated[list[CarrierTrackingEvent], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]
    | CarrierTrackingEvent
)
"""One scan (an object) or a batch (an array)."""

CarrierCode = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_-]{0,31}$")]
UnixSeconds = Annotated[str, msgspec.Meta(pattern="^[0-9]{1,12}$")]


class CarrierEventsAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """202 answer: every scan is stored in Kafka."""

    accepted: Annotated[int, msgspec.Meta(description="events stored")]
    ids: Annotated[
        list[str], msgspec.Meta(description="CloudEvents ids, derived from (carrier, event_id)")
    ]


CARRIER_SIGNATURE = webhook_signature(
    "CarrierSignature",
    SIGNATURE_HEADER,
    f"`v1=<hex HMAC-SHA256 of '<{TIMESTAMP_HEADER}>.<raw body>'>` with the carrier's "
    "secret; several comma-separated signatures are accepted during a secret rotation. "
    f"`{TIMESTAMP_HEADER}` (unix seconds) is checked against a 5-minute window; "
    "see docs/integrating-carriers.md.",
)

INGRESS_OPERATIONS = [
    Operation(
        path=PATH,
        method="post",
        operation_id="postCarrierEvents",
        summary="Post tracking events in the carrier's own vocabulary",
        description=(
            f"One event or a batch (array, at most {MAX_EVENTS} events, 1 MiB). Every event's "
            "`carrier` must be the path's carrier and its tracking number the carrier's own. "
            "Answered 202 only once Kafka has stored every event; re-posting the same events "
            "is harmless (ids derive from carrier and event_id)."
        ),
        tags=["carriers"],
        security=CARRIER_SIGNATURE,
        parameters=[
            Parameter(name="carrier", location="path", schema=CarrierCode),
            Parameter(
                name=TIMESTAMP_HEADER,
                location="header",
                required=True,
                schema=UnixSeconds,
                description="unix seconds when the request was signed",
            ),
            Parameter(
                name=SIGNATURE_HEADER,
                location="header",
                required=True,
                example="v1=5257a869e7ecebeda32affa62cdca3fa",
            ),
        ],
        request=CarrierTrackingEventBatch,
        example=[example(CarrierTrackingEvent.ce_type)],
        responses={
            202: JsonReply(description="stored in Kafka", body=CarrierEventsAccepted),
            400: NOT_JSON,
            401: ProblemReply(
                description="signature or timestamp refused",
                reasons=(
                    "missing_timestamp",
                    "invalid_timestamp",
                    "missing_signature",
                    "bad_signature",
                    "stale_timestamp",
                ),
            ),
            403: ProblemReply(
                description="an event that is not this carrier's",
                reasons=("carrier_mismatch", "foreign_tracking_number"),
            ),
            404: ProblemReply(description="no such carrier", reasons=("unknown_carrier",)),
            413: ProblemReply(
                description="body or batch too large", reasons=("too_large", "too_many_events")
            ),
            422: ProblemReply(
                description="an invalid event; `field` names it, e.g. `$[3].occurred_at`",
                reasons=("schema_violation", "empty_batch", "invalid_tracking_number"),
            ),
            503: ProblemReply(
                description="Kafka unavailable; retry", reasons=("unavailable", "ownership_loading")
            ),
        },
    )
]
