"""The simulated marketplace against a real broker: orders on the topic, the oracle, returns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from handoff_events import topics
from handoff_events.contracts import OrderPlaced, ReturnRequested, ShipmentUpdate
from handoff_events.envelope import DecodeError, decode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.runtime.settings import ServiceSettings
from handoff_sim.marketplace import MarketplaceConfig, MarketplaceRunner

REPO = Path(__file__).resolve().parents[2]


def topic_only_world(directory: Path) -> Path:
    """The sample marketplaces, all on the topic, returning every delivered parcel."""
    (directory / "sim").mkdir(parents=True)
    (directory / "locations.toml").write_bytes((REPO / "deploy/config/locations.toml").read_bytes())
    text = (REPO / "deploy/config/sim/marketplaces.toml").read_text()
    replaced = {"http_share": "http_share = 0.0", "return_rate": "return_rate = 1.0"}
    lines = [replaced.get(line.split(" ", 1)[0], line) for line in text.splitlines()]
    (directory / "sim" / "marketplaces.toml").write_text("\n".join(lines) + "\n")
    return directory


def read_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.kafka
async def test_orders_reach_the_topic_as_recorded_and_deliveries_bring_returns(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    wanted = [topics.BY_NAME[t] for t in (topics.ORDERS, topics.RETURN_REQUESTS, topics.UPDATES)]
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, topics=wanted)
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=3
    )
    oracle = tmp_path / "oracle.jsonl"
    config = MarketplaceConfig(
        seed=7,  # its first 1.5 s hold orders with a missing field
        orders_per_second=20.0,
        duration_s=1.5,
        linger_s=60.0,
        oracle_path=oracle,
        config_dir=topic_only_world(tmp_path / "config"),
        order_intake_url="http://127.0.0.1:9",  # never called: every tenant uses the topic
    )
    runner = MarketplaceRunner(settings, config)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    consumer = AIOKafkaConsumer(
        prefix + topics.ORDERS,
        prefix + topics.RETURN_REQUESTS,
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    publisher = EventPublisher(settings, client_id="test")
    await consumer.start()
    await publisher.start()
    orders: dict[str, object] = {}
    returns: list[ReturnRequested] = []
    undecodable: list[str] = []
    delivered_sent = None
    try:
        began = time.monotonic()
        deadline = began + 40
        while True:
            sent = [e for e in read_lines(oracle) if e["kind"] == "order_placed"]
            all_sent = time.monotonic() > began + config.duration_s + 1.0  # type: ignore[operator]
            on_topic = len(orders) + len(undecodable)
            if delivered_sent is None and all_sent and sent and on_topic == len(sent):
                # Every order is on the topic: deliver one shipment of a valid order.
                order = next(e for e in sent if not e["defect"])
                delivered_sent = (order, order["shipment_ids"][0])  # type: ignore[index]
                update = ShipmentUpdate(
                    update_id="u-1",
                    shipment_id=delivered_sent[1],
                    order_id=str(order["order_id"]),
                    tenant_id=str(order["tenant"]),
                    milestone="delivered",
                    status="delivered",
                    occurred_at=datetime.now(UTC),
                )
                env = new_envelope(
                    update,
                    source="test",
                    tenant_id=str(order["tenant"]),
                    id="upd-1",
                    type="handoff.shipment.update.delivered.v1",
                )
                await publisher.publish(topics.UPDATES, delivered_sent[1], env)
            if returns:
                break
            assert time.monotonic() < deadline, (len(sent), len(orders), returns)
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        env = decode(record.value, record.headers)
                    except DecodeError:
                        undecodable.append(record.key.decode())
                        continue
                    assert record.key == f"{env.tenant_id}/{env.data.order_id}".encode()  # type: ignore[attr-defined]
                    if isinstance(env.data, OrderPlaced):
                        orders[env.data.order_id] = env.data
                    elif isinstance(env.data, ReturnRequested):
                        returns.append(env.data)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await running
        await consumer.stop()
        await publisher.stop()
    sent = [e for e in read_lines(oracle) if e["kind"] == "order_placed"]
    assert len(sent) == runner.stats.orders_sent >= 10
    assert {e["channel"] for e in sent} == {"topic"}
    # Orders with a missing field are not decodable as OrderPlaced: that is the point.
    defective = {f"{e['tenant']}/{e['order_id']}" for e in sent if e["defect"] == "missing_field"}
    assert defective and set(undecodable) == defective
    assert set(orders) | {k.split("/", 1)[1] for k in defective} == {e["order_id"] for e in sent}
    assert delivered_sent is not None
    (request,) = returns
    assert request.shipment_id == delivered_sent[1]
    assert request.order_id == delivered_sent[0]["order_id"]  # type: ignore[index]
    assert any(e["kind"] == "return_requested" for e in read_lines(oracle))
