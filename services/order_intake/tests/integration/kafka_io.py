"""Plain-aiokafka helpers for order intake's integration tests (no Handoff producer helpers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from handoff_events import topics
from handoff_events.provision import provision

INTAKE_TOPICS = [
    topics.BY_NAME[name]
    for name in (
        topics.ORDERS,
        topics.ORDERS + ".dlq",
        topics.INTAKE_SHIPMENTS,
        topics.CANCELLATIONS,
        topics.CANCELLATIONS + ".dlq",
        topics.UPDATES,
        topics.UPDATES + ".dlq",
        "handoff.order_intake.orders-changelog.v1",
        "handoff.order_intake.shipment-status-changelog.v1",
    )
]


async def provision_intake(bootstrap: str, prefix: str) -> None:
    """Order intake's topics (inputs, outputs, changelogs, DLQs) under `prefix`."""
    report = await provision(
        bootstrap, prefix=prefix, partitions=3, replication_factor=1, topics=INTAKE_TOPICS
    )
    assert report.ok, report


def order_headers(ce_id: str, tenant: str, order_id: str, ce_type: str) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers, spelled out by hand as a marketplace would."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_source", b"https://shop.example/orders"),
        ("ce_type", ce_type.encode()),
        ("ce_time", b"2026-11-20T10:00:01Z"),
        ("ce_subject", order_id.encode()),
        ("ce_tenantid", tenant.encode()),
        ("content-type", b"application/json"),
    ]


async def produce(
    bootstrap: str, records: Sequence[tuple[str, str, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Send (topic, key, value, headers) records in order with a plain producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key.encode(), headers=headers)
    finally:
        await producer.stop()


def place_record(
    prefix: str, tenant: str, doc: dict[str, Any], ce_id: str
) -> tuple[str, str, bytes, list[tuple[str, bytes]]]:
    order_id = doc["order_id"]
    return (
        prefix + topics.ORDERS,
        f"{tenant}/{order_id}",
        msgspec.json.encode(doc),
        order_headers(ce_id, tenant, order_id, "handoff.order.placed.v1"),
    )


def cancel_record(
    prefix: str, tenant: str, order_id: str, ce_id: str, **fields: Any
) -> tuple[str, str, bytes, list[tuple[str, bytes]]]:
    doc = {"order_id": order_id, "cancelled_at": "2026-11-20T10:30:00Z", **fields}
    return (
        prefix + topics.ORDERS,
        f"{tenant}/{order_id}",
        msgspec.json.encode(doc),
        order_headers(ce_id, tenant, order_id, "handoff.order.cancelled.v1"),
    )


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def ce_type(self) -> str:
        return self.headers.get("ce_type", b"").decode()

    def data(self) -> dict[str, Any]:
        assert self.value is not None
        decoded: dict[str, Any] = msgspec.json.decode(self.value)
        return decoded


async def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every committed record of `topic`, up to its last stable offset (read_committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 10
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            assert time.monotonic() < deadline, f"no metadata for {topic}"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Record] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batches = await consumer.getmany(*tps, timeout_ms=200)
            for batch in batches.values():
                out.extend(
                    Record(
                        r.partition,
                        r.offset,
                        (r.key or b"").decode(),
                        r.value,
                        {k: v for k, v in r.headers},
                    )
                    for r in batch
                )
        return out
    finally:
        await consumer.stop()


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, within_s: float = 30.0) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def drained(bootstrap: str, group: str, topic: str, partitions: int = 3) -> bool:
    """The group's committed offsets on `topic` have reached the end of every partition.

    Only for topics written without transactions (the marketplace orders topic):
    there the end offset is exactly one past the last record.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if end[tp] > 0 and (committed or 0) < end[tp]:
                return False
        return True
    finally:
        await consumer.stop()
