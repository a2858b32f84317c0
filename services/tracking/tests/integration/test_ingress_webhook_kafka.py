"""The carrier webhook in a real ServiceApp (real publisher, real broker): a signed batch is stored
and answered 202; every refused request (401, 403, 413, 422) leaves the topic untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from handoff_events import topics
from handoff_events.contracts import CarrierTrackingEvent, TrackingNumberAssigned
from handoff_events.envelope import decode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.app import ServiceApp
from handoff_tracking.ingress import TrackingIngressSettings, build_ingress_parts
from handoff_tracking.ingress.join import partition_for
from handoff_tracking.ingress.signature import signature_header
from handoff_tracking.ingress.webhook import raw_event_id

from tests.support.streams import header, read_topic

pytestmark = pytest.mark.kafka

CODES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "config" / "carrier-codes"
NOW = datetime.now(UTC).replace(microsecond=0)
SECRETS = "nordpost:np-new|np-old,swift:sw-secret"


def event(n: int, carrier: str, number: str, code: str, **over: Any) -> dict[str, Any]:
    return {
        "carrier": carrier,
        "tracking_number": number,
        "event_id": f"{carrier}-{n}",
        "code": code,
        "occurred_at": "2026-11-21T08:12:00+01:00",
        **over,
    }


async def test_webhook_accepts_signed_batches_and_refuses_the_rest(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3)
    settings = TrackingIngressSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        partitions=3,
        state_dir=tmp_path,
        carrier_codes_dir=CODES_DIR,
        carrier_secrets=SECRETS,
    )
    ingress = build_ingress_parts(settings, clock=lambda: NOW)
    app = ServiceApp("tracking", settings, routes=ingress.routes)
    # Handoff allocated a nordpost-format number to velo: nordpost may not post for it.
    owned = new_envelope(
        TrackingNumberAssigned(
            carrier="velo", tracking_number="CP000000000NO", shipment_id="shp_v", assigned_at=NOW
        ),
        source="test",
        tenant_id="acme",
        id="tna-1",
    )
    await app.start()
    try:
        await app.publisher.publish(topics.TRACKING_NUMBERS, "velo/CP000000000NO", owned)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.http), base_url="http://t")

        async def post(
            carrier: str, payload: Any, secret: str, at: datetime = NOW
        ) -> httpx.Response:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            ts = int(at.timestamp())
            return await client.post(
                f"/v1/carriers/{carrier}/events",
                content=body,
                headers={
                    "X-Handoff-Timestamp": str(ts),
                    "X-Handoff-Signature": signature_header([secret], ts, body),
                    "content-type": "application/json",
                },
            )

        good = [
            event(1, "nordpost", "RR123456785DE", "20"),
            event(2, "nordpost", "RR123456785DE", "40"),
            event(3, "nordpost", "RR000000001DE", "51"),
        ]
        accepted = await post("nordpost", good, "np-old")  # the secret being rotated out
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["accepted"] == 3

        refusals = {
            "bad signature": (
                await post("nordpost", [event(9, "nordpost", "RR9", "20")], "guess"),
                401,
            ),
            "stale": (await post("nordpost", good, "np-new", NOW - timedelta(minutes=6)), 401),
            "foreign (allocated)": (
                await post("nordpost", [event(4, "nordpost", "CP000000000NO", "20")], "np-new"),
                403,
            ),
            "foreign (format)": (
                await post("nordpost", [event(5, "nordpost", "SW123456789", "20")], "np-new"),
                403,
            ),
            "oversize": (
                await post(
                    "nordpost",
                    [event(6, "nordpost", "RR123456785DE", "20", description="x" * 1_100_000)],
                    "np-new",
                ),
                413,
            ),
            "too many": (
                await post(
                    "nordpost",
                    [event(n, "nordpost", "RR123456785DE", "20") for n in range(501)],
                    "np-new",
                ),
                413,
            ),
            "invalid": (
                await post(
                    "nordpost",
                    [*good, event(7, "nordpost", "RR123456785DE", "20", occurred_at="soon")],
                    "np-new",
                ),
                422,
            ),
        }
        for name, (response, status) in refusals.items():
            assert response.status_code == status, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json", name
        assert refusals["bad signature"][0].json()["reason"] == "bad_signature"
        assert refusals["stale"][0].json()["reason"] == "stale_timestamp"
        assert refusals["foreign (allocated)"][0].json()["field"] == "$[0].tracking_number"
        assert refusals["invalid"][0].json()["field"] == "$[3].occurred_at"

        records = await read_topic(kafka_bootstrap, prefix + topics.CARRIER_TRACKING, expect=3)
    finally:
        await app.stop()
    assert not ingress.ownership.started, "the follower stops with the app"

    assert len(records) == 3, "only the accepted batch reached the topic"
    by_id = {}
    for record in records:
        envelope = decode(record.value, record.headers)
        assert isinstance(envelope.data, CarrierTrackingEvent)
        key = f"nordpost/{envelope.data.tracking_number}"
        assert record.key.decode() == key
        assert record.partition == partition_for(key, 3)
        assert header(record, "ce_tenantid") == "nordpost"
        by_id[envelope.id] = envelope.data
    assert set(by_id) == {raw_event_id("nordpost", f"nordpost-{n}") for n in (1, 2, 3)}
