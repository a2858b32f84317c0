"""The stream stages' handlers with an in-memory context: routing, keys, deterministic ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handoff_carrier_allocation.adapters.config import CapacityLimits, PolicyBook
from handoff_carrier_allocation.domain.allocation import Rules
from handoff_carrier_allocation.domain.policy import Policy
from handoff_carrier_allocation.handlers import BucketsStage, ShipmentsStage
from handoff_events import topics
from handoff_events.contracts import (
    CapacityRefused,
    CapacityReleaseRequested,
    CapacityReservationRequested,
    CapacityReserved,
    TenderAccepted,
    TenderRequested,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.stream.api import Emit

from services.carrier_allocation.tests.factories import NOW, quote, rates, request


class MemoryStore(dict[str, Any]):
    def put(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


@dataclass
class FakeContext:
    now: datetime = NOW
    store: MemoryStore = field(default_factory=MemoryStore)
    emits: list[Emit] = field(default_factory=list)
    partition: int = 0
    topic: str = ""
    offset: int = 0
    key: str | None = None

    def emit(self, topic: str, key: str, envelope: Envelope[Any]) -> None:
        self.emits.append(Emit(topic, key, envelope))

    def due(self) -> list[tuple[str, Any]]:
        """Every stored value (a superset of what the engine's due index hands over)."""
        return list(self.store.items())


STAGE = ShipmentsStage(
    policies=PolicyBook(
        policies={"default": Policy(policy_id="default", objective="cheapest_meeting_promise")}
    ),
    scorecards=dict,
    rules=Rules(tender_timeout=timedelta(seconds=30)),
)


def env(data: Any, ident: str) -> Envelope[Any]:
    return new_envelope(data, source="test", tenant_id="acme", id=ident)


def run_shipment_to_tender() -> tuple[FakeContext, list[Emit]]:
    ctx = FakeContext()
    STAGE.handle(env(request("shp_1"), "e1"), ctx)  # type: ignore[arg-type]
    STAGE.handle(env(rates("shp_1", quote("velo", 500), quote("swift", 700)), "e2"), ctx)  # type: ignore[arg-type]
    first = list(ctx.emits)
    req = first[0].envelope.data
    assert isinstance(req, CapacityReservationRequested)
    grant = CapacityReserved(
        request_id=req.request_id,
        shipment_id="shp_1",
        bucket=req.bucket,
        reserved_at=NOW,
        remaining=3,
    )
    STAGE.handle(env(grant, "e3"), ctx)  # type: ignore[arg-type]
    return ctx, first


def test_shipment_stage_routes_requests_by_bucket_and_tenders_by_shipment():
    ctx, first = run_shipment_to_tender()
    assert [(e.topic, e.key) for e in first] == [
        (topics.CAPACITY_REQUESTS, "velo/HUB-BER-1/2026-11-20")
    ]
    tender = ctx.emits[-1]
    assert (tender.topic, tender.key) == (topics.TENDERS, "shp_1")
    assert isinstance(tender.envelope.data, TenderRequested)
    assert tender.envelope.tenant_id == "acme"
    assert ctx.store["shp_1"].phase == "tendering"


def test_same_inputs_give_the_same_event_ids():
    a, _ = run_shipment_to_tender()
    b, _ = run_shipment_to_tender()
    assert [e.envelope.id for e in a.emits] == [e.envelope.id for e in b.emits]
    assert len({e.envelope.id for e in a.emits}) == len(a.emits)


def test_deadline_timer_moves_on_with_ids_derived_from_the_tender():
    ctx, _ = run_shipment_to_tender()
    ctx.emits.clear()
    STAGE.punctuate(ctx)  # type: ignore[arg-type]
    assert ctx.emits == []
    ctx.now = NOW + timedelta(seconds=31)
    STAGE.punctuate(ctx)  # type: ignore[arg-type]
    assert [(e.topic, type(e.envelope.data).__name__) for e in ctx.emits] == [
        (topics.ALLOCATIONS, "TenderFailed"),
        (topics.CAPACITY_REQUESTS, "CapacityReleaseRequested"),
        (topics.CAPACITY_REQUESTS, "CapacityReservationRequested"),
    ]
    assert ctx.emits[2].key == "swift/HUB-BER-1/2026-11-20"


def test_an_allocated_shipment_is_stored_without_its_recipient():
    ctx, _ = run_shipment_to_tender()
    assert ctx.store["shp_1"].facts.tendered.destination.name == "Ada Muster"  # tendering
    tender = ctx.emits[-1].envelope.data
    assert isinstance(tender, TenderRequested)
    accepted = TenderAccepted(
        tender_id=tender.tender_id,
        shipment_id="shp_1",
        carrier=tender.carrier,
        tracking_number="VL1",
        label_ref="lbl-1",
        accepted_at=NOW,
    )
    STAGE.handle(env(accepted, "e4"), ctx)  # type: ignore[arg-type]
    stored = ctx.store["shp_1"]
    assert stored.phase == "allocated"
    assert stored.facts.order_id == "A-1" and stored.facts.tendered is None
    assert type(ctx.emits[-1].envelope.data).__name__ == "CarrierAllocated"


def test_a_shipment_failed_by_the_timer_is_stored_without_its_recipient():
    ctx, _ = run_shipment_to_tender()
    ctx.now = NOW + timedelta(seconds=31)
    STAGE.punctuate(ctx)  # type: ignore[arg-type]  # velo timed out; swift's reservation
    nxt = ctx.emits[-1].envelope.data
    assert isinstance(nxt, CapacityReservationRequested)
    grant = CapacityReserved(
        request_id=nxt.request_id, shipment_id="shp_1", bucket=nxt.bucket, reserved_at=NOW,
        remaining=3,
    )  # fmt: skip
    STAGE.handle(env(grant, "e5"), ctx)  # type: ignore[arg-type]
    assert ctx.store["shp_1"].facts.tendered is not None  # tendering swift
    ctx.now = NOW + timedelta(seconds=62)
    STAGE.punctuate(ctx)  # type: ignore[arg-type]
    stored = ctx.store["shp_1"]
    assert stored.phase == "failed" and stored.facts.tendered is None
    assert type(ctx.emits[-1].envelope.data).__name__ == "AllocationFailed"


def test_replies_for_unknown_shipments_are_ignored():
    ctx = FakeContext()
    _, first = run_shipment_to_tender()
    req = first[0].envelope.data
    stray = CapacityRefused(
        request_id=req.request_id, shipment_id="shp_other", bucket=req.bucket, refused_at=NOW
    )
    STAGE.handle(env(stray, "e9"), ctx)  # type: ignore[arg-type]
    assert ctx.emits == [] and not ctx.store


def test_buckets_stage_grants_until_full_and_answers_by_shipment():
    stage = BucketsStage(limits=CapacityLimits(default_daily_limit=1))
    ctx = FakeContext()
    _, first = run_shipment_to_tender()
    req = first[0].envelope.data
    assert isinstance(req, CapacityReservationRequested)
    stage.handle(env(req, "r1"), ctx)  # type: ignore[arg-type]
    other = CapacityReservationRequested(
        request_id="cap_x", shipment_id="shp_2", bucket=req.bucket, requested_at=NOW
    )
    stage.handle(env(other, "r2"), ctx)  # type: ignore[arg-type]
    assert [(e.topic, e.key, type(e.envelope.data).__name__) for e in ctx.emits] == [
        (topics.CAPACITY, "shp_1", "CapacityReserved"),
        (topics.CAPACITY, "shp_2", "CapacityRefused"),
    ]
    assert ctx.store[req.bucket.key].held == 1
    assert set(ctx.store) == {req.bucket.key, f"{req.bucket.key}#shp_1"}
    release = CapacityReleaseRequested(
        request_id=req.request_id,
        shipment_id="shp_1",
        bucket=req.bucket,
        requested_at=NOW,
        reason="declined",
    )
    stage.handle(env(release, "r3"), ctx)  # type: ignore[arg-type]
    assert ctx.emits[-1].envelope.data.remaining == 1
    assert set(ctx.store) == {req.bucket.key} and ctx.store[req.bucket.key].held == 0
    stage.handle(env(other, "r4"), ctx)  # type: ignore[arg-type]
    assert type(ctx.emits[-1].envelope.data).__name__ == "CapacityReserved"
