"""The HTTP edge: place and cancel orders over HTTP, authenticated per tenant.

The edge decides nothing about the order itself. It checks the body's shape
(422 naming the field), wraps it in a CloudEvents envelope whose id derives
from (tenant, order id, content), and publishes it with acks=all to
`handoff.marketplace.orders.v1`, the same topic marketplaces produce to, so
the "orders" stream stage is the one decision path for both. It answers 202
only once Kafka holds the record; the outcome arrives as shipment events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiokafka.errors import KafkaError
from handoff_events import topics
from handoff_events.contracts import OrderCancelled, OrderPlaced
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.ids import digest, event_id
from handoff_events.runtime.http import Problem, TenantAuth, decode_body, json_response, read_body
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.topics import Names
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from handoff_order_intake.domain.ledger import fingerprint, order_key
from handoff_order_intake.domain.splitting import planned_shipment_ids

SOURCE = "handoff/order_intake/http"
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_canonical = msgspec.json.Encoder(order="sorted")
LocationId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Body of `POST /v1/orders/{order_id}/cancel` (optional: no body cancels the whole order)."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    origin_location_ids: Annotated[list[LocationId], msgspec.Meta(max_length=100)] | None = None
    """Cancel only the shipments leaving from these origins; absent cancels every shipment."""


class OrderAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """202 answer: Kafka holds the order; the decision follows as shipment events."""

    event_id: str
    order_id: str
    topic: str
    partition: int
    offset: int
    shipment_ids: list[str]
    """The shipments a valid order produces (one per origin); a rejection uses the first."""


class CancellationAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """202 answer: Kafka holds the cancellation; it is decided asynchronously per shipment."""

    event_id: str
    order_id: str
    topic: str
    partition: int
    offset: int


Clock = Callable[[], datetime]


class OrderEndpoints:
    def __init__(self, auth: TenantAuth, clock: Clock, topic_prefix: str):
        self._auth = auth
        self._clock = clock
        self._names = Names(topic_prefix)

    @staticmethod
    def _publisher(request: Request) -> EventPublisher:
        publisher: EventPublisher = request.app.state.app.publisher
        return publisher

    async def _publish(
        self, request: Request, key: str, envelope: Envelope[Any]
    ) -> tuple[int, int]:
        try:
            return await self._publisher(request).publish(topics.ORDERS, key, envelope)
        except (KafkaError, TimeoutError) as exc:
            raise Problem(
                503,
                "Service unavailable",
                f"Kafka did not acknowledge the record ({type(exc).__name__}); retry: "
                "the same request yields the same event id",
                reason="broker_unavailable",
            ) from None

    async def place_order(self, request: Request) -> Response:
        tenant = self._auth.tenant(request)
        order = decode_body(OrderPlaced, await read_body(request))
        envelope = new_envelope(
            order,
            source=SOURCE,
            tenant_id=tenant,
            id=event_id("order-placed", tenant, order.order_id, fingerprint(order)),
            time=self._clock(),
        )
        partition, offset = await self._publish(
            request, order_key(tenant, order.order_id), envelope
        )
        body = OrderAccepted(
            event_id=envelope.id,
            order_id=order.order_id,
            topic=self._names(topics.ORDERS),
            partition=partition,
            offset=offset,
            shipment_ids=planned_shipment_ids(tenant, order),
        )
        return json_response(body, 202)

    async def cancel_order(self, request: Request) -> Response:
        tenant = self._auth.tenant(request)
        order_id = request.path_params["order_id"]
        if not _ORDER_ID.match(order_id):
            raise Problem(
                422,
                "Invalid order id",
                "1-64 characters of A-Z a-z 0-9 . _ : - (not starting with a symbol)",
                reason="schema_violation",
                field="order_id",
                value=order_id,
            )
        raw = await read_body(request)
        body = decode_body(CancelRequest, raw) if raw.strip() else CancelRequest()
        cancelled = OrderCancelled(
            order_id=order_id,
            cancelled_at=self._clock(),
            reason=body.reason,
            origin_location_ids=body.origin_location_ids,
        )
        # The id covers what was asked, not when: a retried request is the same event.
        content = digest(_canonical.encode(body).decode(), length=32)
        envelope = new_envelope(
            cancelled,
            source=SOURCE,
            tenant_id=tenant,
            id=event_id("order-cancelled", tenant, order_id, content),
            time=cancelled.cancelled_at,
        )
        partition, offset = await self._publish(request, order_key(tenant, order_id), envelope)
        answer = CancellationAccepted(
            event_id=envelope.id,
            order_id=order_id,
            topic=self._names(topics.ORDERS),
            partition=partition,
            offset=offset,
        )
        return json_response(answer, 202)


def order_routes(auth: TenantAuth, clock: Clock, topic_prefix: str = "") -> list[BaseRoute]:
    endpoints = OrderEndpoints(auth, clock, topic_prefix)
    return [
        Route("/v1/orders", endpoints.place_order, methods=["POST"]),
        Route("/v1/orders/{order_id}/cancel", endpoints.cancel_order, methods=["POST"]),
    ]
