"""Durability on the local 3-broker cluster: acks=all survives a crashed broker.

This is the configuration Handoff promises (RF=3, min.insync.replicas=2,
acks=all with idempotence, no unclean leader election), exercised with a real
SIGKILL of the partition leader: every acknowledged record must be readable
exactly once afterwards, and the crashed broker must rejoin the ISR.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support.kafka import (
    create_topic,
    describe_topic,
    kafkactl,
    read_all,
    wait_for_cluster_ready,
    wait_for_isr,
)

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

RECORDS_PER_PHASE = 300


async def _produce(producer: AIOKafkaProducer, topic: str, phase: str) -> list[bytes]:
    """Send a phase's records and wait for every acknowledgement."""
    values = [f"{phase}-{i}".encode() for i in range(RECORDS_PER_PHASE)]
    futures = [
        await producer.send(topic, value, key=f"shipment-{i % 37}".encode())
        for i, value in enumerate(values)
    ]
    await asyncio.gather(*futures)
    return values


async def _topic_config(bootstrap: str, topic: str, key: str) -> str | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses: list[Any] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=None)]
        )
    finally:
        await admin.close()
    for response in responses:
        for resource in response.resources:
            for entry in resource[4]:  # (name, value, read_only, ...)
                if entry[0] == key:
                    return str(entry[1])
    return None


@pytest.mark.asyncio
async def test_acks_all_survives_a_killed_broker_and_it_rejoins(
    kafka_cluster: str, unique_name: str
) -> None:
    await wait_for_cluster_ready(kafka_cluster, expected_brokers=3)
    topic = f"{unique_name}.durable"
    await create_topic(
        kafka_cluster,
        topic,
        partitions=3,
        replication_factor=3,
        configs={"min.insync.replicas": "2"},
    )
    assert await _topic_config(kafka_cluster, topic, "min.insync.replicas") == "2"
    described = await wait_for_isr(kafka_cluster, topic, expected_isr=3, within=30)
    victim = next(p["leader"] for p in described["partitions"] if p["partition"] == 0)

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_cluster,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=30_000,
    )
    await producer.start()
    try:
        before = await _produce(producer, topic, "before")

        # Crash the leader of partition 0 (not a graceful shutdown).
        await asyncio.to_thread(kafkactl.stop_node, victim, "KILL")
        assert kafkactl.node_pids()[victim] is None

        # Two replicas are left, which satisfies min.insync.replicas=2.
        async with asyncio.timeout(120):
            after = await _produce(producer, topic, "after")
    finally:
        await producer.stop()

    try:
        records = await read_all(kafka_cluster, topic, within=60)
        values = [value for *_, value in records]
        assert len(values) == len(set(values)), "duplicates after the broker crash"
        assert set(values) == set(before) | set(after), "acknowledged records are missing"

        # acks=all only succeeded because the controller dropped the dead broker
        # from every ISR (metadata may reach the broker we ask a moment later).
        async with asyncio.timeout(30):
            while True:
                during = await describe_topic(kafka_cluster, topic)
                if all(victim not in p["isr"] for p in during["partitions"]):
                    break
                await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(kafkactl.start_node, victim)

    description = await wait_for_cluster_ready(kafka_cluster, expected_brokers=3, within=90)
    assert {broker["node_id"] for broker in description["brokers"]} == {1, 2, 3}
    healed = await wait_for_isr(kafka_cluster, topic, expected_isr=3, within=120)
    assert all(sorted(p["isr"]) == [1, 2, 3] for p in healed["partitions"]), healed
