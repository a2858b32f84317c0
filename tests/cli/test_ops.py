"""The operator commands against the real broker: tail, shipment events, dlq list/drain, state rebuild.

Each test provisions the catalogue under its own prefix and calls `handoff`'s
`main()` in-process (the same argv an operator types).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from handoff_events import topics
from handoff_events.cli import main
from handoff_events.contracts import UPDATE_TYPES, ShipmentState
from handoff_events.envelope import encode, new_envelope
from handoff_events.examples import EXAMPLES, SHIPMENT_ID
from handoff_events.provision import provision

pytestmark = pytest.mark.kafka
SOURCE = topics.INTAKE_SHIPMENTS
DLQ = SOURCE + ".dlq"


def handoff(
    capsys: pytest.CaptureFixture[str], bootstrap: str, prefix: str, *argv: str
) -> tuple[int, str, str]:
    code = main(["--bootstrap", bootstrap, "--prefix", prefix, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def setup_topics(bootstrap: str, prefix: str) -> None:
    asyncio.run(provision(bootstrap, prefix=prefix, partitions=3, replication_factor=1))


async def _produce(
    bootstrap: str,
    records: Sequence[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def produce(
    bootstrap: str, *records: tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]
) -> None:
    asyncio.run(_produce(bootstrap, records))


def updates(
    prefix: str, shipment_id: str, milestones: Sequence[str]
) -> list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    out = []
    for i, milestone in enumerate(milestones):
        data = EXAMPLES[UPDATE_TYPES[milestone]]
        env = new_envelope(
            data,
            source="handoff/tracking",
            tenant_id="acme",
            id=f"u{i}",
            type=UPDATE_TYPES[milestone],
            time=datetime(2026, 11, 21, 8, i, tzinfo=UTC),
        )
        value, headers = encode(env)
        out.append((prefix + topics.UPDATES, shipment_id.encode(), value, headers))
    return out


def test_tail_decodes_records(
    kafka_bootstrap: str, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"{unique_name}."
    setup_topics(kafka_bootstrap, prefix)
    produce(
        kafka_bootstrap,
        *updates(prefix, SHIPMENT_ID, ["allocated", "status_changed", "delivered"]),
        (prefix + topics.UPDATES, b"other", b"{not json", [("ce_type", b"handoff.x.v1")]),
    )

    code, out, err = handoff(
        capsys, kafka_bootstrap, prefix, "tail", topics.UPDATES, "--from-beginning"
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    allocated = next(line for line in lines if "update.allocated" in line)
    assert allocated.startswith("2026-11-21T08:00:00Z  handoff.shipment.update.allocated.v1")
    assert f"key={SHIPMENT_ID}" in allocated and "tenant=acme" in allocated
    assert '"milestone":"allocated"' in allocated
    assert any("!" in line and "key=other" in line for line in lines)  # undecodable, still shown
    assert "4 record(s)" in err

    code, out, _ = handoff(
        capsys,
        kafka_bootstrap,
        prefix,
        "tail",
        topics.UPDATES,
        "--from-beginning",
        "--key",
        SHIPMENT_ID,
        "--limit",
        "2",
    )
    assert code == 0
    assert len(out.splitlines()) == 2
    assert all(f"key={SHIPMENT_ID}" in line for line in out.splitlines())

    with pytest.raises(SystemExit, match="did you mean"):
        handoff(capsys, kafka_bootstrap, prefix, "tail", "handoff.shipments.update.v1")


def test_shipment_events_prints_state_history_and_updates(
    kafka_bootstrap: str, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"{unique_name}."
    setup_topics(kafka_bootstrap, prefix)
    state = EXAMPLES[ShipmentState.ce_type]
    assert isinstance(state, ShipmentState)
    value, headers = encode(
        new_envelope(
            state, source="handoff/tracking", tenant_id="acme", id="s1", time=state.updated_at
        )
    )
    produce(
        kafka_bootstrap,
        (prefix + topics.STATE, SHIPMENT_ID.encode(), value, headers),
        *updates(prefix, SHIPMENT_ID, ["allocated", "status_changed"]),
    )

    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "shipment", "events", SHIPMENT_ID)
    assert code == 0
    assert f"shipment {SHIPMENT_ID}" in out
    assert "status     out_for_delivery" in out
    assert "history (1 events" in out
    assert (
        "out_for_delivery" in out and "handoff.tracking.observed.v1" in out and "from swift" in out
    )
    assert f"updates on {topics.UPDATES} (2)" in out

    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "shipment", "events", "shp_missing")
    assert code == 1
    assert "no state for shp_missing" in out


def _dead_letter(
    prefix: str, n: int, reason: str
) -> tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]:
    original = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"evt-{n}".encode()),
        ("ce_type", b"handoff.shipment.requested.v1"),
    ]
    annotations = [
        ("handoff_dlq_reason", reason.encode()),
        ("handoff_dlq_message", b"field weight_g must be > 0"),
        ("handoff_dlq_topic", (prefix + SOURCE).encode()),
        ("handoff_dlq_partition", b"0"),
        ("handoff_dlq_offset", str(n).encode()),
        ("handoff_dlq_service", b"rate_shopping"),
        ("handoff_dlq_field", b"$.parcels[0].weight_g"),
        ("handoff_dlq_value", b"-5"),
    ]
    return (prefix + DLQ, f"shp_{n}".encode(), f'{{"n": {n}}}'.encode(), original + annotations)


def test_dlq_drain_moves_records_back_once(
    kafka_bootstrap: str, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"{unique_name}."
    setup_topics(kafka_bootstrap, prefix)
    produce(
        kafka_bootstrap,
        _dead_letter(prefix, 1, "schema_violation"),
        _dead_letter(prefix, 2, "unknown_type"),
        _dead_letter(prefix, 3, "schema_violation"),
    )

    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "dlq", "list", SOURCE)
    assert code == 0
    assert "reason=schema_violation  field=$.parcels[0].weight_g  value=-5" in out
    assert "3 dead letter(s), 3 pending: 2 schema_violation, 1 unknown_type" in out

    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "dlq", "drain", DLQ, "--dry-run")
    assert "dry run: 3 to re-publish" in out
    assert read_all_sync(kafka_bootstrap, prefix + SOURCE) == []

    # Only one reason: records 1 and 3 go back, 2 stays for later.
    code, out, _ = handoff(
        capsys,
        kafka_bootstrap,
        prefix,
        "dlq",
        "drain",
        SOURCE,
        "--filter-reason",
        "schema_violation",
    )
    assert code == 0
    assert "re-published 2 record(s)" in out and "1 kept back by the filter" in out
    back = read_all_sync(kafka_bootstrap, prefix + SOURCE)
    assert sorted(v for _, v, _ in back) == [b'{"n": 1}', b'{"n": 3}']
    for key, _, headers in back:
        assert key in (b"shp_1", b"shp_3")
        names = [h for h, _ in headers]
        assert names == ["ce_specversion", "ce_id", "ce_type"]  # original headers, no handoff_dlq_*

    code, out, _ = handoff(
        capsys,
        kafka_bootstrap,
        prefix,
        "dlq",
        "drain",
        SOURCE,
        "--filter-reason",
        "schema_violation",
    )
    assert "re-published 0 record(s)" in out and "2 drained before" in out

    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "dlq", "drain", SOURCE)
    assert "re-published 1 record(s)" in out
    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "dlq", "drain", SOURCE)
    assert "re-published 0 record(s)" in out and "3 drained before" in out
    assert len(read_all_sync(kafka_bootstrap, prefix + SOURCE)) == 3

    code, out, _ = handoff(capsys, kafka_bootstrap, prefix, "dlq", "list", SOURCE)
    assert "3 dead letter(s), 0 pending" in out


def read_all_sync(
    bootstrap: str, topic: str
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    async def run() -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            parts = sorted(
                (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic)
            )
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            out = []
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                for batch in (await consumer.getmany(*tps, timeout_ms=500)).values():
                    out.extend((r.key, r.value, list(r.headers)) for r in batch)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_state_rebuild_refuses_a_running_service_then_resets_a_stopped_one(
    kafka_bootstrap: str, unique_name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    setup_topics(kafka_bootstrap, prefix)
    group = f"{prefix}handoff.tracking.fold"
    topic = prefix + topics.OBSERVATIONS
    produce(kafka_bootstrap, *[(topic, f"k{i}".encode(), b"{}", []) for i in range(6)])
    snapshot = tmp_path / group
    snapshot.mkdir()
    (snapshot / "0.snapshot").write_bytes(b"old")

    async def member_joins_and_commits() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        deadline = asyncio.get_running_loop().time() + 30
        while len(consumer.assignment()) < 3:
            await consumer.getmany(timeout_ms=200)
            assert asyncio.get_running_loop().time() < deadline
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)
        await consumer.commit()
        return consumer

    async def while_running() -> tuple[int, str]:
        consumer = await member_joins_and_commits()
        try:
            code = await asyncio.to_thread(
                main,
                [
                    "--bootstrap",
                    kafka_bootstrap,
                    "--prefix",
                    prefix,
                    "state",
                    "rebuild",
                    "--service",
                    "tracking",
                    "--stage",
                    "fold",
                    "--state-dir",
                    str(tmp_path),
                ],
            )
            return code, ""
        finally:
            await consumer.stop()

    code, _ = asyncio.run(while_running())
    out, _ = capsys.readouterr()
    assert code == 3 and "refusing" in out
    assert snapshot.exists()

    code, out, err = handoff(
        capsys,
        kafka_bootstrap,
        prefix,
        "state",
        "rebuild",
        "--service",
        "tracking",
        "--stage",
        "fold",
        "--state-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert "reset 3 partition(s) to the earliest offsets" in err
    assert not snapshot.exists()

    async def committed() -> dict[int, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(3)}
        finally:
            await consumer.stop()

    assert asyncio.run(committed()) == {0: 0, 1: 0, 2: 0}


def test_replay_copies_a_time_range_into_another_topic(
    kafka_bootstrap: str, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"{unique_name}."
    setup_topics(kafka_bootstrap, prefix)
    t0 = int(datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp() * 1000)

    async def produce_at() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(4):  # 08:00, 09:00, 10:00, 11:00
                await producer.send_and_wait(
                    prefix + topics.OBSERVATIONS,
                    f"v{i}".encode(),
                    key=f"k{i}".encode(),
                    headers=[("ce_id", f"e{i}".encode())],
                    timestamp_ms=t0 + i * 3_600_000,
                )
        finally:
            await producer.stop()

    asyncio.run(produce_at())
    code, out, _ = handoff(
        capsys,
        kafka_bootstrap,
        prefix,
        "replay",
        topics.OBSERVATIONS,
        "--from-datetime",
        "2026-11-20T09:00:00Z",
        "--to-datetime",
        "2026-11-20T11:00:00Z",
        "--to-topic",
        topics.UPDATES,
    )
    assert code == 0
    assert "copied 2 record(s)" in out
    copied = read_all_sync(kafka_bootstrap, prefix + topics.UPDATES)
    assert sorted((k, v) for k, v, _ in copied) == [(b"k1", b"v1"), (b"k2", b"v2")]
    assert all(h == [("ce_id", k.replace(b"k", b"e"))] for k, _, h in copied if k)
