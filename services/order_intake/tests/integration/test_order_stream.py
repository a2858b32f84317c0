"""Order intake against a real broker: orders in by a plain producer, shipment events out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import ShipmentUpdate
from handoff_events.envelope import encode, new_envelope
from handoff_events.ids import shipment_id
from handoff_events.stream.api import StatefulProcessor
from handoff_events.stream.engine import StreamEngine
from handoff_events.topics import Names
from handoff_order_intake.handlers import cancellation_processor, order_processor
from handoff_order_intake.settings import OrderIntakeSettings

from services.order_intake.tests.integration.kafka_io import (
    Record,
    cancel_record,
    drained,
    eventually,
    place_record,
    produce,
    provision_intake,
    read_topic,
)
from services.order_intake.tests.unit.orders import catalogue, order_doc

pytestmark = pytest.mark.kafka
NOW = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
REQUESTED = "handoff.shipment.requested.v1"
REJECTED = "handoff.shipment.rejected.v1"


class Intake:
    """One test's isolated order intake: settings, topic names and engines to start/stop."""

    def __init__(self, bootstrap: str, prefix: str, state_dir: Path):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.names = Names(prefix)
        self.state_dir = state_dir
        self.engines: list[StreamEngine[Any]] = []

    def settings(self, instance: str = "a") -> OrderIntakeSettings:
        return OrderIntakeSettings(
            topic_prefix=self.prefix,
            partitions=3,
            kafka_bootstrap_servers=self.bootstrap,
            state_dir=self.state_dir / instance,
            instance_id=instance,
        )

    async def start(self, *stages: str, instance: str = "a") -> list[StreamEngine[Any]]:
        made: dict[str, Callable[[], StatefulProcessor[Any]]] = {
            "orders": lambda: order_processor(catalogue()),
            "cancellations": cancellation_processor,
        }
        started = []
        for stage in stages:
            engine: StreamEngine[Any] = StreamEngine(
                made[stage](), self.settings(instance), clock=lambda: NOW
            )
            await engine.start()
            self.engines.append(engine)
            started.append(engine)
        for engine in started:
            await eventually(self._is_ready(engine), f"{engine.processor.name} ready")
        return started

    @staticmethod
    def _is_ready(engine: StreamEngine[Any]) -> Callable[[], Any]:
        async def probe() -> bool:
            return engine.ready and len(engine.tasks) == 3

        return probe

    async def stop(self, engine: StreamEngine[Any]) -> None:
        await engine.stop()
        self.engines.remove(engine)

    async def produce(self, *records: tuple[str, str, bytes, list[tuple[str, bytes]]]) -> None:
        await produce(self.bootstrap, records)

    async def shipments(self) -> list[Record]:
        return await read_topic(self.bootstrap, self.names(topics.INTAKE_SHIPMENTS))

    async def orders_drained(self) -> bool:
        group = self.names.group("order_intake", "orders")
        return await drained(self.bootstrap, group, self.names(topics.ORDERS))


@pytest.fixture
async def intake(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> AsyncIterator[Intake]:
    prefix = f"{unique_name}."
    await provision_intake(kafka_bootstrap, prefix)
    it = Intake(kafka_bootstrap, prefix, tmp_path)
    try:
        yield it
    finally:
        for engine in list(it.engines):
            await engine.stop()


def of_type(records: list[Record], ce_type: str) -> list[Record]:
    return [r for r in records if r.ce_type == ce_type]


def two_origin_doc(order_id: str) -> dict[str, Any]:
    doc = order_doc(order_id=order_id)
    doc["lines"].append({"sku": "SKU-9", "quantity": 1, "origin_location_id": "WH-AMS-1"})
    doc["parcels"].append(
        {"parcel_id": "P9", "weight_g": 300, "length_mm": 100, "width_mm": 100,
         "height_mm": 10, "origin_location_id": "WH-AMS-1"}
    )  # fmt: skip
    return doc


async def test_orders_become_shipments_duplicates_nothing_conflicts_a_rejection(
    intake: Intake,
) -> None:
    p = intake.prefix
    changed = order_doc(order_id="A-1", service_level="same_day")
    await intake.produce(
        place_record(p, "acme", order_doc(order_id="A-1"), "mkt-1"),
        place_record(p, "acme", two_origin_doc("B-2"), "mkt-2"),
        # the marketplace resends A-1 under a new event id: same content, nothing new
        place_record(p, "acme", order_doc(order_id="A-1"), "mkt-3"),
        # ... and then sends A-1 with other content: a conflict
        place_record(p, "acme", changed, "mkt-4"),
        place_record(p, "acme", changed, "mkt-5"),  # the same conflict again: answered once
        # another tenant may use the same order id: its own shipment
        place_record(p, "globex", order_doc(order_id="A-1"), "mkt-6"),
    )
    await intake.start("orders")
    await eventually(intake.orders_drained, "orders consumed and committed")
    out = await intake.shipments()

    requested = of_type(out, REQUESTED)
    assert sorted(r.key for r in requested) == sorted(
        [
            shipment_id("acme", "A-1", "WH-BER-1"),
            shipment_id("acme", "B-2", "WH-BER-1"),
            shipment_id("acme", "B-2", "WH-AMS-1"),
            shipment_id("globex", "A-1", "WH-BER-1"),
        ]
    )
    by_key = {r.key: r for r in requested}
    berlin = by_key[shipment_id("acme", "B-2", "WH-BER-1")]
    amsterdam = by_key[shipment_id("acme", "B-2", "WH-AMS-1")]
    assert berlin.data()["origin"]["location_id"] == "WH-BER-1"
    assert amsterdam.data()["origin"]["location_id"] == "WH-AMS-1"
    assert [p["parcel_id"] for p in amsterdam.data()["parcels"]] == ["P9"]
    assert amsterdam.headers["ce_tenantid"] == b"acme"
    assert amsterdam.headers["ce_subject"] == amsterdam.key.encode()

    (conflict,) = of_type(out, REJECTED)
    assert [r["code"] for r in conflict.data()["reasons"]] == ["conflict"]
    assert conflict.key not in by_key
    assert conflict.data()["order_id"] == "A-1"


async def test_an_invalid_order_is_rejected_with_every_reason(intake: Intake) -> None:
    doc = order_doc(order_id="BAD-1")
    doc["ship_to"]["postal_code"] = "1011"
    doc["parcels"][0]["weight_g"] = 40_000
    await intake.produce(place_record(intake.prefix, "acme", doc, "mkt-bad"))
    await intake.start("orders")
    await eventually(intake.orders_drained, "orders consumed")
    (rejected,) = of_type(await intake.shipments(), REJECTED)
    assert rejected.key == shipment_id("acme", "BAD-1", "WH-BER-1")
    reasons = {(r["code"], r["field"]) for r in rejected.data()["reasons"]}
    assert reasons == {
        ("invalid_postal_code", "$.ship_to.postal_code"),
        ("weight_out_of_range", "$.parcels[0].weight_g"),
    }


async def test_poison_records_go_to_the_dlq_and_the_partition_moves_on(intake: Intake) -> None:
    p = intake.prefix
    key = "acme/P-1"  # every record on one key, so one partition, in order
    headers = place_record(p, "acme", order_doc(order_id="P-1"), "poison-1")[3]
    wrong_schema = msgspec.json.encode({"order_id": "P-1", "placed_at": "yesterday"})
    await intake.produce(
        (p + topics.ORDERS, key, b'{"order_id": "P-1", ', headers),
        (p + topics.ORDERS, key, wrong_schema, headers),
        place_record(p, "acme", order_doc(order_id="P-1"), "good-1"),
    )
    await intake.start("orders")
    await eventually(intake.orders_drained, "orders consumed")

    (requested,) = of_type(await intake.shipments(), REQUESTED)
    assert requested.key == shipment_id("acme", "P-1", "WH-BER-1")
    dlq = await read_topic(intake.bootstrap, intake.names(topics.ORDERS + ".dlq"))
    assert [r.headers["handoff_dlq_reason"] for r in dlq] == [b"invalid_json", b"schema_violation"]
    assert [r.value for r in dlq] == [b'{"order_id": "P-1", ', wrong_schema]
    assert all(r.key == key and r.headers["ce_id"] == b"poison-1" for r in dlq)
    assert dlq[1].headers["handoff_dlq_field"].startswith(b"$.")


async def test_a_restart_midway_neither_loses_nor_duplicates_shipments(intake: Intake) -> None:
    p = intake.prefix
    first = [order_doc(order_id=f"R-{i}") for i in range(3)]
    second = [order_doc(order_id=f"R-{i}") for i in range(3, 6)]
    await intake.produce(*(place_record(p, "acme", d, f"r1-{d['order_id']}") for d in first))
    (engine,) = await intake.start("orders", instance="a")
    await eventually(intake.orders_drained, "first orders consumed")
    await intake.stop(engine)

    # While no instance runs, the marketplace resends everything and adds more orders.
    await intake.produce(
        *(place_record(p, "acme", d, f"r2-{d['order_id']}") for d in first + second)
    )
    # A new instance with an empty state directory: its state can only come from Kafka.
    await intake.start("orders", instance="b")
    await eventually(intake.orders_drained, "all orders consumed")

    requested = of_type(await intake.shipments(), REQUESTED)
    keys = [r.key for r in requested]
    assert sorted(keys) == sorted(shipment_id("acme", f"R-{i}", "WH-BER-1") for i in range(6)), (
        "every order exactly once"
    )
    assert not of_type(await intake.shipments(), REJECTED)


def status_update(
    prefix: str, shipment: str, order_id: str, status: str
) -> tuple[str, str, bytes, list[tuple[str, bytes]]]:
    update = ShipmentUpdate(
        update_id=f"upd-{shipment}-{status}",
        shipment_id=shipment,
        order_id=order_id,
        tenant_id="acme",
        milestone="allocated" if status == "allocated" else "status_changed",
        status=status,
        occurred_at=NOW,
    )
    env = new_envelope(
        update, source="test/tracking", tenant_id="acme", id=f"evt-{shipment}-{status}", time=NOW
    )
    value, headers = encode(env)
    return prefix + topics.UPDATES, shipment, value, headers


async def test_cancellation_before_allocation_after_allocation_and_after_pickup(
    intake: Intake,
) -> None:
    p = intake.prefix
    await intake.produce(
        *(place_record(p, "acme", order_doc(order_id=o), f"c-{o}") for o in ("C-1", "C-2", "C-3"))
    )
    orders_engine, status_engine = await intake.start("orders", "cancellations")
    await eventually(intake.orders_drained, "orders consumed")
    c2 = shipment_id("acme", "C-2", "WH-BER-1")
    c3 = shipment_id("acme", "C-3", "WH-BER-1")
    # Hand-produced status updates, as tracking would publish them.
    await intake.produce(
        status_update(p, c2, "C-2", "allocated"),
        status_update(p, c3, "C-3", "allocated"),
        status_update(p, c3, "C-3", "picked_up"),
    )

    async def statuses_seen() -> bool:
        views = {k: v for store in status_engine.stores.values() for k, v in store.items()}
        return (
            c2 in views and views[c2].status == "allocated"
            and c3 in views and views[c3].status == "picked_up"
        )  # fmt: skip

    await eventually(statuses_seen, "status updates folded")
    await intake.produce(
        # another tenant cancelling an order id it does not own reaches nothing of acme's
        cancel_record(p, "globex", "C-1", "x-1", reason="not yours"),
        cancel_record(p, "acme", "C-1", "x-2", reason="customer changed mind"),
        cancel_record(p, "acme", "C-2", "x-3"),
        cancel_record(p, "acme", "C-3", "x-4"),
    )

    async def decided() -> list[Record] | None:
        out = await intake.shipments()
        done = [r for r in out if r.ce_type != REQUESTED]
        return out if len(done) >= 3 else None

    out = await eventually(decided, "three cancellation decisions")
    await eventually(intake.orders_drained, "cancellations consumed")
    decisions = {r.key: r for r in out if r.ce_type != REQUESTED}
    c1 = shipment_id("acme", "C-1", "WH-BER-1")
    assert set(decisions) == {c1, c2, c3}
    assert decisions[c1].ce_type == "handoff.shipment.cancelled.v1"
    assert decisions[c1].data()["release_capacity"] is False
    assert decisions[c1].data()["reason"] == "customer changed mind"
    assert decisions[c2].ce_type == "handoff.shipment.cancelled.v1"
    assert decisions[c2].data()["release_capacity"] is True
    assert decisions[c3].ce_type == "handoff.shipment.cancellation_refused.v1"
    assert [r["code"] for r in decisions[c3].data()["reasons"]] == ["already_picked_up"]
    assert len([r for r in out if r.ce_type != REQUESTED]) == 3
    assert orders_engine.ready
