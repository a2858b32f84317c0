"""The webhook's checks and answers without a broker (fake publisher, in-memory ownership)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from handoff_events import topics
from handoff_events.envelope import Envelope
from handoff_events.runtime.http import Problem, problem_handler
from handoff_events.runtime.settings import ServiceSettings
from handoff_tracking.ingress.code_tables import load_code_tables
from handoff_tracking.ingress.ownership import OwnershipFollower, OwnershipIndex
from handoff_tracking.ingress.signature import signature_header
from handoff_tracking.ingress.webhook import (
    CarrierWebhook,
    decode_scans,
    decode_scans_stepwise,
    raw_event_id,
)
from handoff_tracking.openapi import openapi_document
from starlette.applications import Starlette

CODES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "config" / "carrier-codes"
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
SECRETS = {"swift": ("swift-new", "swift-old"), "nordpost": ("np",), "velo": ("v",)}


class LoadedOwnership(OwnershipFollower):
    """The follower without Kafka: the index is filled by the test."""

    def __init__(self, index: OwnershipIndex):
        super().__init__(ServiceSettings(), index)
        self.ready = True

    async def start(self) -> None:
        pass

    async def caught_up(self, timeout_s: float) -> bool:
        return self.ready


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Envelope[Any]]] = []
        self.fail = False

    async def publish_many(self, items: list[tuple[str, str, Envelope[Any]]]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.published.extend(items)


class Harness:
    def __init__(self) -> None:
        self.index = OwnershipIndex()
        self.ownership = LoadedOwnership(self.index)
        self.publisher = FakePublisher()
        self.now = NOW
        self.webhook = CarrierWebhook(
            tables=load_code_tables(CODES_DIR),
            secrets=SECRETS,
            ownership=self.ownership,
            clock=lambda: self.now,
            replay_window=timedelta(minutes=5),
            max_body_bytes=20_000,
            max_events=5,
        )
        app = Starlette(
            routes=[self.webhook.route()], exception_handlers={Problem: problem_handler}
        )
        app.state.app = SimpleNamespace(publisher=self.publisher, _on_stop=[])
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    async def post(
        self,
        carrier: str,
        payload: Any,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        ts = int(NOW.timestamp()) if timestamp is None else timestamp
        signed = {
            "X-Handoff-Timestamp": str(ts),
            "X-Handoff-Signature": signature_header(
                [secret or SECRETS.get(carrier, ("x",))[0]], ts, body
            ),
            "content-type": "application/json",
        }
        return await self.client.post(
            f"/v1/carriers/{carrier}/events",
            content=body,
            headers=headers if headers is not None else signed,
        )


def event(
    n: int = 1, carrier: str = "swift", number: str = "SW123456789", **over: Any
) -> dict[str, Any]:
    doc = {
        "carrier": carrier,
        "tracking_number": number,
        "event_id": f"{carrier}-{n}",
        "code": "OFD",
        "description": "Out for delivery",
        "occurred_at": "2026-11-21T08:12:00+01:00",
        "location": {"city": "Berlin", "postal_code": "10115", "country": "DE"},
    }
    doc.update(over)
    return doc


@pytest.fixture
def harness() -> Harness:
    return Harness()


async def test_a_signed_batch_is_published_and_accepted(harness: Harness) -> None:
    response = await harness.post("swift", [event(1), event(2, code="DLV")])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {
        "accepted": 2,
        "ids": [raw_event_id("swift", "swift-1"), raw_event_id("swift", "swift-2")],
    }
    assert [(t, k) for t, k, _ in harness.publisher.published] == [
        (topics.CARRIER_TRACKING, "swift/SW123456789")
    ] * 2
    envelope = harness.publisher.published[0][2]
    assert envelope.tenant_id == "swift" and envelope.time == NOW
    assert envelope.type == "handoff.carrier.tracking_event.v1"


async def test_a_single_object_is_accepted(harness: Harness) -> None:
    response = await harness.post("swift", event(1))
    assert response.status_code == 202
    assert len(harness.publisher.published) == 1


async def test_a_secret_in_rotation_is_accepted(harness: Harness) -> None:
    assert (await harness.post("swift", [event(1)], secret="swift-old")).status_code == 202


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret": "wrong"}, "bad_signature"),
        ({"timestamp": int((NOW - timedelta(minutes=6)).timestamp())}, "stale_timestamp"),
        ({"headers": {}}, "missing_timestamp"),
        ({"headers": {"X-Handoff-Timestamp": str(int(NOW.timestamp()))}}, "missing_signature"),
    ],
)
async def test_unauthentic_requests_are_401(
    harness: Harness, kwargs: dict[str, Any], reason: str
) -> None:
    response = await harness.post("swift", [event(1)], **kwargs)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert harness.publisher.published == []


async def test_another_carriers_tracking_number_is_403(harness: Harness) -> None:
    response = await harness.post(
        "nordpost", [event(1, "nordpost", "RR123456785DE"), event(2, "nordpost", "SW123456789")]
    )
    assert response.status_code == 403
    assert response.json()["field"] == "$[1].tracking_number"
    assert response.json()["reason"] == "foreign_tracking_number"
    harness.index.record("velo", "RR123456785DE")
    response = await harness.post("nordpost", [event(1, "nordpost", "RR123456785DE")])
    assert (response.status_code, response.json()["field"]) == (403, "$[0].tracking_number")
    assert harness.publisher.published == []


async def test_an_event_of_another_carrier_is_403(harness: Harness) -> None:
    response = await harness.post("swift", event(1, carrier="velo"))
    assert response.status_code == 403
    assert (response.json()["reason"], response.json()["field"]) == (
        "carrier_mismatch",
        "$.carrier",
    )


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (
            [event(1), event(2), event(3), event(4, occurred_at="yesterday")],
            "$[3].occurred_at",
            "schema_violation",
        ),
        ([event(1, occurred_at="2026-11-21T08:12:00")], "$[0].occurred_at", "schema_violation"),
        ([{k: v for k, v in event(1).items() if k != "code"}], "$[0].code", "schema_violation"),
        (event(1, location={"country": "Germany"}), "$.location.country", "schema_violation"),
        ([event(1, tracking_number="12345")], "$[0].tracking_number", "invalid_tracking_number"),
        ([], "$", "empty_batch"),
        ("swift", "$", "schema_violation"),
    ],
)
async def test_invalid_events_are_422_naming_the_field(
    harness: Harness, payload: Any, field: str, reason: str
) -> None:
    response = await harness.post("swift", payload)
    assert response.status_code == 422, response.text
    assert (response.json()["field"], response.json()["reason"]) == (field, reason)
    assert harness.publisher.published == []


async def test_not_json_is_400(harness: Harness) -> None:
    response = await harness.post("swift", None, raw=b"[{")
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_json")


async def test_oversize_bodies_and_batches_are_413(harness: Harness) -> None:
    big = await harness.post("swift", [event(1, description="x" * 25_000)])
    assert (big.status_code, big.json()["reason"]) == (413, "too_large")
    many = await harness.post("swift", [event(n) for n in range(6)])
    assert (many.status_code, many.json()["reason"]) == (413, "too_many_events")
    assert harness.publisher.published == []


async def test_unknown_carrier_is_404(harness: Harness) -> None:
    response = await harness.post(
        "gigly", [event(1, "gigly", "GG-7K2M9Q4X")]
    )  # no secret configured
    assert (response.status_code, response.json()["reason"]) == (404, "unknown_carrier")


async def test_broker_trouble_is_503_and_ownership_loading_too(harness: Harness) -> None:
    harness.publisher.fail = True
    response = await harness.post("swift", [event(1)])
    assert (response.status_code, response.json()["reason"]) == (503, "unavailable")
    harness.ownership.ready = False
    response = await harness.post("swift", [event(1)])
    assert (response.status_code, response.json()["reason"]) == (503, "ownership_loading")


async def test_the_documented_example_batch_is_accepted(harness: Harness) -> None:
    post = openapi_document()["paths"]["/v1/carriers/{carrier}/events"]["post"]
    batch = post["requestBody"]["content"]["application/json"]["example"]
    response = await harness.post("swift", batch)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(batch) == len(harness.publisher.published)
    assert set(post["responses"]) == {"202", "400", "401", "403", "404", "413", "422", "503"}
    assert post["security"] == [{"CarrierSignature": []}]


async def test_the_refusal_order_holds_when_the_batch_is_also_invalid(harness: Harness) -> None:
    # The one-pass decode of a valid body must not change which problem a bad body gets:
    # JSON first (400), then the count (413), then the first invalid scan (422).
    too_many_and_invalid = [event(1, occurred_at="yesterday")] + [event(n) for n in range(2, 7)]
    many = await harness.post("swift", too_many_and_invalid)
    assert (many.status_code, many.json()["reason"]) == (413, "too_many_events")
    broken = await harness.post("swift", None, raw=b'[{"carrier": "swift"}, oops]')
    assert (broken.status_code, broken.json()["reason"]) == (400, "invalid_json")
    second = await harness.post("swift", [event(1), {"carrier": 7}])
    assert (second.status_code, second.json()["field"]) == (422, "$[1].carrier")
    assert harness.publisher.published == []


@pytest.mark.parametrize(
    "payload", [event(1), [event(1)], [event(n, number=f"SW12345678{n}") for n in range(1, 6)]]
)
def test_the_one_pass_decode_equals_the_stepwise_one(payload: Any) -> None:
    body = json.dumps(payload).encode()
    fast = decode_scans(body, max_events=5)
    assert fast == decode_scans_stepwise(body, max_events=5)
    assert [at for at, _ in fast] == (
        ["$"] if isinstance(payload, dict) else [f"$[{i}]" for i in range(len(payload))]
    )
