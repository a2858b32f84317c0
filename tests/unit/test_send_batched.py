"""How a transaction's records are cut into record batches (`engine._send_batched`)."""

from __future__ import annotations

import asyncio
from typing import Any

from handoff_events.stream.engine import _send_batched


class _Batch:
    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.room = room

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: Any, headers: Any
    ) -> Any:
        if len(self.records) == self.room:
            return None  # full, as the producer's max_batch_size says
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class _Producer:
    """The part of `AIOKafkaProducer` that `_send_batched` uses; batches hold `room` records."""

    def __init__(self, room: int = 1000) -> None:
        self.room = room
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    def create_batch(self) -> _Batch:
        return _Batch(self.room)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(3))

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch.records))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _values(producer: _Producer, topic: str) -> list[list[bytes | None]]:
    return [[value for _, value in records] for t, _, records in producer.sent if t == topic]


async def test_a_capped_topic_gets_a_new_batch_before_its_value_bytes_pass_the_cap() -> None:
    producer = _Producer()
    states = [("state", b"k", b"x" * size, [], 0) for size in (40, 50, 20, 100, 5)]
    outputs = [("updates", b"k", b"y" * 60, [], 0) for _ in range(4)]

    futures = await _send_batched(producer, [*states, *outputs], {"state": 100})  # type: ignore[arg-type]

    assert len(futures) == len(producer.sent)
    assert [[len(v or b"") for v in batch] for batch in _values(producer, "state")] == [
        [40, 50],  # +20 would pass 100
        [20],  # +100 would pass it
        [100],  # a value of the cap's size fills a batch alone
        [5],
    ]
    assert [len(batch) for batch in _values(producer, "updates")] == [4]  # uncapped


async def test_a_full_batch_starts_a_new_one_and_the_cap_counts_from_there() -> None:
    producer = _Producer(room=2)
    records = [("state", b"k", b"x" * 30, [], 1) for _ in range(5)]

    await _send_batched(producer, records, {"state": 100})  # type: ignore[arg-type]

    # Full after two records (the producer's size, 60 B), then two again: the new batch
    # counts from the record that opened it (counting on from 90 B would cut at 120 B).
    assert [len(batch) for batch in _values(producer, "state")] == [2, 2, 1]
    assert all(partition == 1 for _, partition, _ in producer.sent)


async def test_batches_go_out_in_rounds_one_per_partition() -> None:
    """A partition's next batch waits for its previous one to be drained into a request
    (one per broker in flight), so the first batch of every partition is queued before
    any partition's second: the transaction takes as many round trips as its longest
    partition has batches, not their sum."""
    producer = _Producer()
    records = [("state", b"k", b"x" * 60, [], p) for p in (0, 0, 0, 1, 1, 2)]

    await _send_batched(producer, records, {"state": 100})  # type: ignore[arg-type]

    assert [(partition, len(batch)) for _, partition, batch in producer.sent] == [
        (0, 1),
        (1, 1),
        (2, 1),
        (0, 1),
        (1, 1),
        (0, 1),
    ]
