"""A durable publisher for HTTP edges: acks=all, idempotent, returns only after Kafka has the record."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from handoff_events.envelope import Envelope, encode
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import Names

_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: Final = [struct.Struct(f"<{n}I") for n in range(64)]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`, unsigned), bit for bit what
    `aiokafka.partitioner.murmur2` returns, at about half its cost: the 4-byte words are
    unpacked in one call and each step masks once."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    unpack = (_WORDS[words] if words < 64 else struct.Struct(f"<{words}I")).unpack_from
    for word in unpack(data):
        k = (word * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner (and aiokafka's) gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2_partitioner(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's `DefaultPartitioner` (same partition for every key) with the faster hash."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[key_partition(key, len(all_partitions))]


def producer_defaults(settings: ServiceSettings) -> dict[str, Any]:
    """Durable by configuration: acks=all with idempotence, bounded batching."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        # Uncompressed: an HTTP edge sends a batch of one to a few events per request,
        # where zstd cost ~30% of the webhook's throughput for little space (decision
        # 0007). The stream stages, whose batches carry states, compress.
        **settings.kafka_client(),
    }


class EventPublisher:
    def __init__(self, settings: ServiceSettings, client_id: str):
        self._settings = settings
        self._names = Names(settings.topic_prefix)
        self._topic_names: dict[str, str] = {}
        self._client_id = client_id
        self._producer_or_none: AIOKafkaProducer | None = None
        self._started = False

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._producer_or_none is None:
            raise RuntimeError("EventPublisher.start() has not been awaited")
        return self._producer_or_none

    def _topic(self, topic: str) -> str:
        """The prefixed name of a catalogue topic (checked against the catalogue once)."""
        name = self._topic_names.get(topic)
        if name is None:
            name = self._topic_names[topic] = self._names(topic)
        return name

    async def start(self) -> None:
        # Created here, not in __init__: aiokafka binds a producer to the running event loop.
        if not self._started:
            self._producer_or_none = AIOKafkaProducer(
                client_id=self._client_id,
                partitioner=murmur2_partitioner,
                **producer_defaults(self._settings),
            )
            await self._producer_or_none.start()
            self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def publish(self, topic: str, key: str, envelope: Envelope[Any]) -> tuple[int, int]:
        """Send and wait for the broker's acknowledgement; returns (partition, offset)."""
        value, headers = encode(envelope)
        meta = await self._producer.send_and_wait(
            self._topic(topic), value=value, key=key.encode(), headers=headers
        )
        return meta.partition, meta.offset

    async def publish_many(self, items: list[tuple[str, str, Envelope[Any]]]) -> None:
        """Send a batch and wait for every acknowledgement.

        Every record is handed to the producer before the first acknowledgement is awaited,
        so the records of one call (and of concurrent calls) share the producer's batches
        and the broker round trips: the wait is one round trip, not one per record."""
        producer = self._producer
        futures = []
        for topic, key, envelope in items:
            value, headers = encode(envelope)
            futures.append(
                await producer.send(
                    self._topic(topic), value=value, key=key.encode(), headers=headers
                )
            )
        for fut in futures:
            await fut
