"""A durable publisher for HTTP edges: acks=all, idempotent, returns only after Kafka has the record."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from handoff_events.envelope import Envelope, encode
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import Names


def producer_defaults(settings: ServiceSettings) -> dict[str, Any]:
    """Durable by configuration: acks=all with idempotence, bounded batching."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        **settings.kafka_security(),
    }


class EventPublisher:
    def __init__(self, settings: ServiceSettings, client_id: str):
        self._settings = settings
        self._names = Names(settings.topic_prefix)
        self._client_id = client_id
        self._producer_or_none: AIOKafkaProducer | None = None
        self._started = False

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._producer_or_none is None:
            raise RuntimeError("EventPublisher.start() has not been awaited")
        return self._producer_or_none

    async def start(self) -> None:
        # Created here, not in __init__: aiokafka binds a producer to the running event loop.
        if not self._started:
            self._producer_or_none = AIOKafkaProducer(
                client_id=self._client_id, **producer_defaults(self._settings)
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
            self._names(topic), value=value, key=key.encode(), headers=headers
        )
        return meta.partition, meta.offset

    async def publish_many(self, items: list[tuple[str, str, Envelope[Any]]]) -> None:
        """Send a batch and wait for every acknowledgement."""
        futures = []
        for topic, key, envelope in items:
            value, headers = encode(envelope)
            futures.append(
                await self._producer.send(
                    self._names(topic), value=value, key=key.encode(), headers=headers
                )
            )
        for fut in futures:
            await fut
