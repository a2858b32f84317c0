"""Follow a whole topic without a consumer group: the global-table pattern.

Read models that must see every partition (query replicas, transit-time
history, ownership maps) read the topic from the beginning on every start and
keep up with it. `caught_up` is set once the reader has reached the end offsets
observed at start, so a service can report ready only after its view is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from handoff_events.envelope import DecodeError, Envelope, decode
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import BY_NAME, Names

log = get_logger("handoff.follow")
OnEvent = Callable[[Envelope[Any], ConsumerRecord], Awaitable[None] | None]
OnRaw = Callable[[ConsumerRecord], Awaitable[None] | None]


class TopicFollower:
    """Reads every partition of one catalogue topic (read_committed), calling `on_event`
    for each decodable record (or `on_raw` for every record, tombstones included)."""

    def __init__(
        self,
        settings: ServiceSettings,
        topic: str,
        on_event: OnEvent | None = None,
        on_raw: OnRaw | None = None,
        from_beginning: bool = True,
    ):
        if topic not in BY_NAME:
            raise KeyError(f"{topic!r} is not in the topic catalogue")
        self.settings = settings
        self.topic = Names(settings.topic_prefix)(topic)
        self._on_event = on_event
        self._on_raw = on_raw
        self._from_beginning = from_beginning
        self._accept = frozenset(BY_NAME[topic].event_types)
        self.caught_up = asyncio.Event()
        self.records = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest" if self._from_beginning else "latest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            **self.settings.kafka_client(),
        )
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topic)
        if not partitions:
            await consumer.stop()
            raise RuntimeError(f"topic {self.topic} does not exist: provision the catalogue first")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if self._from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        self._end = {tp: int(o) for tp, o in (await consumer.end_offsets(tps)).items()}
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(tps), name=f"follow:{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self, tps: list[TopicPartition]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        pending = {tp for tp in tps if self._end[tp] > 0}
        if not pending or not self._from_beginning:
            self.caught_up.set()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                for record in records:
                    self.records += 1
                    await self._deliver(record)
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= self._end[tp]:
                        pending.discard(tp)
                if not pending:
                    self.caught_up.set()

    async def _deliver(self, record: ConsumerRecord) -> None:
        if self._on_raw is not None:
            result = self._on_raw(record)
            if inspect.isawaitable(result):
                await result
        if self._on_event is None or record.value is None:
            return
        try:
            envelope = decode(record.value, record.headers, self._accept)
        except DecodeError as err:
            log.warning(
                "follower skipped an undecodable record", topic=self.topic, reason=err.reason
            )
            return
        result = self._on_event(envelope, record)
        if inspect.isawaitable(result):
            await result
