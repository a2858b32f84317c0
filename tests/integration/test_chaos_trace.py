"""The chaos oracle's trace of a mismatch on a real broker: for each history entry only one
side has, it names the input record behind it and whether a read_committed reader sees it,
so a leaked aborted record, a cut-short oracle read and an entry with no input at all read
differently in a failed run's report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from handoff_events import topics
from handoff_events.contracts import CarrierAllocated
from handoff_events.envelope import encode, new_envelope
from handoff_events.examples import example
from handoff_events.provision import provision
from handoff_events.topics import Names

from chaos.harness import trace_entries

pytestmark = pytest.mark.kafka


async def test_the_trace_tells_committed_aborted_and_missing_inputs_apart(
    kafka_bootstrap: str, unique_name: str
) -> None:
    prefix = f"{unique_name}."
    await provision(
        kafka_bootstrap,
        prefix=prefix,
        partitions=1,
        topics=[t for t in topics.CATALOGUE if t.name == topics.ALLOCATIONS],
    )
    allocated = example(CarrierAllocated.ce_type)
    assert isinstance(allocated, CarrierAllocated)
    time = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

    def record(event_id: str) -> tuple[bytes, list[tuple[str, bytes]]]:
        env = new_envelope(
            allocated, source="handoff/test", tenant_id="acme", id=event_id, time=time
        )
        return encode(env)

    topic = Names(prefix)(topics.ALLOCATIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{unique_name}-txn", acks="all"
    )
    await producer.start()
    try:
        async with producer.transaction():
            value, headers = record("evt_committed")
            await producer.send(topic, value, key=b"k", headers=headers)
        await producer.begin_transaction()
        value, headers = record("evt_aborted")
        await (await producer.send(topic, value, key=b"k", headers=headers))
        await producer.abort_transaction()
    finally:
        await producer.stop()

    report = await trace_entries(
        kafka_bootstrap, prefix, {"evt_committed", "evt_aborted", "evt_nowhere"}
    )

    lines = dict(line.strip().split(": ", 1) for line in report.strip().splitlines())
    assert lines["trace evt_committed"] == (
        f"read_committed {topics.ALLOCATIONS}[0]@0; read_uncommitted {topics.ALLOCATIONS}[0]@0"
    )
    assert lines["trace evt_aborted"] == f"read_uncommitted {topics.ALLOCATIONS}[0]@2"
    assert lines["trace evt_nowhere"] == "in no input record"
