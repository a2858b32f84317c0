"""The returns service's two stream stages: Envelope -> domain -> ctx.store / ctx.emit.

Stage `requests` (keyed `<tenant>/<order_id>`): inputs the public return
requests and returns' own order index (`handoff.returns.order-shipments.v1`);
routes each request to the shipment it returns and re-keys it by that
shipment id. Stage `ledger` (keyed by shipment id): inputs the re-keyed
requests and RMA links, shipment updates, order intake's shipments and
returns' own decisions; authorises or refuses, emits the reverse shipment,
and reports completion and expiry. docs/returns.md explains why two stages and
the internal topics are needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    RefundEligible,
    ReturnAuthorised,
    ReturnExpired,
    ReturnReceived,
    ReturnRefused,
    ReturnRequested,
    ReturnShipmentLinked,
    ShipmentIndexed,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.stream.api import Context, Rejected

from handoff_returns.domain import ledger
from handoff_returns.domain.ledger import Authorised, Refused, ReturnCentre, ShipmentRecord
from handoff_returns.domain.policy import ReturnPolicy
from handoff_returns.domain.requests import (
    IndexedShipment,
    OrderIndex,
    Unroutable,
    route,
    shape_problems,
)

SOURCE = "handoff/returns"


def order_key(tenant_id: str, order_id: str) -> str:
    return f"{tenant_id}/{order_id}"


# ---- stage "requests": keyed by order ---------------------------------------------------


def handle_requests(env: Envelope[Event], ctx: Context[OrderIndex]) -> None:
    data = env.data
    if isinstance(data, ShipmentIndexed):
        key = order_key(env.tenant_id, data.order_id)
        index = ctx.store.get(key) or OrderIndex()
        entry = IndexedShipment(
            shipment_id=data.shipment_id,
            origin_location_id=data.origin_location_id,
            skus=sorted(set(data.skus)),
        )
        if entry not in index.shipments:
            ctx.store.put(key, index.with_shipment(entry))
        return
    if not isinstance(data, ReturnRequested):
        return
    problems = shape_problems(data)
    if problems:
        first = problems[0]
        raise Rejected(first.code, first.message, first.field, first.value)
    key = order_key(env.tenant_id, data.order_id)
    index = ctx.store.get(key) or OrderIndex()
    if data.return_request_id in index.routed:
        return  # a duplicate: the ledger already has (and decided) the first one
    try:
        shipment_id = route(data, index.shipments)
    except Unroutable as err:
        reason = err.reason
        raise Rejected(reason.code, reason.message, reason.field, reason.value) from None
    rekeyed = msgspec.structs.replace(data, shipment_id=shipment_id)
    ctx.emit(
        topics.RETURN_REQUESTS_BY_SHIPMENT,
        shipment_id,
        new_envelope(
            rekeyed, source=SOURCE, tenant_id=env.tenant_id, caused_by=env.id, time=ctx.now
        ),
    )
    ctx.store.put(key, index.with_routed(data.return_request_id, shipment_id))


# ---- stage "ledger": keyed by shipment id -----------------------------------------------


@dataclass(frozen=True)
class LedgerStage:
    """The ledger stage's handler and punctuator, with the tenant policies they apply."""

    policies: Mapping[str, ReturnPolicy]
    centres: Mapping[str, ReturnCentre]

    def handle(self, env: Envelope[Event], ctx: Context[ShipmentRecord]) -> None:
        data = env.data
        if isinstance(data, ShipmentRequested):
            self._on_shipment(env, data, ctx)
        elif isinstance(data, ShipmentUpdate):
            self._on_update(data, ctx)
        elif isinstance(data, ReturnRequested):
            self._on_request(env, data, ctx)
        elif isinstance(data, ReturnShipmentLinked):
            record = ctx.store.get(data.return_shipment_id) or ledger.EMPTY
            linked = ledger.link_return(record, env.tenant_id, data, env.id)
            self._complete_if_due(data.return_shipment_id, linked, ctx)
        elif isinstance(data, ReturnReceived | ReturnExpired):
            # Our own back-link, keyed by the original shipment: the RMA's final state.
            original = ctx.store.get(data.shipment_id)
            if original is not None:
                status: ledger.RmaStatus = (
                    "received" if isinstance(data, ReturnReceived) else "expired"
                )
                ctx.store.put(data.shipment_id, ledger.mark_rma(original, data.rma_id, status))
        # Other event types on these topics (cancellations, our own authorisations, ...)
        # carry nothing the ledger needs.

    def expire(self, ctx: Context[ShipmentRecord]) -> None:
        """Timer: labels that ran out before any carrier scan become ReturnExpired.

        Only the records whose label expiry has come are handed over (the engine's due
        index, `ledger.expiry_at`), every `expiry_check_interval_s`.
        """
        for return_shipment_id, record in ctx.due():
            if not ledger.expiry_due(record, ctx.now):
                continue
            link = record.link
            assert link is not None
            expired = ReturnExpired(
                rma_id=link.rma_id,
                shipment_id=link.original_shipment_id,
                return_shipment_id=return_shipment_id,
                expired_at=link.label_valid_until,
            )
            ctx.emit(
                topics.RETURNS,
                link.original_shipment_id,
                new_envelope(
                    expired,
                    source=SOURCE,
                    tenant_id=link.tenant_id,
                    caused_by=link.caused_by,
                    time=ctx.now,
                ),
            )
            ctx.store.put(return_shipment_id, ledger.with_outcome(record, "expired"))

    # -- inputs --------------------------------------------------------------------------
    def _on_shipment(
        self, env: Envelope[Event], data: ShipmentRequested, ctx: Context[ShipmentRecord]
    ) -> None:
        if data.is_return:
            return  # reverse shipments are learnt from their RMA link, not from here
        record = ctx.store.get(data.shipment_id) or ledger.EMPTY
        if not record.requested:
            index = ShipmentIndexed(
                order_id=data.order_id,
                shipment_id=data.shipment_id,
                origin_location_id=data.origin.location_id,
                skus=list(data.skus),
                indexed_at=data.requested_at,
            )
            ctx.emit(
                topics.RETURN_ORDER_SHIPMENTS,
                order_key(env.tenant_id, data.order_id),
                new_envelope(
                    index, source=SOURCE, tenant_id=env.tenant_id, caused_by=env.id, time=ctx.now
                ),
            )
        ctx.store.put(data.shipment_id, ledger.record_shipment(record, env.tenant_id, data))

    def _on_update(self, data: ShipmentUpdate, ctx: Context[ShipmentRecord]) -> None:
        record = ctx.store.get(data.shipment_id) or ledger.EMPTY
        updated = ledger.record_update(record, data)
        if updated is not record:
            self._complete_if_due(data.shipment_id, updated, ctx)

    def _on_request(
        self, env: Envelope[Event], data: ReturnRequested, ctx: Context[ShipmentRecord]
    ) -> None:
        shipment_id = data.shipment_id
        if not shipment_id:
            raise Rejected(
                "schema_violation", "re-keyed request without shipment_id", "$.shipment_id"
            )
        record = ctx.store.get(shipment_id) or ledger.EMPTY
        if record.tenant_id is not None and record.tenant_id != env.tenant_id:
            # Never answer about another tenant's shipment, not even with a refusal.
            raise Rejected(
                "unknown_shipment", "no such shipment for this tenant", "$.shipment_id", shipment_id
            )
        decision = ledger.decide(
            record, env.tenant_id, data, policies=self.policies, centres=self.centres, now=ctx.now
        )
        if isinstance(decision, Refused):
            refused = ReturnRefused(
                return_request_id=data.return_request_id,
                order_id=data.order_id,
                shipment_id=shipment_id,
                refused_at=ctx.now,
                reasons=decision.reasons,
            )
            ctx.emit(topics.RETURNS, shipment_id, self._wrap(refused, env, ctx))
            ctx.store.put(shipment_id, decision.record)
        elif isinstance(decision, Authorised):
            self._authorise(env, data, shipment_id, decision, ctx)
            ctx.store.put(shipment_id, decision.record)

    def _authorise(
        self,
        env: Envelope[Event],
        data: ReturnRequested,
        shipment_id: str,
        decision: Authorised,
        ctx: Context[ShipmentRecord],
    ) -> None:
        agreed = decision.terms
        authorised = ReturnAuthorised(
            rma_id=decision.rma_id,
            return_request_id=data.return_request_id,
            order_id=data.order_id,
            shipment_id=shipment_id,
            return_shipment_id=decision.return_shipment_id,
            items=list(data.items),
            reason_code=data.reason_code,
            method=data.method,
            authorised_at=ctx.now,
            label_valid_until=agreed.label_valid_until,
            free_of_charge=agreed.free_of_charge,
            fee=agreed.fee,
        )
        reverse = ledger.reverse_shipment(
            decision,
            data,
            shipment_id,
            centre=self.centres[agreed.return_centre_id],
            policy=self.policies[env.tenant_id],
            now=ctx.now,
        )
        link = ReturnShipmentLinked(
            rma_id=decision.rma_id,
            return_request_id=data.return_request_id,
            order_id=data.order_id,
            shipment_id=shipment_id,
            return_shipment_id=decision.return_shipment_id,
            items=list(data.items),
            reason_code=data.reason_code,
            label_valid_until=agreed.label_valid_until,
            linked_at=ctx.now,
            free_of_charge=agreed.free_of_charge,
            fee=agreed.fee,
        )
        ctx.emit(topics.RETURNS, shipment_id, self._wrap(authorised, env, ctx))
        ctx.emit(
            topics.RETURN_SHIPMENTS, decision.return_shipment_id, self._wrap(reverse, env, ctx)
        )
        ctx.emit(
            topics.RETURN_REQUESTS_BY_SHIPMENT,
            decision.return_shipment_id,
            self._wrap(link, env, ctx),
        )

    def _complete_if_due(
        self, shipment_id: str, record: ShipmentRecord, ctx: Context[ShipmentRecord]
    ) -> None:
        """Store `record`; if it is a reverse shipment that just reached the return centre,
        report ReturnReceived then RefundEligible under the original shipment id."""
        if ledger.completion_due(record):
            link = record.link
            assert link is not None and record.delivered_at is not None
            late = link.outcome == "expired"
            received = ReturnReceived(
                rma_id=link.rma_id,
                shipment_id=link.original_shipment_id,
                return_shipment_id=shipment_id,
                received_at=record.delivered_at,
            )
            eligible = RefundEligible(
                rma_id=link.rma_id,
                order_id=link.order_id,
                shipment_id=link.original_shipment_id,
                items=link.items,
                eligible_at=record.delivered_at,
                policy_outcome=ledger.policy_outcome(link, received_after_expiry=late),
                refund_fee=link.fee,
            )
            for event in (received, eligible):
                ctx.emit(
                    topics.RETURNS,
                    link.original_shipment_id,
                    new_envelope(
                        event,
                        source=SOURCE,
                        tenant_id=link.tenant_id,
                        caused_by=link.caused_by,
                        time=ctx.now,
                    ),
                )
            record = ledger.with_outcome(record, "received")
        ctx.store.put(shipment_id, record)

    @staticmethod
    def _wrap(event: Event, env: Envelope[Event], ctx: Context[ShipmentRecord]) -> Envelope[Event]:
        return new_envelope(
            event, source=SOURCE, tenant_id=env.tenant_id, caused_by=env.id, time=ctx.now
        )
