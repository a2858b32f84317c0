"""The `quotes` stream stage: ShipmentRequested → RatesQuoted | RatingFailed on the quotes topic.

Inputs are the shipment topics of order intake and returns (co-partitioned by
shipment id). Other event types on the intake topic (rejected, cancelled,
cancellation refused) concern other services and are skipped. The stage keeps
no store: a quote depends on the request, the catalogue and the transit history,
not on earlier records. The output's envelope id is derived from the input's
(`caused_by`), and quote ids from (shipment, carrier, service), so a record
handled again after a crash re-emits the same ids. (Prices from a carrier's
own API and the observed history may differ on a re-run; the ids do not.)
"""

from __future__ import annotations

from collections.abc import Collection

from handoff_events import topics
from handoff_events.contracts import Event, ShipmentRequested
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.stream.api import Context, Handler, Rejected, StatefulProcessor

from handoff_rate_shopping.domain.rating import InvalidRequest
from handoff_rate_shopping.quoting import Quoter

SOURCE = "handoff/rate_shopping"
ACCEPT: dict[str, Collection[str]] = {
    topics.INTAKE_SHIPMENTS: topics.BY_NAME[topics.INTAKE_SHIPMENTS].event_types,
    topics.RETURN_SHIPMENTS: topics.BY_NAME[topics.RETURN_SHIPMENTS].event_types,
}


def quotes_handler(quoter: Quoter) -> Handler[None]:
    async def handle(envelope: Envelope[Event], ctx: Context[None]) -> None:
        shipment = envelope.data
        if not isinstance(shipment, ShipmentRequested):
            return
        try:
            outcome = await quoter.quote(shipment, ctx.now)
        except InvalidRequest as bad:
            raise Rejected(bad.code, bad.message, bad.field, bad.value) from None
        ctx.emit(
            topics.QUOTES,
            shipment.shipment_id,
            new_envelope(
                outcome,
                source=SOURCE,
                tenant_id=envelope.tenant_id,
                caused_by=envelope.id,
                time=ctx.now,
            ),
        )

    return handle


def quotes_processor(quoter: Quoter) -> StatefulProcessor[None]:
    return StatefulProcessor(
        service="rate_shopping",
        stage="quotes",
        inputs=[topics.INTAKE_SHIPMENTS, topics.RETURN_SHIPMENTS],
        handle=quotes_handler(quoter),
        changelog=None,
        accept=ACCEPT,
    )
