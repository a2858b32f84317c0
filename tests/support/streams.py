"""Helpers for integration tests against the real broker: produce raw records, read topics back
(read_committed, group-less), and await a condition with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition

RawRecord = tuple[str | None, bytes | None, Sequence[tuple[str, bytes]]]


async def produce_raw(bootstrap: str, topic: str, records: Sequence[RawRecord]) -> None:
    """Produce (key, value, headers) records with a plain aiokafka producer (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send(
                topic, value=value, key=None if key is None else key.encode(), headers=list(headers)
            )
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, expect: int, timeout: float = 30.0, settle: float = 0.5
) -> list[ConsumerRecord]:
    """Read a whole topic from the beginning (read_committed) until `expect` records arrived or
    `timeout` passed, then keep reading for `settle` seconds so extra records would show up."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        if not parts:
            raise AssertionError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < expect and loop.time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(recs)
        settle_until = loop.time() + settle
        while loop.time() < settle_until:
            for recs in (await consumer.getmany(timeout_ms=100)).values():
                out.extend(recs)
        return out
    finally:
        await consumer.stop()


async def until(
    predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode() if value is not None else None
    return None


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of `topic`, waiting for metadata (a group-less consumer has none yet)."""
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


async def batch_codecs(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """How the record batches of a topic are compressed, as the broker stores them: a count
    of data batches per codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd). Read with a raw
    Fetch, because a consumer decompresses without telling which codec it met."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    codecs: dict[int, int] = {}
    try:
        client = consumer._client  # the connected client: metadata and leaders
        await client.force_metadata_update()
        for partition in range(partitions):
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            request = FetchRequest(100, 1, 16 << 20, 0, [(topic, [(partition, 0, 8 << 20)])])
            response = await client.send(leader, request)
            for _topic, parts in response.topics:
                for _partition, error, *_rest, message_set in parts:
                    assert error == 0, f"fetch error {error}"
                    records = MemoryRecords(message_set)
                    while records.has_next():
                        batch = records.next_batch()
                        if batch is None or batch.is_control_batch:
                            continue
                        codec = batch.compression_type
                        codecs[codec] = codecs.get(codec, 0) + 1
    finally:
        await consumer.stop()
    return codecs
