"""The simulated carriers against a real broker: allocations in, scans out (topic and webhook)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from handoff_events import topics
from handoff_events.contracts import (
    AllocationDecision,
    AllocationReleased,
    CarrierAllocated,
    CarrierTrackingEvent,
)
from handoff_events.envelope import decode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.values import Money
from handoff_sim.carriers import DEFAULT_PROFILES, CarrierSimConfig, CarrierSimulator, plan_scans
from handoff_sim.webhook_receiver import start_http
from handoff_sim.world import load_all_carrier_codes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[2]
TABLES = load_all_carrier_codes(REPO / "deploy" / "config" / "carrier-codes")
ALLOCATED_AT = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def allocated(shipment: str, carrier: str, service: str, tracking_number: str) -> CarrierAllocated:
    return CarrierAllocated(
        shipment_id=shipment,
        order_id="O-1",
        allocated_at=ALLOCATED_AT,
        carrier=carrier,
        service=service,
        tracking_number=tracking_number,
        label_ref=f"lbl-{shipment}",
        quote_id=f"q-{shipment}",
        price=Money(amount=699, currency="EUR"),
        estimated_delivery_date=date(2026, 11, 23),
        hub_id="HUB",
        decision=AllocationDecision(
            policy_id="default", objective="cheapest", candidates=[], explanation="test"
        ),
    )


class FakeTrackingWebhook:
    """Records signed scan batches the way tracking's webhook checks them."""

    def __init__(self) -> None:
        self.scans: list[CarrierTrackingEvent] = []
        self.bad_signatures = 0

    async def events(self, request: Request) -> Response:
        body = await request.body()
        carrier = request.path_params["carrier"]
        stamp = request.headers["X-Handoff-Timestamp"]
        wanted = hmac.new(
            f"dev-{carrier}-secret".encode(), f"{stamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if (
            request.headers["X-Handoff-Signature"] != f"v1={wanted}"
            or abs(time.time() - int(stamp)) > 300
        ):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.scans += msgspec.json.decode(body, type=list[CarrierTrackingEvent])
        return Response(status_code=202)


@pytest.mark.kafka
async def test_allocated_parcels_are_scanned_in_each_carriers_codes(
    kafka_bootstrap: str, unique_name: str
) -> None:
    prefix = f"{unique_name}."
    wanted = [topics.BY_NAME[t] for t in (topics.ALLOCATIONS, topics.CARRIER_TRACKING)]
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, topics=wanted)
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=3
    )
    webhook = FakeTrackingWebhook()
    server = await start_http(
        Starlette(routes=[Route("/v1/carriers/{carrier}/events", webhook.events, methods=["POST"])])
    )
    # One simulated hour = 10 ms: a whole journey takes well under a second.
    config = CarrierSimConfig(seed=5, time_scale=360_000.0, tracking_url=server.url)
    simulator = CarrierSimulator(settings, config)
    stop = asyncio.Event()
    running = asyncio.create_task(simulator.run(stop))
    publisher = EventPublisher(settings, client_id="test")
    consumer = AIOKafkaConsumer(
        prefix + topics.CARRIER_TRACKING,
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await publisher.start()
    await consumer.start()
    try:
        parcels = [
            allocated("shp_a", "nordpost", "parcel", "NP123456789DE"),
            allocated("shp_b", "swift", "express", "SW123456789"),
        ]
        for parcel in parcels:
            env = new_envelope(
                parcel, source="test", tenant_id="acme", id=f"alloc-{parcel.shipment_id}"
            )
            await publisher.publish(topics.ALLOCATIONS, parcel.shipment_id, env)
        # A cancelled shipment: its allocation is released before the carrier scans anything.
        release = AllocationReleased(shipment_id="shp_c", released_at=ALLOCATED_AT, carrier="velo")
        await publisher.publish(
            topics.ALLOCATIONS,
            "shp_c",
            new_envelope(release, source="test", tenant_id="acme", id="rel-c"),
        )
        await publisher.publish(
            topics.ALLOCATIONS,
            "shp_c",
            new_envelope(
                allocated("shp_c", "velo", "sameday", "VL12345678"),
                source="test",
                tenant_id="acme",
                id="alloc-c",
            ),
        )
        planned = {
            p.carrier: {
                s.event.event_id
                for s in plan_scans(
                    5, TABLES[p.carrier], p.tracking_number, level, ALLOCATED_AT,
                    DEFAULT_PROFILES[p.carrier],
                )[1]
            }
            for p, level in zip(parcels, ("standard", "next_day"), strict=True)
        }  # fmt: skip
        on_topic: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not (
            set(on_topic) >= planned["nordpost"]
            and {s.event_id for s in webhook.scans} >= planned["swift"]
        ):
            assert time.monotonic() < deadline, (len(on_topic), len(webhook.scans))
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    env = decode(record.value, record.headers)
                    assert isinstance(env.data, CarrierTrackingEvent)
                    assert record.key == f"{env.data.carrier}/{env.data.tracking_number}".encode()
                    assert env.tenant_id == env.data.carrier
                    assert env.source == f"carrier/{env.data.carrier}"
                    on_topic[env.data.event_id] = env.data
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await running
        await consumer.stop()
        await publisher.stop()
        await server.stop()
    # nordpost produces to the topic, swift posts signed webhooks: each only its own way.
    assert set(on_topic) == planned["nordpost"] | {
        k for k, v in on_topic.items() if v.carrier == "velo"
    }
    assert {s.carrier for s in webhook.scans} == {"swift"}
    assert webhook.bad_signatures == 0
    own_codes = {c.code for c in TABLES["swift"].codes}
    assert {s.code for s in webhook.scans} <= own_codes
    # The released velo shipment never got past its first scans.
    velo_status = {c.code: c.status for c in TABLES["velo"].codes}
    assert all(velo_status[e.code] != "delivered" for e in on_topic.values() if e.carrier == "velo")
    assert simulator.stats.shipments["nordpost"] == 1 and simulator.stats.shipments["swift"] == 1
    assert simulator.stats.stopped_by_cancellation == 1
