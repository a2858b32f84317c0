"""The stream engine against a real broker: exactly-once effects, DLQ routing, restore."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import Event, ShipmentCancelled
from handoff_events.envelope import Envelope, encode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.api import Context, MsgpackCodec, Rejected, StatefulProcessor
from handoff_events.stream.engine import StreamEngine

from tests.support.streams import produce_raw as _produce
from tests.support.streams import read_topic as _read_all
from tests.support.streams import until

pytestmark = pytest.mark.kafka

SOURCE = topics.INTAKE_SHIPMENTS
OUTPUT = topics.ALLOCATIONS  # any catalogue topic will do as an output in this test
CHANGELOG = "handoff.carrier_allocation.shipments-changelog.v1"


class Tally(msgspec.Struct, frozen=True):
    seen: int
    reasons: list[str]


def cancelled(shipment: str, n: int, reason: str = "ok") -> Envelope[ShipmentCancelled]:
    data = ShipmentCancelled(
        shipment_id=shipment,
        order_id=f"o-{shipment}",
        cancelled_at=datetime(2026, 11, 20, 10, n % 60, tzinfo=UTC),
        reason=reason,
    )
    return new_envelope(data, source="test", tenant_id="acme", id=f"{shipment}-{n}")


def tally_processor(output_emits: bool = True) -> StatefulProcessor[Tally]:
    def handle(env: Envelope[Event], ctx: Context[Tally]) -> None:
        data = env.data
        assert isinstance(data, ShipmentCancelled)
        if data.reason == "reject-me":
            raise Rejected(
                "business_rule", "this record is refused", field="$.reason", value="reject-me"
            )
        if data.reason == "crash-me":
            raise RuntimeError("handler bug")
        old = ctx.store.get(data.shipment_id) or Tally(0, [])
        new = Tally(old.seen + 1, [*old.reasons, data.reason or ""])
        ctx.store.put(data.shipment_id, new)
        if output_emits:
            ctx.emit(
                topics.ALLOCATIONS,
                data.shipment_id,
                new_envelope(data, source="test", tenant_id=env.tenant_id, caused_by=env.id),
            )

    return StatefulProcessor(
        service="carrier_allocation",
        stage="test",
        inputs=[SOURCE],
        changelog=CHANGELOG,
        codec=MsgpackCodec(Tally),
        handle=handle,
    )


async def _settings(kafka_bootstrap: str, unique_name: str) -> ServiceSettings:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3)
    return ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        partitions=3,
        state_dir="/tmp/handoff-test-state/" + unique_name,
    )


async def test_outputs_state_and_dlq_commit_together(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    good = [cancelled(f"s{i % 5}", i) for i in range(20)]
    records = [(e.data.shipment_id, *encode(e)) for e in good[:10]]
    bad_json = ("s1", b"{not json", encode(good[0])[1])
    unknown_type = (
        "s2",
        encode(good[0])[0],
        [(k, b"handoff.nope.v1" if k == "ce_type" else v) for k, v in encode(good[0])[1]],
    )
    missing_id = ("s3", encode(good[0])[0], [(k, v) for k, v in encode(good[0])[1] if k != "ce_id"])
    rejected = ("s4", *encode(cancelled("s4", 99, "reject-me")))
    crashing = ("s0", *encode(cancelled("s0", 98, "crash-me")))
    records += [bad_json, unknown_type, missing_id, rejected, crashing]
    records += [(e.data.shipment_id, *encode(e)) for e in good[10:]]
    await _produce(kafka_bootstrap, names(SOURCE), records)

    engine = StreamEngine(tally_processor(), settings)
    await engine.start()
    try:
        await until(lambda: sum(t.seen for s in engine.stores.values() for t in s.values()) == 20)
        assert engine.ready
    finally:
        await engine.stop()

    outputs = await _read_all(kafka_bootstrap, names(OUTPUT), 20)
    assert len(outputs) == 20
    assert len({dict(r.headers)["ce_id"] for r in outputs}) == 20
    dlq = await _read_all(kafka_bootstrap, names(SOURCE) + ".dlq", 5)
    reasons = sorted(dict(r.headers)["handoff_dlq_reason"].decode() for r in dlq)
    assert reasons == sorted(
        ["invalid_json", "unknown_type", "missing_attribute", "business_rule", "handler_error"]
    )
    by_reason = {dict(r.headers)["handoff_dlq_reason"].decode(): r for r in dlq}
    assert by_reason["invalid_json"].value == b"{not json"  # original bytes kept
    assert dict(by_reason["missing_attribute"].headers)["handoff_dlq_field"] == b"ce_id"
    assert dict(by_reason["business_rule"].headers)["handoff_dlq_value"] == b"reject-me"
    changelog = await _read_all(kafka_bootstrap, names(CHANGELOG), 5)
    latest = {r.key.decode(): msgspec.msgpack.decode(r.value, type=Tally) for r in changelog}
    assert {k: v.seen for k, v in latest.items()} == {f"s{i}": 4 for i in range(5)}


async def test_restart_restores_state_and_processes_each_record_once(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    first = [cancelled(f"s{i % 7}", i) for i in range(70)]
    await _produce(
        kafka_bootstrap, names(SOURCE), [(e.data.shipment_id, *encode(e)) for e in first]
    )
    engine = StreamEngine(tally_processor(), settings)
    await engine.start()
    await until(lambda: sum(t.seen for s in engine.stores.values() for t in s.values()) == 70)
    await engine.stop()

    second = [cancelled(f"s{i % 7}", i) for i in range(70, 140)]
    await _produce(
        kafka_bootstrap, names(SOURCE), [(e.data.shipment_id, *encode(e)) for e in second]
    )
    # A fresh engine (no snapshot: a different state dir) restores from the changelog alone.
    fresh = settings.model_copy(update={"state_dir": settings.state_dir / "elsewhere"})
    engine2 = StreamEngine(tally_processor(), fresh)
    await engine2.start()
    try:
        await until(lambda: sum(t.seen for s in engine2.stores.values() for t in s.values()) == 140)
        merged = {k: v for s in engine2.stores.values() for k, v in s.items()}
        assert {k: v.seen for k, v in merged.items()} == {f"s{i}": 20 for i in range(7)}
    finally:
        await engine2.stop()
    outputs = await _read_all(kafka_bootstrap, names(OUTPUT), 140)
    assert len(outputs) == 140


async def test_empty_changelog_partitions_restore_and_become_ready(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = await _settings(kafka_bootstrap, unique_name)
    engine = StreamEngine(tally_processor(), settings)
    await engine.start()
    try:
        await until(lambda: engine.ready, timeout=30)
        assert sorted(engine.stores) == [0, 1, 2]
        assert all(len(s) == 0 for s in engine.stores.values())
    finally:
        await engine.stop()


async def test_rebalance_hands_partitions_over_without_loss(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    a = StreamEngine(tally_processor(), settings)
    b = StreamEngine(
        tally_processor(), settings.model_copy(update={"state_dir": settings.state_dir / "b"})
    )
    await a.start()
    await b.start()
    await until(
        lambda: a.ready and b.ready and len(a.tasks) + len(b.tasks) == 3,
        what="both instances own tasks",
    )
    assert a.tasks and b.tasks  # the work is really split
    first = [cancelled(f"s{i % 9}", i) for i in range(90)]
    await _produce(
        kafka_bootstrap, names(SOURCE), [(e.data.shipment_id, *encode(e)) for e in first]
    )

    def total(*engines: StreamEngine) -> int:
        return sum(t.seen for e in engines for s in e.stores.values() for t in s.values())

    await until(lambda: total(a, b) == 90, what="90 records folded by two instances")
    await b.stop()  # b leaves the group; a must restore b's partitions from the changelog
    second = [cancelled(f"s{i % 9}", i) for i in range(90, 180)]
    await _produce(
        kafka_bootstrap, names(SOURCE), [(e.data.shipment_id, *encode(e)) for e in second]
    )
    try:
        await until(
            lambda: len(a.tasks) == 3 and total(a) == 180, timeout=60, what="a owns everything"
        )
        merged = {k: v.seen for s in a.stores.values() for k, v in s.items()}
        assert merged == {f"s{i}": 20 for i in range(9)}
    finally:
        await a.stop()
    outputs = await _read_all(kafka_bootstrap, names(OUTPUT), 180)
    assert len({dict(r.headers)["ce_id"] for r in outputs}) == len(outputs) == 180
