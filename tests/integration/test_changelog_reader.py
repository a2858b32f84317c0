"""The restore's own changelog reader sees exactly what a read_committed consumer sees.

`ChangelogReader` replaces the consumer on the cold-start path (fetch ahead, unpack on
a worker thread, headers packed), so it carries the transaction rules itself. These
tests write changelogs with interleaved committed and aborted transactions, tombstones,
headers and compressed batches to a real broker, and compare the reader's records with
aiokafka's read_committed consumer, record for record, and the store filed from them
with the latest value and headers per key that the consumer saw.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from handoff_events.stream.changelog import NO_DUE_HEADER, ChangelogReader, Restored
from handoff_events.stream.engine import TaskStore

from tests.support.kafka import create_topic

pytestmark = pytest.mark.kafka

DUE = "handoff_due"


def _producer(
    bootstrap: str, txn: str | None, compression: str | None = "zstd"
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=txn,
        enable_idempotence=True,
        acks="all",
        compression_type=compression,
        linger_ms=5,
    )


async def _consumer_view(
    bootstrap: str, tp: TopicPartition, start: int = 0
) -> tuple[int, list[tuple[str, bytes | None, list[tuple[str, bytes | None]]]]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        end = int((await consumer.end_offsets([tp]))[tp])
        consumer.seek(tp, start)
        seen = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1_000)
            for record in batch.get(tp, ()):
                key = record.key.decode() if record.key else ""
                seen.append((key, record.value, [(k, v) for k, v in record.headers]))
        return end, seen
    finally:
        await consumer.stop()


async def _reader_view(
    bootstrap: str, tp: TopicPartition, start: int, end: int, max_bytes: int
) -> tuple[list[Restored], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    fetches = 0
    out: list[Restored] = []
    try:
        await consumer.end_offsets([tp])  # metadata for the partition's leader (not assigned:
        # the consumer's own fetches would queue ahead of the reader's)
        reader = ChangelogReader(consumer._client, tp, due_header=DUE, max_bytes=max_bytes)
        async with contextlib.aclosing(reader.read(start, end)) as records:
            async for chunk in records:
                fetches += 1
                out.extend(chunk)
    finally:
        await consumer.stop()
    return out, fetches


def _assert_same_as_consumer(
    restored: list[Restored],
    expected: list[tuple[str, bytes | None, list[tuple[str, bytes | None]]]],
) -> None:
    """The same records in the same order (keys, tombstones), and a store filed from the
    reader holds, for every key, exactly the latest value and headers the consumer saw."""
    assert [key for key, _, _ in restored] == [key for key, _, _ in expected]
    assert [batch is None for _, batch, _ in restored] == [
        value is None for _, value, _ in expected
    ]
    store: TaskStore[bytes] = TaskStore()
    latest: dict[str, tuple[bytes, list[tuple[str, bytes | None]]]] = {}
    for (key, batch, due), (_, value, headers) in zip(restored, expected, strict=True):
        if batch is None:
            store.forget(key)
            latest.pop(key, None)
        else:
            store.file_restored(key, batch, due)
            assert value is not None
            latest[key] = (value, headers)
    assert set(store.committed) == set(latest)
    assert {key: store.encoded(key) for key in latest} == latest


@pytest.mark.asyncio
async def test_reader_skips_aborted_transactions_like_a_read_committed_consumer(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"{unique_name}.changelog"
    await create_topic(kafka_bootstrap, topic, partitions=1, replication_factor=1)
    tp = TopicPartition(topic, 0)
    first, second = (
        _producer(kafka_bootstrap, f"{unique_name}-a"),
        _producer(kafka_bootstrap, f"{unique_name}-b"),
    )
    plain = _producer(kafka_bootstrap, None, compression=None)
    await asyncio.gather(first.start(), second.start(), plain.start())
    try:
        for round_ in range(3):
            # Two transactions open at once, their batches interleaved in the log; the
            # first is aborted, the second committed.
            await first.begin_transaction()
            await second.begin_transaction()
            sent = []
            for i in range(40):
                sent.append(await first.send(topic, f"aborted-{round_}-{i}".encode(), key=b"shp_x"))
                sent.append(
                    await second.send(
                        topic,
                        f"kept-{round_}-{i}".encode() * 20,
                        key=f"shp_{i}".encode(),
                        headers=[("ce_id", f"evt_{round_}_{i}".encode()), (DUE, b"1795287600.5")],
                    )
                )
            await asyncio.gather(*sent)  # the aborted records are really in the log
            await first.abort_transaction()
            await second.commit_transaction()
            # Outside any transaction: a tombstone, a record without the due header, and
            # one whose due header says "never due".
            await (await plain.send(topic, None, key=f"shp_{round_}".encode()))
            await (await plain.send(topic, b"no-due", key=b"shp_old"))
            await (await plain.send(topic, b"never", key=b"shp_done", headers=[(DUE, b"")]))
    finally:
        await asyncio.gather(first.stop(), second.stop(), plain.stop())

    end, expected = await _consumer_view(kafka_bootstrap, tp)
    restored, fetches = await _reader_view(kafka_bootstrap, tp, 0, end, max_bytes=256)

    assert fetches > 3, "the small fetch size must make the reader fetch ahead several times"
    assert len(expected) == 3 * (40 + 3)
    _assert_same_as_consumer(restored, expected)
    assert "shp_x" not in {key for key, _, _ in restored}  # only the aborted wrote it
    dues = {key: due for key, _, due in restored}
    assert dues["shp_1"] == 1795287600.5
    assert dues["shp_old"] == NO_DUE_HEADER
    assert dues["shp_done"] is None


@pytest.mark.asyncio
async def test_reader_starts_mid_batch_and_reads_a_compressed_log_in_many_fetches(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"{unique_name}.changelog"
    await create_topic(kafka_bootstrap, topic, partitions=1, replication_factor=1)
    tp = TopicPartition(topic, 0)
    producer = _producer(kafka_bootstrap, f"{unique_name}-txn")
    await producer.start()
    try:
        for block in range(5):
            async with producer.transaction():
                for i in range(2_000):
                    await producer.send(
                        topic, f"state-{block}-{i}-".encode() * 30, key=f"shp_{i % 700}".encode()
                    )
    finally:
        await producer.stop()

    start = 3_333  # inside a compressed batch: the reader must drop what comes before
    end, expected = await _consumer_view(kafka_bootstrap, tp, start=start)
    restored, fetches = await _reader_view(kafka_bootstrap, tp, start, end, max_bytes=1_024)

    assert fetches > 5
    _assert_same_as_consumer(restored, expected)
    # 3,332 data records and one commit marker (offset 2,000) lie before offset 3,333.
    assert len(expected) == 10_000 - 3_332
