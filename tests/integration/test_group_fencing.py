"""Group-metadata fencing (KIP-447) against the real broker (docs/decisions/0002).

The engine runs one transactional producer per instance and relies on the group
coordinator to refuse a zombie's offsets: these tests prove the two requests it adds
to aiokafka do what the decision says, on the broker the suite runs against."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from handoff_events.stream.kip447 import (
    GroupMoved,
    fetch_stable_offsets,
    group_generation,
    send_offsets_fenced,
)

from tests.support.kafka import create_topic, read_all

pytestmark = pytest.mark.kafka


async def _member(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    return consumer


async def _until_assigned(*consumers: AIOKafkaConsumer, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not all(c.assignment() and group_generation(c).valid for c in consumers):
        assert time.monotonic() < deadline, "the group never settled"
        await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))


async def _producer(bootstrap: str, transactional_id: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=transactional_id, acks="all"
    )
    await producer.start()
    return producer


@pytest.mark.asyncio
async def test_a_replaced_generation_cannot_commit_and_its_records_stay_invisible(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic, out, group = f"{unique_name}.in", f"{unique_name}.out", f"{unique_name}.group"
    await create_topic(kafka_bootstrap, topic, partitions=2, replication_factor=1)
    await create_topic(kafka_bootstrap, out, partitions=1, replication_factor=1)
    first = await _member(kafka_bootstrap, topic, group)
    producer = await _producer(kafka_bootstrap, f"{unique_name}.tx")
    second: AIOKafkaConsumer | None = None
    try:
        await _until_assigned(first)
        old = group_generation(first)
        # A second member joins: the group moves to a new generation.
        second = await _member(kafka_bootstrap, topic, group)
        deadline = time.monotonic() + 30
        while group_generation(first).generation_id <= old.generation_id:
            assert time.monotonic() < deadline, "no rebalance happened"
            await asyncio.gather(first.getmany(timeout_ms=100), second.getmany(timeout_ms=100))
        await _until_assigned(first, second)

        # The zombie: a transaction made under the old generation.
        await producer.begin_transaction()
        await producer.send_and_wait(out, b"from-the-zombie", partition=0)
        with pytest.raises(GroupMoved, match=r"IllegalGeneration|UnknownMember"):
            await send_offsets_fenced(producer, {TopicPartition(topic, 0): 5}, group, old)
        await producer.abort_transaction()

        # The same producer carries on under the current generation.
        await producer.begin_transaction()
        await producer.send_and_wait(out, b"current", partition=0)
        await send_offsets_fenced(
            producer, {TopicPartition(topic, 0): 7}, group, group_generation(first)
        )
        await producer.commit_transaction()
        offsets = await fetch_stable_offsets(first, [TopicPartition(topic, 0)])
    finally:
        await producer.stop()
        await first.stop()
        if second is not None:
            await second.stop()

    assert offsets == {TopicPartition(topic, 0): 7}
    assert [value for *_, value in await read_all(kafka_bootstrap, out)] == [b"current"]


@pytest.mark.asyncio
async def test_a_new_owner_reads_offsets_only_after_the_open_transaction_ends(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic, group = f"{unique_name}.in", f"{unique_name}.group"
    await create_topic(kafka_bootstrap, topic, partitions=1, replication_factor=1)
    member = await _member(kafka_bootstrap, topic, group)
    producer = await _producer(kafka_bootstrap, f"{unique_name}.tx")
    tp = TopicPartition(topic, 0)
    try:
        await _until_assigned(member)
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"x", partition=0)
        await send_offsets_fenced(producer, {tp: 1}, group, group_generation(member))
        reader = asyncio.create_task(fetch_stable_offsets(member, [tp]))
        await asyncio.sleep(1.0)
        pending_while_open = not reader.done()
        await producer.commit_transaction()
        offsets = await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await member.stop()

    assert pending_while_open, "the stable read answered while the transaction was open"
    assert offsets == {tp: 1}


@pytest.mark.asyncio
async def test_the_stable_read_does_not_queue_behind_the_members_long_poll(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A task opens with `fetch_stable_offsets` on the member's own client. Sent on the
    connection that carries the member's fetches, it would wait for a long poll of an
    idle topic to time out (fetch_max_wait_ms) at every task open; it goes on the
    coordinator's connection instead."""
    topic, group = f"{unique_name}.in", f"{unique_name}.group"
    await create_topic(kafka_bootstrap, topic, partitions=1, replication_factor=1)
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        fetch_max_wait_ms=10_000,
    )
    await member.start()
    try:
        await _until_assigned(member)
        await asyncio.sleep(0.5)  # the fetcher's long poll of the empty topic is in flight
        started = time.monotonic()
        offsets = await fetch_stable_offsets(member, [TopicPartition(topic, 0)])
        took = time.monotonic() - started
    finally:
        await member.stop()
    assert offsets == {TopicPartition(topic, 0): None}
    assert took < 3.0, f"the stable read took {took:.1f} s behind the long poll"
