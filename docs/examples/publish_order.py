"""Publish one order to Handoff with plain aiokafka (what a Python marketplace would write).

    python publish_order.py order.json            # handoff.order.placed.v1
    python publish_order.py cancel.json --type handoff.order.cancelled.v1

Environment: KAFKA (bootstrap servers, default 127.0.0.1:19092), TOPIC_PREFIX (empty
unless your Handoff runs with HANDOFF_TOPIC_PREFIX), TENANT (your tenant id, default acme).

It depends on nothing of Handoff's: the record is CloudEvents 1.0 in Kafka's binary
content mode, built here by hand. aiokafka's default partitioner is Kafka's murmur2, the
one Handoff requires, so no partitioner setting is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

TOPICS = {
    "handoff.order.placed.v1": "handoff.marketplace.orders.v1",
    "handoff.order.cancelled.v1": "handoff.marketplace.orders.v1",
    "handoff.return.requested.v1": "handoff.marketplace.returns.v1",
}


async def publish(value: bytes, ce_type: str) -> None:
    """`value` is the JSON event data, sent as is (UTF-8)."""
    bootstrap = os.environ.get("KAFKA", "127.0.0.1:19092")
    topic = os.environ.get("TOPIC_PREFIX", "") + TOPICS[ce_type]
    tenant = os.environ.get("TENANT", "acme")
    order_id = json.loads(value)["order_id"]
    headers = [
        ("ce_specversion", b"1.0"),
        # Unique per event (with ce_source). Keep it if you retry the same event.
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_source", f"marketplace/{tenant}".encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", datetime.now(UTC).isoformat().replace("+00:00", "Z").encode()),
        ("ce_subject", order_id.encode()),
        ("ce_tenantid", tenant.encode()),
        ("content-type", b"application/json"),
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",  # stored on every in-sync replica before it counts as sent
        enable_idempotence=True,  # a retried send is never written twice
        compression_type="gzip",
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, value=value, key=f"{tenant}/{order_id}".encode(), headers=headers
        )
    finally:
        await producer.stop()
    print(json.dumps({"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the event's JSON data")
    parser.add_argument("--type", default="handoff.order.placed.v1", choices=sorted(TOPICS))
    args = parser.parse_args()
    asyncio.run(publish(args.file.read_bytes(), args.type))


if __name__ == "__main__":
    main()
