"""Allocation's two stream stages: envelopes in → domain transitions → store + emitted events.

- "shipments" (keyed by shipment id; inputs: quotes, capacity decisions, tender
  replies, intake's shipments and returns' reverse shipments, all co-partitioned):
  runs the allocation fold of `domain.allocation` and a timer for tender deadlines.
- "buckets" (keyed by `<carrier>/<hub_id>/<day>`; input: capacity requests): the
  single owner of each capacity bucket decides reservations and releases.

Every emitted event's id derives from the input's id (or, for a timer, the
tender id) and its position among the outputs, so a batch re-run after a crash
emits identical ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from handoff_events import topics
from handoff_events.contracts import (
    AllocationFailed,
    AllocationReleased,
    CapacityRefused,
    CapacityReleased,
    CapacityReleaseRequested,
    CapacityReservationRequested,
    CapacityReserved,
    CarrierAllocated,
    Event,
    RatesQuoted,
    ShipmentCancelled,
    ShipmentRequested,
    TenderAccepted,
    TenderDeclined,
    TenderFailed,
    TenderRequested,
    TenderWithdrawn,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.ids import event_id
from handoff_events.runtime.logging import get_logger
from handoff_events.stream.api import Context, MsgpackCodec, StatefulProcessor

from handoff_carrier_allocation.adapters.config import CapacityLimits, PolicyBook
from handoff_carrier_allocation.domain import allocation as fold
from handoff_carrier_allocation.domain.allocation import Rules, ShipmentAllocation, Step
from handoff_carrier_allocation.domain.capacity import (
    BucketState,
    Slot,
    release,
    reserve,
    slot_key,
)
from handoff_carrier_allocation.domain.policy import Scorecard

SERVICE = "carrier_allocation"
SOURCE = "handoff/carrier_allocation"
SHIPMENTS_CHANGELOG = "handoff.carrier_allocation.shipments-changelog.v1"
BUCKETS_CHANGELOG = "handoff.carrier_allocation.buckets-changelog.v1"
SHIPMENT_INPUTS = (
    topics.QUOTES,
    topics.CAPACITY,
    topics.TENDER_REPLIES,
    topics.INTAKE_SHIPMENTS,
    topics.RETURN_SHIPMENTS,
)
log = get_logger("handoff.carrier_allocation")


def route(data: Event) -> tuple[str, str]:
    """The topic and key an allocation output goes to."""
    if isinstance(data, CapacityReservationRequested | CapacityReleaseRequested):
        return topics.CAPACITY_REQUESTS, data.bucket.key
    if isinstance(data, TenderRequested | TenderWithdrawn):
        return topics.TENDERS, data.shipment_id
    if isinstance(data, CapacityReserved | CapacityRefused | CapacityReleased):
        return topics.CAPACITY, data.shipment_id
    if isinstance(data, CarrierAllocated | TenderFailed | AllocationFailed | AllocationReleased):
        return topics.ALLOCATIONS, data.shipment_id
    raise TypeError(f"allocation does not emit {type(data).__name__}")


def emit_all(ctx: Context[Any], events: list[Event], tenant_id: str, caused_by: str) -> None:
    for index, data in enumerate(events):
        topic, key = route(data)
        envelope = new_envelope(
            data,
            source=SOURCE,
            tenant_id=tenant_id,
            id=event_id(data.ce_type, caused_by, index),
            time=ctx.now,
        )
        ctx.emit(topic, key, envelope)


@dataclass
class ShipmentsStage:
    """The "shipments" stage: dependencies are passed in (tests pass fakes)."""

    policies: PolicyBook
    scorecards: Callable[[], Mapping[str, Scorecard]]
    rules: Rules

    def handle(self, env: Envelope[Event], ctx: Context[ShipmentAllocation]) -> None:
        data = env.data
        shipment_id = getattr(data, "shipment_id", None)
        if not isinstance(shipment_id, str):
            return
        state = ctx.store.get(shipment_id)
        now = ctx.now
        step: Step | None
        policy = self.policies.for_tenant(state.tenant_id if state else env.tenant_id)
        default_card = self.policies.scorecard_defaults.scorecard()
        if isinstance(data, ShipmentRequested):
            step = fold.on_shipment_requested(
                state,
                data,
                tenant_id=env.tenant_id,
                policy=policy,
                scorecards=self.scorecards(),
                default_scorecard=default_card,
                now=now,
            )
        elif isinstance(data, RatesQuoted):
            step = fold.on_rates_quoted(
                state,
                data,
                tenant_id=env.tenant_id,
                policy=policy,
                scorecards=self.scorecards(),
                default_scorecard=default_card,
                now=now,
            )
        elif isinstance(data, ShipmentCancelled):
            step = fold.on_shipment_cancelled(state, data, env.tenant_id, now)
        elif state is None:
            # A reply for a shipment this stage never saw (another deployment's, or a
            # stray): nothing to decide.
            log.info("reply for an unknown shipment ignored", type=env.type)
            step = None
        elif isinstance(data, CapacityReserved):
            step = fold.on_capacity_reserved(state, data, self.rules, now)
        elif isinstance(data, CapacityRefused):
            step = fold.on_capacity_refused(state, data, now)
        elif isinstance(data, TenderAccepted):
            step = fold.on_tender_accepted(state, data, now)
        elif isinstance(data, TenderDeclined):
            step = fold.on_tender_declined(state, data, now)
        else:
            # RatingFailed (tracking reports it to the marketplace) and CapacityReleased
            # (the release was already accounted for when it was requested): nothing to decide.
            step = None
        if step is None:
            return
        kept = fold.without_recipient(step.state)
        if kept != state:
            ctx.store.put(shipment_id, kept)
        emit_all(ctx, step.events, kept.tenant_id or env.tenant_id, env.id)

    def punctuate(self, ctx: Context[ShipmentAllocation]) -> None:
        """Tender deadlines: only the shipments whose deadline has come are handed over
        (the engine's due index, `fold.deadline`), never the whole store."""
        now = ctx.now
        waiting = [s for _, s in ctx.due() if s.phase == "tendering"]
        for state in fold.due(waiting, now):
            tender = state.tender_id
            step = fold.on_deadline(state, now)
            ctx.store.put(state.shipment_id, fold.without_recipient(step.state))
            emit_all(ctx, step.events, state.tenant_id, f"deadline:{tender}")

    def processor(self) -> StatefulProcessor[ShipmentAllocation]:
        return StatefulProcessor(
            service=SERVICE,
            stage="shipments",
            inputs=list(SHIPMENT_INPUTS),
            changelog=SHIPMENTS_CHANGELOG,
            codec=MsgpackCodec(ShipmentAllocation),
            handle=self.handle,
            punctuate=self.punctuate,
            punctuate_every_s=min(1.0, max(self.rules.tender_timeout.total_seconds() / 4, 0.1)),
            due=fold.deadline,
        )


BucketEntry = BucketState | Slot
"""A "buckets" store value: a bucket's counter (key `<bucket>`) or one holder's slot
(key `<bucket>#<shipment id>`), see `domain.capacity`."""
_KIND = "handoff_store_kind"


class BucketCodec:
    """MessagePack of either store value; a header tells a slot from a counter (records
    without it are counters, which is also how the first layout wrote them)."""

    def __init__(self) -> None:
        self._enc = msgspec.msgpack.Encoder()
        self._bucket = msgspec.msgpack.Decoder(BucketState)
        self._slot = msgspec.msgpack.Decoder(Slot)

    def encode(self, key: str, value: BucketEntry) -> tuple[bytes, list[tuple[str, bytes]]]:
        if isinstance(value, Slot):
            return self._enc.encode(value), [(_KIND, b"slot")]
        return self._enc.encode(value), []

    def decode(self, value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> BucketEntry:
        for name, kind in headers:
            if name == _KIND and kind == b"slot":
                return self._slot.decode(value)
        return self._bucket.decode(value)


@dataclass
class BucketsStage:
    """The "buckets" stage: one owner per capacity bucket decides every request for it.

    Each request reads and writes two small entries (the bucket's counter and the
    shipment's slot), whatever the number of holders."""

    limits: CapacityLimits

    def handle(self, env: Envelope[Event], ctx: Context[BucketEntry]) -> None:
        data = env.data
        if not isinstance(data, CapacityReservationRequested | CapacityReleaseRequested):
            return
        now = ctx.now
        key = data.bucket.key
        held = slot_key(data.bucket, data.shipment_id)
        found = ctx.store.get(key)
        state = found if isinstance(found, BucketState) else None
        found_slot = ctx.store.get(held)
        slot = found_slot if isinstance(found_slot, Slot) else None
        limit = self.limits.limit_for(data.bucket)
        out: Event
        if isinstance(data, CapacityReservationRequested):
            decision = reserve(state, slot, data.bucket, limit, data.shipment_id, data.request_id)
            if decision.granted:
                out = CapacityReserved(
                    request_id=data.request_id,
                    shipment_id=data.shipment_id,
                    bucket=data.bucket,
                    reserved_at=now,
                    remaining=decision.state.remaining,
                )
            else:
                out = CapacityRefused(
                    request_id=data.request_id,
                    shipment_id=data.shipment_id,
                    bucket=data.bucket,
                    refused_at=now,
                    reason=decision.reason or "bucket_full",
                )
            new_state, new_slot = decision.state, decision.slot
        else:
            released = release(state, slot, data.bucket, limit, data.shipment_id, data.request_id)
            out = CapacityReleased(
                request_id=data.request_id,
                shipment_id=data.shipment_id,
                bucket=data.bucket,
                released_at=now,
                remaining=released.state.remaining,
            )
            new_state, new_slot = released.state, released.slot
        if new_state != state:
            ctx.store.put(key, new_state)
        if new_slot != slot:
            if new_slot is None:
                ctx.store.delete(held)
            else:
                ctx.store.put(held, new_slot)
        emit_all(ctx, [out], env.tenant_id, env.id)

    def processor(self) -> StatefulProcessor[BucketEntry]:
        return StatefulProcessor(
            service=SERVICE,
            stage="buckets",
            inputs=[topics.CAPACITY_REQUESTS],
            changelog=BUCKETS_CHANGELOG,
            codec=BucketCodec(),
            handle=self.handle,
        )
