"""Refused webhook calls never reach a shipment's state (the end of the path, not only the
topic: services/tracking/tests/integration/test_ingress_webhook_kafka.py proves the topic
stays untouched and the status codes; this proves the fold never sees them).

The ingress (webhook + join) and the fold run in one ServiceApp on the real broker. A
swift shipment is allocated; then a bad signature, a stale timestamp (replay), another
carrier posting for swift's tracking number, and an oversized body are all refused;
finally one valid scan is posted as a barrier. Once the barrier is in the shipment's
state (so everything posted before it has been through the pipeline), the state holds
the barrier and nothing of the refused calls.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from handoff_events import topics
from handoff_events.envelope import new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.app import ServiceApp
from handoff_tracking.adapters.state_codec import ShipmentStateCodec
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.handlers import build_fold
from handoff_tracking.ingress import TrackingIngressSettings, build_ingress_parts
from handoff_tracking.ingress.signature import signature_header

from services.tracking.tests.fold_factories import allocated, requested
from tests.support.streams import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
CODES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config" / "carrier-codes"
SECRETS = "swift:sw-secret,nordpost:np-secret"
SHIPMENT = "shp_sec00001"
NUMBER = "SW123456789"


def scan(event_id: str, carrier: str = "swift", **over: Any) -> dict[str, Any]:
    return {
        "carrier": carrier,
        "tracking_number": NUMBER,
        "event_id": event_id,
        "code": "20" if carrier == "nordpost" else "PUP",
        "occurred_at": "2026-11-20T09:00:00+00:00",
        **over,
    }


async def test_refused_webhook_calls_never_reach_the_shipment_state(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3)
    settings = TrackingIngressSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        partitions=3,
        state_dir=tmp_path,
        carrier_codes_dir=CODES_DIR,
        carrier_secrets=SECRETS,
        webhook_max_body_bytes=64_000,
    )
    ingress = build_ingress_parts(settings, clock=lambda: now)
    fold = build_fold(ExceptionPolicy(stuck_after=timedelta(days=30)), 3600.0)
    app = ServiceApp(
        "tracking",
        settings,
        processors=[ingress.join, fold],
        routes=ingress.routes,
        on_start=[ingress.on_start],
        on_stop=[ingress.on_stop],
    )
    await app.start()
    try:
        for topic, event in (
            (topics.INTAKE_SHIPMENTS, requested(SHIPMENT)),
            (topics.ALLOCATIONS, allocated(SHIPMENT, tracking_number=NUMBER)),
        ):
            env = new_envelope(event, source="test", tenant_id="acme", id=f"sec-{topic}")
            await app.publisher.publish(topic, SHIPMENT, env)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.http), base_url="http://t")

        async def post(carrier: str, payload: Any, secret: str, at: datetime = now) -> int:
            body = json.dumps(payload).encode()
            ts = int(at.timestamp())
            answer = await client.post(
                f"/v1/carriers/{carrier}/events",
                content=body,
                headers={
                    "X-Handoff-Timestamp": str(ts),
                    "X-Handoff-Signature": signature_header([secret], ts, body),
                    "content-type": "application/json",
                },
            )
            return answer.status_code

        # The webhook answers 503 until it knows who owns which tracking number.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            if await post("swift", [], "sw-secret") != 503 or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)

        refused = {
            "swift-badsig": await post("swift", [scan("swift-badsig")], "guessed"),
            "swift-stale": await post(
                "swift", [scan("swift-stale")], "sw-secret", now - timedelta(minutes=6)
            ),
            "nordpost-foreign": await post(
                "nordpost", [scan("nordpost-foreign", carrier="nordpost")], "np-secret"
            ),
            "swift-huge": await post(
                "swift", [scan("swift-huge", description="x" * 70_000)], "sw-secret"
            ),
        }
        assert refused["swift-badsig"] == 401
        assert refused["swift-stale"] == 401
        assert refused["nordpost-foreign"] == 403
        assert refused["swift-huge"] == 413
        assert await post("swift", [scan("swift-barrier")], "sw-secret") == 202

        codec = ShipmentStateCodec()
        seen: set[str] = set()
        while loop.time() < deadline + 60:
            records = await read_topic(kafka_bootstrap, prefix + topics.STATE, 1, timeout=5)
            states = [
                codec.decode(r.value, r.headers)
                for r in records
                if r.key == SHIPMENT.encode() and r.value
            ]
            seen = {h.carrier_event_id or "" for s in states for h in s.history}
            if "swift-barrier" in seen:
                break
            await asyncio.sleep(0.5)
        assert "swift-barrier" in seen, "the valid scan never reached the state"
        assert not seen & set(refused), f"refused calls reached the state: {seen & set(refused)}"
    finally:
        await app.stop()
