"""The single local broker is a real Kafka that supports what Handoff relies on.

Transactions need the transaction state log, and consumer groups need the
offsets topic; on one broker both only work with replication factor 1 and
min ISR 1, which is what these tests prove the broker is configured with.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.kafka import create_topic, read_all, wait_for_cluster_ready

pytestmark = pytest.mark.kafka


@pytest.mark.asyncio
async def test_broker_answers_metadata(kafka_bootstrap: str) -> None:
    description = await wait_for_cluster_ready(kafka_bootstrap, expected_brokers=1, within=30)

    assert description["brokers"], description


@pytest.mark.asyncio
async def test_committed_transaction_is_visible_and_aborted_one_is_not(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"{unique_name}.transactions"
    await create_topic(kafka_bootstrap, topic, partitions=1, replication_factor=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"{unique_name}-txn",
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send(topic, f"committed-{i}".encode(), key=b"shipment-1")

        await producer.begin_transaction()
        aborted = [
            await producer.send(topic, f"aborted-{i}".encode(), key=b"shipment-1") for i in range(2)
        ]
        # The aborted records must really be in the log, or the test proves nothing.
        await asyncio.gather(*aborted)
        await producer.abort_transaction()

        async with producer.transaction():
            await producer.send(topic, b"committed-after-abort", key=b"shipment-1")
    finally:
        await producer.stop()

    committed_view = [value for *_, value in await read_all(kafka_bootstrap, topic)]
    uncommitted_view = [
        value
        for *_, value in await read_all(kafka_bootstrap, topic, isolation_level="read_uncommitted")
    ]

    assert committed_view == [
        b"committed-0",
        b"committed-1",
        b"committed-2",
        b"committed-after-abort",
    ]
    assert b"aborted-0" in uncommitted_view and b"aborted-1" in uncommitted_view


@pytest.mark.asyncio
async def test_consumer_group_resumes_from_committed_offset(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"{unique_name}.group"
    group = f"{unique_name}-group"
    await create_topic(kafka_bootstrap, topic, partitions=1, replication_factor=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"event-{i}".encode(), key=b"shipment-1")
    finally:
        await producer.stop()

    tp = TopicPartition(topic, 0)

    async def consume(expected: int, commit_offset: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            seen: list[bytes] = []
            async with asyncio.timeout(30):
                while len(seen) < expected:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    seen.extend(r.value for r in batch.get(tp, []) if r.value is not None)
            # Commit only what "processing" got through, even if more was fetched.
            await consumer.commit({tp: commit_offset})
            return seen[:expected]
        finally:
            await consumer.stop()

    first = await consume(6, commit_offset=6)
    second = await consume(4, commit_offset=10)

    assert first == [f"event-{i}".encode() for i in range(6)]
    assert second == [f"event-{i}".encode() for i in range(6, 10)]
