"""Order intake's stream stages: envelopes in, domain decisions, store writes and emitted events.

Two stages, both run by the shared engine (`handoff_events.stream`):

* "orders" reads `handoff.marketplace.orders.v1` (keyed `<tenant>/<order_id>`;
  the HTTP edge publishes to the same topic, so both paths share this one
  decision path) and keeps the order ledger. It emits `ShipmentRequested` /
  `ShipmentRejected` on `handoff.order_intake.shipments.v1` and re-keys
  cancellations by shipment onto `handoff.order_intake.cancellations.v1`.
* "cancellations" reads those requests together with
  `handoff.shipments.updates.v1` (both keyed by shipment id, so
  co-partitioned), keeps each shipment's latest status and decides.

Every emitted envelope's id derives from the input event's id, so a retry after
a crash re-emits the same ids.
"""

from __future__ import annotations

from handoff_events import topics
from handoff_events.contracts import (
    CancellationRequested,
    Event,
    OrderCancelled,
    OrderPlaced,
    ShipmentUpdate,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.runtime.logging import get_logger
from handoff_events.stream.api import Context, MsgpackCodec, Rejected, StatefulProcessor

from handoff_order_intake.domain.cancellation import (
    ShipmentStatusView,
    decide_shipment_cancellation,
    observe_update,
)
from handoff_order_intake.domain.ledger import (
    OrderRecord,
    decide_order_cancellation,
    decide_placement,
    order_key,
)
from handoff_order_intake.domain.locations import LocationCatalogue

SERVICE = "order_intake"
SOURCE = "handoff/order_intake"
ORDERS_CHANGELOG = "handoff.order_intake.orders-changelog.v1"
STATUS_CHANGELOG = "handoff.order_intake.shipment-status-changelog.v1"
log = get_logger("handoff.order_intake")


def _checked_key(env: Envelope[Event], ctx: Context[OrderRecord], order_id: str) -> str:
    """The ledger key: tenant from the envelope, order id from the data.

    A record whose Kafka key disagrees would sit in another key's partition and
    could race its own order's records, so it is dead-lettered rather than guessed at.
    """
    key = order_key(env.tenant_id, order_id)
    if ctx.key != key:
        raise Rejected(
            "key_mismatch",
            f"record key must be `<tenant>/<order_id>` = {key!r}",
            field="key",
            value=None if ctx.key is None else ctx.key[:200],
        )
    return key


class OrderStage:
    """Stage "orders": the order ledger."""

    def __init__(self, catalogue: LocationCatalogue):
        self.catalogue = catalogue

    def handle(self, env: Envelope[Event], ctx: Context[OrderRecord]) -> None:
        data = env.data
        if isinstance(data, OrderPlaced):
            self._placed(env, data, ctx)
        elif isinstance(data, OrderCancelled):
            self._cancelled(env, data, ctx)
        else:  # the engine only hands in the topic's accepted types
            raise Rejected("unexpected_type", "not an order event", field="ce_type", value=env.type)

    def _placed(self, env: Envelope[Event], order: OrderPlaced, ctx: Context[OrderRecord]) -> None:
        key = _checked_key(env, ctx, order.order_id)
        placement = decide_placement(
            ctx.store.get(key),
            order,
            tenant_id=env.tenant_id,
            catalogue=self.catalogue,
            now=ctx.now,
        )
        for requested in placement.requested:
            ctx.emit(
                topics.INTAKE_SHIPMENTS,
                requested.shipment_id,
                new_envelope(
                    requested,
                    source=SOURCE,
                    tenant_id=env.tenant_id,
                    caused_by=f"{env.id}/{requested.origin.location_id}",
                    time=ctx.now,
                ),
            )
        if placement.rejected is not None:
            rejected = placement.rejected
            ctx.emit(
                topics.INTAKE_SHIPMENTS,
                rejected.shipment_id,
                new_envelope(
                    rejected,
                    source=SOURCE,
                    tenant_id=env.tenant_id,
                    caused_by=f"{env.id}/{rejected.shipment_id}",
                    time=ctx.now,
                ),
            )
        if placement.record is not None:
            ctx.store.put(key, placement.record)
        log.info(
            "order_placed",
            decision=placement.kind,
            shipments=len(placement.requested),
            reasons=[r.code for r in placement.rejected.reasons] if placement.rejected else [],
        )

    def _cancelled(
        self, env: Envelope[Event], cancel: OrderCancelled, ctx: Context[OrderRecord]
    ) -> None:
        key = _checked_key(env, ctx, cancel.order_id)
        decision = decide_order_cancellation(ctx.store.get(key), cancel)
        for request in decision.requests:
            ctx.emit(
                topics.CANCELLATIONS,
                request.shipment_id,
                new_envelope(
                    request,
                    source=SOURCE,
                    tenant_id=env.tenant_id,
                    caused_by=f"{env.id}/{request.shipment_id}",
                    time=ctx.now,
                ),
            )
        if decision.record is not None:
            ctx.store.put(key, decision.record)
        log.info("order_cancelled", decision=decision.kind, shipments=len(decision.requests))


def handle_shipment_status(env: Envelope[Event], ctx: Context[ShipmentStatusView]) -> None:
    """Stage "cancellations": fold status updates; decide cancellation requests."""
    data = env.data
    if isinstance(data, ShipmentUpdate):
        current = ctx.store.get(data.shipment_id)
        updated = observe_update(current, data)
        if updated != current:
            ctx.store.put(data.shipment_id, updated)
        return
    if not isinstance(data, CancellationRequested):
        raise Rejected("unexpected_type", "not a shipment event", field="ce_type", value=env.type)
    decision = decide_shipment_cancellation(ctx.store.get(data.shipment_id), data, now=ctx.now)
    if decision.event is not None:
        ctx.emit(
            topics.INTAKE_SHIPMENTS,
            data.shipment_id,
            new_envelope(
                decision.event,
                source=SOURCE,
                tenant_id=env.tenant_id,
                caused_by=env.id,
                time=ctx.now,
            ),
        )
    if decision.view is not None:
        ctx.store.put(data.shipment_id, decision.view)
    log.info("cancellation_decided", decision=decision.kind)


def order_processor(catalogue: LocationCatalogue) -> StatefulProcessor[OrderRecord]:
    return StatefulProcessor(
        service=SERVICE,
        stage="orders",
        inputs=[topics.ORDERS],
        changelog=ORDERS_CHANGELOG,
        codec=MsgpackCodec(OrderRecord),
        handle=OrderStage(catalogue).handle,
    )


def cancellation_processor() -> StatefulProcessor[ShipmentStatusView]:
    return StatefulProcessor(
        service=SERVICE,
        stage="cancellations",
        inputs=[topics.CANCELLATIONS, topics.UPDATES],
        changelog=STATUS_CHANGELOG,
        codec=MsgpackCodec(ShipmentStatusView),
        handle=handle_shipment_status,
    )
