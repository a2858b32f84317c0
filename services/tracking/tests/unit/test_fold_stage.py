"""The fold and KPI handlers against an in-memory context (no broker), and the state codec."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    KpiContribution,
    KpiSnapshot,
    ShipmentState,
    ShipmentUpdate,
    TrackingNumberAssigned,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.stream.api import Emit, Rejected
from handoff_tracking.adapters.state_codec import ShipmentStateCodec
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.domain.kpis import KpiBucket
from handoff_tracking.handlers import FoldStage, handle_kpi

from services.tracking.tests.fold_factories import (
    SHIPMENT,
    allocated,
    at,
    observed,
    requested,
)

S = TypeVar("S")


@dataclass
class FakeStore(Generic[S]):
    data: dict[str, S] = field(default_factory=dict)

    def get(self, key: str) -> S | None:
        return self.data.get(key)

    def put(self, key: str, value: S) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, S]]:
        return iter(list(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class FakeContext(Generic[S]):
    now: datetime
    store: FakeStore[S] = field(default_factory=FakeStore)
    emits: list[Emit] = field(default_factory=list)
    partition: int = 0
    topic: str = ""
    offset: int = 0
    key: str | None = None

    def emit(self, topic: str, key: str, envelope: Envelope[Any]) -> None:
        assert topic in topics.BY_NAME
        self.emits.append(Emit(topic, key, envelope))

    def due(self) -> list[tuple[str, S]]:
        """Every stored value (a superset of what the engine's due index hands over)."""
        return list(self.store.items())

    def on(self, topic: str) -> list[Emit]:
        return [e for e in self.emits if e.topic == topic]


def env(data: Event, ce_id: str, tenant: str = "acme") -> Envelope[Event]:
    return new_envelope(data, source="test", tenant_id=tenant, id=ce_id, time=at(0))


STAGE = FoldStage(ExceptionPolicy(stuck_after=timedelta(hours=48)))


def test_allocation_assigns_the_tracking_number_and_announces() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(5))
    STAGE.handle(env(requested(), "req"), ctx)  # type: ignore[arg-type]
    STAGE.handle(env(allocated(), "alc"), ctx)  # type: ignore[arg-type]
    (row,) = ctx.on(topics.TRACKING_NUMBERS)
    assert row.key == "swift/SW123456789"
    assert isinstance(row.envelope.data, TrackingNumberAssigned)
    assert row.envelope.data.shipment_id == SHIPMENT
    updates = ctx.on(topics.UPDATES)
    assert [u.envelope.type for u in updates] == [
        "handoff.shipment.update.requested.v1",
        "handoff.shipment.update.allocated.v1",
    ]
    assert all(u.envelope.id == u.envelope.data.update_id for u in updates)


def test_a_redelivered_input_emits_and_writes_nothing() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(5))
    STAGE.handle(env(allocated(), "alc"), ctx)  # type: ignore[arg-type]
    state = ctx.store.get(SHIPMENT)
    emitted = len(ctx.emits)
    STAGE.handle(env(allocated(), "alc"), ctx)  # type: ignore[arg-type]
    assert len(ctx.emits) == emitted
    assert ctx.store.get(SHIPMENT) is state


def test_another_tenants_event_goes_to_the_dlq() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(5))
    STAGE.handle(env(requested(), "req"), ctx)  # type: ignore[arg-type]
    with pytest.raises(Rejected) as rejected:
        STAGE.handle(env(observed("picked_up", 10), "obs", tenant="globex"), ctx)  # type: ignore[arg-type]
    assert rejected.value.reason == "tenant_mismatch"


def test_delivery_sends_a_kpi_contribution_and_the_kpi_stage_aggregates_it() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(700))
    for n, event in enumerate(
        [requested(), allocated(), observed("picked_up", 10), observed("delivered", 610)]
    ):
        STAGE.handle(env(event, f"in-{n}"), ctx)  # type: ignore[arg-type]
    (sent,) = ctx.on(topics.KPI_CONTRIBUTIONS)
    contribution = sent.envelope.data
    assert isinstance(contribution, KpiContribution)
    assert sent.key == contribution.kpi_key == "swift/DE-10>DE-80/acme/2026-11-20"

    kctx: FakeContext[KpiBucket] = FakeContext(now=at(700))
    handle_kpi(sent.envelope, kctx)  # type: ignore[arg-type]
    handle_kpi(sent.envelope, kctx)  # type: ignore[arg-type]  # a retry changes nothing
    (published,) = kctx.on(topics.KPIS)
    snapshot = published.envelope.data
    assert isinstance(snapshot, KpiSnapshot)
    assert snapshot.shipments_delivered == 1 and snapshot.delivered_on_time == 1
    assert snapshot.transit_hours_p90 == 10.0


def test_timer_reports_a_stuck_shipment_once() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(20))
    STAGE.handle(env(allocated(), "alc"), ctx)  # type: ignore[arg-type]
    STAGE.handle(env(observed("picked_up", 10), "obs"), ctx)  # type: ignore[arg-type]
    ctx.emits.clear()
    ctx.now = at(10) + timedelta(hours=49)
    STAGE.punctuate(ctx)  # type: ignore[arg-type]
    STAGE.punctuate(ctx)  # type: ignore[arg-type]
    updates = [e.envelope.data for e in ctx.on(topics.UPDATES)]
    assert len(updates) == 1
    assert isinstance(updates[0], ShipmentUpdate)
    assert updates[0].exception is not None and updates[0].exception.kind == "stuck"


def test_state_codec_is_cloudevents_binary_with_a_deterministic_id() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(5))
    STAGE.handle(env(allocated(), "alc"), ctx)  # type: ignore[arg-type]
    state = ctx.store.get(SHIPMENT)
    assert state is not None
    codec = ShipmentStateCodec()
    value, headers = codec.encode(SHIPMENT, state)
    again, _ = codec.encode(SHIPMENT, state)
    assert value == again
    attrs = dict(headers)
    assert attrs["ce_type"] == b"handoff.shipment.state.v1"
    assert attrs["ce_subject"] == SHIPMENT.encode()
    assert attrs["content-type"] == b"application/json"
    assert attrs["ce_id"] == dict(codec.encode(SHIPMENT, state)[1])["ce_id"]
    decoded = codec.decode(value, list(headers))
    assert msgspec.json.encode(decoded) == msgspec.json.encode(state)


def test_an_earlier_delivery_scan_moves_the_kpi_contribution_to_its_day() -> None:
    ctx: FakeContext[ShipmentState] = FakeContext(now=at(3000))
    for n, event in enumerate(
        [allocated(), observed("picked_up", 10), observed("delivered", 60 * 17)]
    ):
        STAGE.handle(env(event, f"in-{n}"), ctx)  # type: ignore[arg-type]
    # Another delivery scan, time-stamped the day before the first one (UTC), arrives late.
    STAGE.handle(env(observed("delivered", 60 * 15, carrier_event_id="dlv-early"), "late"), ctx)  # type: ignore[arg-type]
    sent = [e.envelope.data for e in ctx.on(topics.KPI_CONTRIBUTIONS)]
    assert [(c.kpi_key[-10:], c.retract) for c in sent] == [  # type: ignore[union-attr]
        ("2026-11-21", False),
        ("2026-11-21", True),
        ("2026-11-20", False),
    ]
    kctx: FakeContext[KpiBucket] = FakeContext(now=at(3000))
    for item in ctx.on(topics.KPI_CONTRIBUTIONS):
        handle_kpi(item.envelope, kctx)  # type: ignore[arg-type]
    latest = {e.key: e.envelope.data for e in kctx.on(topics.KPIS)}
    assert {k[-10:]: s.shipments_delivered for k, s in latest.items()} == {  # type: ignore[union-attr]
        "2026-11-21": 0,
        "2026-11-20": 1,
    }
