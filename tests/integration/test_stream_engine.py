"""The stream engine against a real broker: exactly-once effects, DLQ routing, restore."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from handoff_events import topics
from handoff_events.contracts import Event, ShipmentCancelled
from handoff_events.envelope import Envelope, encode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime import metrics
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.api import Context, MsgpackCodec, Rejected, StatefulProcessor
from handoff_events.stream.changelog import RestoredBatch
from handoff_events.stream.engine import StreamEngine, settled_end

from tests.support.streams import batch_codecs, until
from tests.support.streams import produce_raw as _produce
from tests.support.streams import read_topic as _read_all

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


def tally_stage(
    handle: Callable[[Envelope[Event], Context[Tally]], Any],
) -> StatefulProcessor[Tally]:
    """The test stage over SOURCE with a Tally changelog, around `handle`."""
    return StatefulProcessor(
        service="carrier_allocation",
        stage="test",
        inputs=[SOURCE],
        changelog=CHANGELOG,
        codec=MsgpackCodec(Tally),
        handle=handle,
    )


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

    return tally_stage(handle)


def _seen(engine: StreamEngine[Tally]) -> int:
    """Records the tally stage has counted, over every task's store."""
    return sum(t.seen for s in engine.stores.values() for t in s.values())


def _seen_is(engine: StreamEngine[Tally], count: int) -> Callable[[], bool]:
    return lambda: _seen(engine) == count


def _ready(engine: StreamEngine[Any]) -> Callable[[], bool]:
    return lambda: engine.ready


async def _produce_events(
    bootstrap: str, topic: str, events: list[Envelope[ShipmentCancelled]]
) -> None:
    await _produce(bootstrap, topic, [(e.data.shipment_id, *encode(e)) for e in events])


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
        await until(lambda: _seen(engine) == 20)
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
    await _produce_events(kafka_bootstrap, names(SOURCE), first)
    engine = StreamEngine(tally_processor(), settings)
    await engine.start()
    await until(lambda: _seen(engine) == 70)
    await engine.stop()

    second = [cancelled(f"s{i % 7}", i) for i in range(70, 140)]
    await _produce_events(kafka_bootstrap, names(SOURCE), second)
    # A fresh engine (no snapshot: a different state dir) restores from the changelog alone.
    fresh = settings.model_copy(update={"state_dir": settings.state_dir / "elsewhere"})
    engine2 = StreamEngine(tally_processor(), fresh)
    await engine2.start()
    try:
        await until(lambda: _seen(engine2) == 140)
        merged = {k: v for s in engine2.stores.values() for k, v in s.items()}
        assert {k: v.seen for k, v in merged.items()} == {f"s{i}": 20 for i in range(7)}
    finally:
        await engine2.stop()
    outputs = await _read_all(kafka_bootstrap, names(OUTPUT), 140)
    assert len(outputs) == 140


async def test_a_snapshot_of_a_freshly_restored_store_restores_the_same_state(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A cold start leaves values in their changelog batches; a clean stop right after
    writes those batches into the snapshot, and the next start reads them from it."""
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    await _produce_events(
        kafka_bootstrap, names(SOURCE), [cancelled(f"s{i % 9}", i) for i in range(90)]
    )
    first = StreamEngine(tally_processor(), settings)
    await first.start()
    await until(lambda: _seen(first) == 90)
    await first.stop()
    # Cold start elsewhere (from the changelog), stopped before any value is read.
    cold = settings.model_copy(update={"state_dir": settings.state_dir / "cold"})
    second = StreamEngine(tally_processor(), cold)
    await second.start()
    await until(lambda: second.ready)
    batched = sum(
        type(v) is RestoredBatch for t in second.tasks.values() for v in t.store.committed.values()
    )
    await second.stop()
    snapshots = list((cold.state_dir / second.group_id).glob("*.snapshot"))

    await _produce_events(
        kafka_bootstrap, names(SOURCE), [cancelled(f"s{i % 9}", i) for i in range(90, 99)]
    )
    third = StreamEngine(tally_processor(), cold)
    await third.start()
    try:
        await until(lambda: _seen(third) == 99)
        merged = {k: v for s in third.stores.values() for k, v in s.items()}
        assert {k: v.seen for k, v in merged.items()} == {f"s{i}": 11 for i in range(9)}
    finally:
        await third.stop()
    assert batched == 9, "the cold start must have left every value in its batch"
    assert snapshots, "the clean stop must have written snapshots"


async def test_a_bounded_store_packs_cold_states_and_folds_and_restores_them_unchanged(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """With room for two unpacked states per task, thirty shipments' tallies are packed
    back into record batches after every commit and read back for their next events;
    the counts, a clean stop's snapshot and a cold start from the changelog all agree
    with an unbounded run."""
    settings = await _settings(kafka_bootstrap, unique_name)
    bounded = settings.model_copy(update={"store_unpacked_max": 6})  # 3 tasks: 2 each
    names = topics.Names(settings.topic_prefix)
    packed = metrics.STORE_PACKED.labels("carrier_allocation", "test")
    packed_before = packed._value.get()
    waves = [[cancelled(f"s{i}", n * 30 + i, f"r{n}") for i in range(30)] for n in range(4)]

    def unpacked(engine: StreamEngine[Tally]) -> int:
        return sum(t.store.unpacked for t in engine.tasks.values())

    engine = StreamEngine(tally_processor(output_emits=False), bounded)
    await engine.start()
    try:
        for n, wave in enumerate(waves):
            await _produce_events(kafka_bootstrap, names(SOURCE), wave)
            await until(_seen_is(engine, 31 * n + 30))  # decodes every state...
            await _produce_events(kafka_bootstrap, names(SOURCE), [cancelled("s0", 1000 + n, "x")])
            await until(lambda: unpacked(engine) <= 6, what="...and a commit packs them again")
            kinds = [type(v) for t in engine.tasks.values() for v in t.store.committed.values()]
            assert kinds.count(RestoredBatch) >= 24
        merged = {k: v for s in engine.stores.values() for k, v in s.items()}
    finally:
        await engine.stop()

    expected = {f"s{i}": [f"r{n}" for n in range(4)] for i in range(30)}
    expected["s0"] = [r for n in range(4) for r in (f"r{n}", "x")]
    assert {k: v.reasons for k, v in merged.items()} == expected
    assert packed._value.get() - packed_before >= 4 * 24
    for state_dir in ("", "cold"):  # the clean stop's snapshot, then the changelog alone
        again_settings = settings.model_copy(update={"state_dir": settings.state_dir / state_dir})
        again = StreamEngine(tally_processor(output_emits=False), again_settings)
        await again.start()
        try:
            await until(_ready(again))
            restored = {k: v for s in again.stores.values() for k, v in s.items()}
        finally:
            await again.stop()
        assert {k: v.reasons for k, v in restored.items()} == expected, state_dir or "snapshot"


async def test_a_snapshot_written_after_another_owner_took_over_keeps_that_owners_states(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A member dropped from its group (a missed session) runs its revoke only when it
    rejoins, after the group gave its tasks to another member, which may already have
    written newer states to the changelog. The snapshot that revoke writes holds this
    member's older states; stamped with the changelog's end at that moment, the next
    open from it would skip the other owner's states: a lost update (late revokes show in
    the long chaos run's logs). Stamped with the offset its store holds everything below,
    the open replays them. The other owner's write is produced here directly, and the revoke is
    the engine's own callback, called as aiokafka calls it when the member rejoins."""
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    await _produce_events(
        kafka_bootstrap, names(SOURCE), [cancelled(f"s{i % 3}", i) for i in range(9)]
    )
    first = StreamEngine(tally_processor(output_emits=False), settings)
    await first.start()
    try:
        await until(lambda: _seen(first) == 9)
        # Another owner's commit: a newer state of s1 (a real owner writes it in a
        # transaction; read_committed reads this plain record the same way).
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(
                names(CHANGELOG),
                msgspec.msgpack.encode(Tally(100, ["other owner"])),
                key=b"s1",
            )
        finally:
            await producer.stop()
        await first._on_revoked(  # the late revoke writes this member's snapshot
            [TopicPartition(names(SOURCE), sent.partition)]
        )
        assert (first._snapshot_dir / f"{sent.partition}.snapshot").exists()
    finally:
        await first.stop()

    again = StreamEngine(tally_processor(output_emits=False), settings)  # same state dir
    await again.start()
    try:
        await until(lambda: again.ready)
        assert not (again._snapshot_dir / f"{sent.partition}.snapshot").exists(), "not read"
        assert again.stores[sent.partition]["s1"] == Tally(100, ["other owner"])
    finally:
        await again.stop()


async def test_a_task_reader_has_its_topics_metadata_before_its_first_offset_request(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A fresh client's first offset request for a topic it has no metadata of fails as
    stale and sleeps retry_backoff_ms (100 ms) before it asks again; a task open made
    two or three such requests in a row (~250 ms for an empty store, now ~90 ms)."""
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    engine = StreamEngine(tally_processor(), settings)
    wanted = [names(CHANGELOG), names(SOURCE)]
    reader = await engine._open_reader(wanted, "read_uncommitted")
    try:
        cluster = reader._client.cluster
        assert all(cluster.leader_for_partition(TopicPartition(t, 2)) is not None for t in wanted)
    finally:
        await reader.stop()


async def test_a_clean_stop_never_commits_past_records_it_fetched_but_did_not_handle(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A stop finishes the batch in flight and drops what was only queued; a stage with a
    timer then runs one last batch, and a task with nothing queued commits the consumer's
    position there (past commit markers). The dropped records were below that position:
    committed, never handled, lost (the chaos scaling run, 2026-11-22: two rates.quoted
    events missing from the fold after a scale-in). Here the first record's handler is
    held past the idle check while more records are queued behind it, then the stage stops;
    the next instance must handle every record."""
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    holding = asyncio.Event()
    plain = tally_processor(output_emits=False).handle

    async def handle(env: Envelope[Event], ctx: Context[Tally]) -> None:
        data = env.data
        assert isinstance(data, ShipmentCancelled)
        if data.reason == "hold":
            holding.set()
            await asyncio.sleep(2.5)  # past the engine's idle check (2 s)
        plain(env, ctx)

    timed = dataclasses.replace(
        tally_stage(handle), punctuate=lambda ctx: None, punctuate_every_s=3600.0
    )
    first = StreamEngine(timed, settings)
    await first.start()
    try:
        await until(lambda: first.ready)
        await _produce_events(kafka_bootstrap, names(SOURCE), [cancelled("s0", 0, "hold")])
        await asyncio.wait_for(holding.wait(), 30)
        behind = [cancelled("s0", i) for i in range(1, 21)]  # same key: same task, queued
        await _produce_events(kafka_bootstrap, names(SOURCE), behind)
        await until(lambda: sum(len(t.pending) for t in first.tasks.values()) == 20)
    finally:
        await first.stop()

    again = StreamEngine(tally_processor(output_emits=False), settings)
    await again.start()
    try:
        await until(lambda: _seen(again) == 21, timeout=20, what="every record handled")
    finally:
        await again.stop()


@pytest.mark.parametrize(("compression", "codec"), [("zstd", 4), ("none", 0)])
async def test_every_batch_the_engine_writes_is_compressed_as_configured(
    kafka_bootstrap: str, unique_name: str, compression: str, codec: int
) -> None:
    """Outputs and changelog are written with HANDOFF_KAFKA_COMPRESSION_TYPE (decision
    0007), and a fresh engine restores from the compressed changelog."""
    settings = (await _settings(kafka_bootstrap, unique_name)).model_copy(
        update={"kafka_compression_type": compression}
    )
    names = topics.Names(settings.topic_prefix)
    events = [cancelled(f"s{i % 4}", i) for i in range(40)]
    await _produce_events(kafka_bootstrap, names(SOURCE), events)
    engine = StreamEngine(tally_processor(), settings)
    await engine.start()
    try:
        await until(lambda: _seen(engine) == 40)
    finally:
        await engine.stop()
    for topic in (OUTPUT, CHANGELOG):
        found = await batch_codecs(kafka_bootstrap, names(topic), settings.partitions)
        assert set(found) == {codec}, (topic, found)

    fresh = settings.model_copy(update={"state_dir": settings.state_dir / "elsewhere"})
    engine2 = StreamEngine(tally_processor(), fresh)
    await engine2.start()
    try:
        await until(lambda: engine2.ready)
        merged = {k: v for s in engine2.stores.values() for k, v in s.items()}
        assert {k: v.seen for k, v in merged.items()} == {f"s{i}": 10 for i in range(4)}
    finally:
        await engine2.stop()


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
    await _produce_events(kafka_bootstrap, names(SOURCE), first)

    def total(*engines: StreamEngine[Tally]) -> int:
        return sum(_seen(e) for e in engines)

    await until(lambda: total(a, b) == 90, what="90 records folded by two instances")
    await b.stop()  # b leaves the group; a must restore b's partitions from the changelog
    second = [cancelled(f"s{i % 9}", i) for i in range(90, 180)]
    await _produce_events(kafka_bootstrap, names(SOURCE), second)
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


class Deadline(msgspec.Struct, frozen=True):
    due: datetime | None
    fired: int = 0


async def test_timer_gets_only_due_values_and_the_index_survives_a_restart(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A processor with `due`: each tick hands over only the values whose time has come,
    each once; after a restart the index comes back from the changelog header (the timer
    still fires exactly the ones due, without the store being scanned)."""
    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    now = {"t": datetime(2027, 1, 1, 12, 0, tzinfo=UTC)}
    seen: list[list[str]] = []

    def handle(env: Envelope[Event], ctx: Context[Deadline]) -> None:
        data = env.data
        assert isinstance(data, ShipmentCancelled)
        minute = data.cancelled_at.minute  # minutes after now["t"] it falls due
        ctx.store.put(data.shipment_id, Deadline(now["t"].replace(minute=minute)))

    def tick(ctx: Context[Deadline]) -> None:
        due = ctx.due()
        if due:
            seen.append(sorted(key for key, _ in due))
        for key, value in due:
            ctx.store.put(key, Deadline(None, value.fired + 1))

    def processor() -> StatefulProcessor[Deadline]:
        return StatefulProcessor(
            service="carrier_allocation",
            stage="test",
            inputs=[SOURCE],
            changelog=CHANGELOG,
            codec=MsgpackCodec(Deadline),
            handle=handle,
            punctuate=tick,
            punctuate_every_s=0.1,
            due=lambda d: d.due,
        )

    events = [cancelled(f"s{i}", 10 + i) for i in range(6)]  # due at 12:10 .. 12:15
    await _produce_events(kafka_bootstrap, names(SOURCE), events)
    engine = StreamEngine(processor(), settings, clock=lambda: now["t"])
    await engine.start()
    try:
        await until(lambda: sum(len(s) for s in engine.stores.values()) == 6, 60)
        now["t"] = datetime(2027, 1, 1, 12, 11, 30, tzinfo=UTC)
        await until(lambda: sum(len(b) for b in seen) == 2, 60, what="s0, s1 fired")
    finally:
        await engine.stop()
    assert sorted(k for batch in seen for k in batch) == ["s0", "s1"]

    # A cold start (no snapshot): the index is rebuilt from the changelog headers.
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    seen.clear()
    now["t"] = datetime(2027, 1, 1, 12, 13, 30, tzinfo=UTC)
    engine = StreamEngine(processor(), settings, clock=lambda: now["t"])
    await engine.start()
    try:
        await until(lambda: sum(len(b) for b in seen) == 2, 60, what="s2, s3 fired after restart")
        # The tick's writes are visible once its transaction committed.
        await until(
            lambda: sum(v.fired for s in engine.stores.values() for v in s.values()) == 4, 60
        )
        fired = {
            key: value.fired for store in engine.stores.values() for key, value in store.items()
        }
    finally:
        await engine.stop()
    assert sorted(k for batch in seen for k in batch) == ["s2", "s3"]
    assert fired == {"s0": 1, "s1": 1, "s2": 1, "s3": 1, "s4": 0, "s5": 0}


async def test_idle_partitions_commit_past_the_upstream_commit_marker(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """Input written in transactions ends with a commit marker the handler never sees; the
    group's committed offsets must still reach the log end once the task is idle (no
    phantom lag of one per partition for monitoring and KEDA)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    settings = await _settings(kafka_bootstrap, unique_name)
    names = topics.Names(settings.topic_prefix)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{unique_name}-upstream"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(9):
                value, headers = encode(cancelled(f"s{i}", i))
                await producer.send(
                    names(SOURCE), value, key=f"s{i}".encode(), headers=headers, partition=i % 3
                )
    finally:
        await producer.stop()
    engine = StreamEngine(tally_processor(output_emits=False), settings)
    await engine.start()
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=engine.group_id)
    await probe.start()
    partitions = [TopicPartition(names(SOURCE), p) for p in range(3)]
    try:
        ends = await probe.end_offsets(partitions)
        assert all(ends[tp] == 4 for tp in partitions)  # 3 records + the commit marker

        async def committed() -> dict[TopicPartition, int | None]:
            return {tp: await probe.committed(tp) for tp in partitions}

        deadline = asyncio.get_running_loop().time() + 30
        while await committed() != ends:
            assert asyncio.get_running_loop().time() < deadline, await committed()
            await asyncio.sleep(0.5)
    finally:
        await probe.stop()
        await engine.stop()


async def test_a_wedged_task_fails_the_stage_even_with_its_records_already_fetched(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """The watchdog must see a task that stopped finishing batches although its records
    were fetched into its queue (the fetch position then shows no lag)."""
    settings = await _settings(kafka_bootstrap, unique_name)
    settings = settings.model_copy(update={"stall_timeout_s": 3.0})
    names = topics.Names(settings.topic_prefix)
    release = asyncio.Event()

    async def handle(env: Envelope[Event], ctx: Context[Tally]) -> None:
        await release.wait()  # a handler stuck on something that never answers

    processor = tally_stage(handle)
    events = [cancelled("s0", i) for i in range(5)]
    await _produce(kafka_bootstrap, names(SOURCE), [("s0", *encode(e)) for e in events])
    engine = StreamEngine(processor, settings)
    await engine.start()
    try:
        await asyncio.wait_for(engine.failure.wait(), 60)
        assert "finished no batch" in repr(engine.error) or "no progress" in repr(engine.error)
    finally:
        release.set()
        await engine.stop()


async def test_a_restore_waits_for_a_transaction_already_in_the_changelog_to_end(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """The previous owner's last transaction may be committed (its input offsets stable)
    before its marker reaches the changelog partition: restoring to the stable offset of
    that moment would miss its states. The restore reads to the stable offset only once
    it has reached the log end it saw first."""
    settings = await _settings(kafka_bootstrap, unique_name)
    changelog = settings.topic_prefix + CHANGELOG
    value, headers = MsgpackCodec(Tally).encode("shp-late", Tally(7, ["before the restore"]))
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{unique_name}-previous-owner"
    )
    await producer.start()
    engine = StreamEngine(tally_processor(), settings)
    try:
        await producer.begin_transaction()
        await (
            await producer.send(
                changelog, value, key=b"shp-late", partition=0, headers=list(headers)
            )
        )
        await engine.start()
        await until(lambda: 0 in engine.tasks, timeout=60)
        await asyncio.sleep(1.0)  # the restore has asked for the changelog's end by now
        assert not engine.ready
        await producer.commit_transaction()
        await until(lambda: engine.ready, timeout=60)
        assert engine.stores[0]["shp-late"] == Tally(7, ["before the restore"])
    finally:
        await engine.stop()
        await producer.stop()


async def test_a_settled_end_is_the_stable_offset_once_it_reaches_the_log_end() -> None:
    seen = iter([5, 5, 8, 10, 12])

    async def stable() -> int:
        return next(seen)

    assert await settled_end(stable, 10, within_s=5.0, what="t[0]", poll_s=0.001) == 10
    # A transaction that never ends (a hanging one): the last stable offset after the bound.
    assert await settled_end(lambda: asyncio.sleep(0, 5), 10, within_s=0.01, what="t[0]") == 5


async def test_an_idle_stage_answers_a_new_record_long_before_its_long_poll_ends(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """`fetch_max_wait_ms` only spaces out an idle consumer's fetches: the broker answers
    a long poll as soon as one of its partitions has a committed record. A stage that
    waited the poll out would take ~8 s here (and in production, half a second a hop)."""
    settings = (await _settings(kafka_bootstrap, unique_name)).model_copy(
        update={"fetch_max_wait_ms": 8_000}
    )
    names = topics.Names(settings.topic_prefix)
    await _produce_events(kafka_bootstrap, names(SOURCE), [cancelled("s1", 1)])
    engine = StreamEngine(tally_processor(), settings)
    await engine.start()
    try:
        await until(lambda: _seen(engine) == 1, what="the first record")
        await asyncio.sleep(1.0)  # idle now: every partition's long poll is in flight
        started = asyncio.get_running_loop().time()
        await _produce_events(kafka_bootstrap, names(SOURCE), [cancelled("s2", 2)])
        await until(lambda: _seen(engine) == 2, timeout=8.0, what="the second record")
        waited = asyncio.get_running_loop().time() - started
    finally:
        await engine.stop()
    assert waited < 3.0, f"the record waited {waited:.1f} s for the long poll to end"
