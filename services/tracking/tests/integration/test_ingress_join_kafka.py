"""The join stage on the real broker: raw scans in two carriers' vocabularies become canonical
observations once their tracking number is assigned; scans that come first are held, across an
engine restart, and released; a record in the wrong partition is re-published to the right one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from handoff_events import topics
from handoff_events.contracts import CarrierTrackingEvent, TrackingNumberAssigned, TrackingObserved
from handoff_events.envelope import Envelope, decode, encode, new_envelope
from handoff_events.provision import provision
from handoff_events.stream.engine import StreamEngine
from handoff_tracking.ingress import TrackingIngressSettings, build_ingress_parts
from handoff_tracking.ingress.join import JoinRow, observation_id, partition_for

from tests.support.streams import read_topic, until

pytestmark = pytest.mark.kafka

CODES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "config" / "carrier-codes"
PARTITIONS = 3
T0 = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)


def scan(carrier: str, number: str, n: int, code: str) -> Envelope[CarrierTrackingEvent]:
    data = CarrierTrackingEvent(
        carrier=carrier,
        tracking_number=number,
        event_id=f"{carrier}-{number}-{n}",
        code=code,
        occurred_at=datetime.fromisoformat(f"2026-11-21T08:{n:02d}:00+01:00"),
    )
    # What a carrier producing to the topic sends: its own code as tenant, any unique id.
    return new_envelope(data, source=f"carrier/{carrier}", tenant_id=carrier, id=data.event_id)


def assignment(carrier: str, number: str, shipment: str) -> Envelope[TrackingNumberAssigned]:
    data = TrackingNumberAssigned(
        carrier=carrier, tracking_number=number, shipment_id=shipment, assigned_at=T0
    )
    return new_envelope(data, source="handoff/tracking", tenant_id="acme", id=f"tna-{shipment}")


class Producer:
    def __init__(self, settings: TrackingIngressSettings):
        self.names = topics.Names(settings.topic_prefix)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )

    async def send(
        self,
        topic: str,
        envelope: Envelope[CarrierTrackingEvent] | Envelope[TrackingNumberAssigned],
        partition: int | None = None,
    ) -> None:
        data = envelope.data
        value, headers = encode(envelope)
        await self.producer.send_and_wait(
            self.names(topic),
            value=value,
            key=f"{data.carrier}/{data.tracking_number}".encode(),
            headers=headers,
            partition=partition,
        )


def held(engine: StreamEngine[JoinRow]) -> dict[str, int]:
    return {
        k: len(row.held) for rows in engine.stores.values() for k, row in rows.items() if row.held
    }


async def test_scans_are_joined_held_across_a_restart_and_rerouted(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=PARTITIONS)

    def settings(run: str) -> TrackingIngressSettings:
        # A fresh state_dir per run: the second engine restores from the changelog alone.
        return TrackingIngressSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_prefix=prefix,
            partitions=PARTITIONS,
            state_dir=tmp_path / run,
            carrier_codes_dir=CODES_DIR,
        )

    first = StreamEngine(build_ingress_parts(settings("a")).join, settings("a"))
    producer = Producer(settings("a"))
    await producer.producer.start()
    await first.start()
    second: StreamEngine[JoinRow] | None = None
    try:
        await until(lambda: first.ready and len(first.tasks) == PARTITIONS, 30, "join ready")
        # Swift (express codes): assignment first, then scans.
        await producer.send(
            topics.TRACKING_NUMBERS, assignment("swift", "SW123456789", "shp_swift")
        )
        for n, code in enumerate(["PUP", "ARR", "OFD", "NH1"], start=1):
            await producer.send(topics.CARRIER_TRACKING, scan("swift", "SW123456789", n, code))
        # Velo (fleet words): scans before the assignment, one code nobody mapped.
        for n, code in enumerate(["collected", "enroute", "teleported"], start=1):
            await producer.send(topics.CARRIER_TRACKING, scan("velo", "VL12345678", n, code))
        # Gigly, produced to the wrong partition, as a non-murmur2 partitioner would.
        key = "gigly/GG-7K2M9Q4X"
        wrong = (partition_for(key, PARTITIONS) + 1) % PARTITIONS
        await producer.send(
            topics.CARRIER_TRACKING, scan("gigly", "GG-7K2M9Q4X", 1, "dropoff.completed"), wrong
        )
        await until(lambda: held(first) == {"velo/VL12345678": 3, key: 1}, 30, "scans held")
        await first.stop()

        second = StreamEngine(build_ingress_parts(settings("b")).join, settings("b"))
        await second.start()
        await until(
            lambda: second is not None and second.ready and len(second.tasks) == PARTITIONS,
            30,
            "restart",
        )
        assert held(second) == {"velo/VL12345678": 3, key: 1}  # restored from the changelog
        await producer.send(topics.TRACKING_NUMBERS, assignment("velo", "VL12345678", "shp_velo"))
        await producer.send(topics.TRACKING_NUMBERS, assignment("gigly", "GG-7K2M9Q4X", "shp_gig"))

        records = await read_topic(kafka_bootstrap, prefix + topics.OBSERVATIONS, expect=8)
    finally:
        await producer.producer.stop()
        if second is not None:
            await second.stop()
        else:
            await first.stop()

    observed: dict[str, list[TrackingObserved]] = {}
    for record in records:
        envelope = decode(record.value, record.headers)
        data = envelope.data
        assert isinstance(data, TrackingObserved)
        assert record.key.decode() == data.shipment_id
        assert envelope.id == observation_id(data.carrier, data.carrier_event_id)
        assert envelope.tenant_id == "acme"
        observed.setdefault(data.shipment_id, []).append(data)
    assert sum(map(len, observed.values())) == 8, "exactly once: no duplicates, nothing lost"
    assert [(o.carrier_code, o.status, o.sub_status) for o in observed["shp_swift"]] == [
        ("PUP", "picked_up", "collected_from_sender"),
        ("ARR", "in_transit", "arrived_at_facility"),
        ("OFD", "out_for_delivery", None),
        ("NH1", "delivery_attempt_failed", "recipient_absent"),
    ]
    assert [(o.carrier_code, o.status, o.unknown_code) for o in observed["shp_velo"]] == [
        ("collected", "picked_up", False),
        ("enroute", "out_for_delivery", False),
        ("teleported", "unknown", True),
    ]
    assert [(o.status, o.sub_status) for o in observed["shp_gig"]] == [
        ("delivered", "delivered_to_recipient")
    ]
    # The misplaced gigly scan was re-published once, keyed and partitioned by murmur2.
    raw = await read_topic(kafka_bootstrap, prefix + topics.CARRIER_TRACKING, expect=9, settle=0.2)
    gigly = [r for r in raw if r.key == key.encode()]
    assert sorted(r.partition for r in gigly) == sorted([wrong, partition_for(key, PARTITIONS)])
    assert len({msgspec.json.decode(r.value)["event_id"] for r in gigly}) == 1
