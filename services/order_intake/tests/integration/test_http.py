"""The HTTP edge over ASGI with the real publisher on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from handoff_events import topics
from handoff_events.ids import shipment_id
from handoff_events.runtime.app import ServiceApp
from handoff_order_intake.bootstrap import build_app
from handoff_order_intake.settings import OrderIntakeSettings

from services.order_intake.tests.integration.kafka_io import (
    eventually,
    provision_intake,
    read_topic,
)
from services.order_intake.tests.unit.orders import order_doc

pytestmark = pytest.mark.kafka
NOW = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
ACME = {"Authorization": "Bearer acme-key"}


def _settings(bootstrap: str, prefix: str, state_dir: Path) -> OrderIntakeSettings:
    return OrderIntakeSettings(
        topic_prefix=prefix,
        partitions=3,
        kafka_bootstrap_servers=bootstrap,
        state_dir=state_dir,
    )


@pytest.fixture
async def app(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> AsyncIterator[ServiceApp]:
    """The service with its topics provisioned: requests that publish, and the stream stages."""
    prefix = f"{unique_name}."
    await provision_intake(kafka_bootstrap, prefix)
    service = build_app(_settings(kafka_bootstrap, prefix, tmp_path), clock=lambda: NOW)
    await service.publisher.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def client(app: ServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        yield http


@pytest.fixture
async def edge(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The edge with a started publisher but no topics: for requests refused before publishing
    (a request that did reach `publish` would fail with 503, never 4xx)."""
    service = build_app(_settings(kafka_bootstrap, f"{unique_name}.", tmp_path), clock=lambda: NOW)
    await service.publisher.start()
    transport = httpx.ASGITransport(app=service.http)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
            yield http
    finally:
        await service.stop()


async def test_an_order_over_http_is_in_kafka_on_202_and_becomes_a_shipment(
    app: ServiceApp, client: httpx.AsyncClient
) -> None:
    response = await client.post("/v1/orders", json=order_doc(order_id="H-1"), headers=ACME)
    assert response.status_code == 202, response.text
    body = response.json()
    expected = shipment_id("acme", "H-1", "WH-BER-1")
    assert body["shipment_ids"] == [expected]
    orders_topic = app.settings.topic_prefix + topics.ORDERS
    assert body["topic"] == orders_topic

    # 202 means Kafka already has it: the record is there at the answered position.
    records = await read_topic(app.settings.kafka_bootstrap_servers, orders_topic)
    (record,) = [
        r for r in records if (r.partition, r.offset) == (body["partition"], body["offset"])
    ]
    assert record.key == "acme/H-1"
    assert record.headers["ce_id"].decode() == body["event_id"]
    assert record.headers["ce_tenantid"] == b"acme"
    assert record.headers["ce_type"] == b"handoff.order.placed.v1"

    again = await client.post("/v1/orders", json=order_doc(order_id="H-1"), headers=ACME)
    assert again.json()["event_id"] == body["event_id"], "same tenant+order+content, same id"

    # The one decision path: the stream stage turns the HTTP-published order into a shipment.
    await app.start()
    shipments_topic = app.settings.topic_prefix + topics.INTAKE_SHIPMENTS

    async def shipped() -> list[Any]:
        out = await read_topic(app.settings.kafka_bootstrap_servers, shipments_topic)
        return [r for r in out if r.key == expected]

    (shipment,) = await eventually(shipped, "the shipment request")
    assert shipment.ce_type == "handoff.shipment.requested.v1"


async def test_cancellation_over_http_is_accepted_with_or_without_a_body(
    app: ServiceApp, client: httpx.AsyncClient
) -> None:
    empty = await client.post("/v1/orders/H-2/cancel", headers=ACME)
    assert empty.status_code == 202, empty.text
    with_reason = await client.post(
        "/v1/orders/H-2/cancel",
        json={"reason": "customer", "origin_location_ids": ["WH-BER-1"]},
        headers={"X-Api-Key": "acme-key"},
    )
    assert with_reason.status_code == 202
    assert with_reason.json()["event_id"] != empty.json()["event_id"]
    records = await read_topic(
        app.settings.kafka_bootstrap_servers, app.settings.topic_prefix + topics.ORDERS
    )
    assert {r.key for r in records} == {"acme/H-2"}
    assert {r.headers["ce_type"] for r in records} == {b"handoff.order.cancelled.v1"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-Api-Key": ""}, {"Authorization": "acme-key"}],
)
async def test_no_valid_key_is_401(edge: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await edge.post("/v1/orders", json=order_doc(), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "unauthorized"
    cancel = await edge.post("/v1/orders/A-1/cancel", headers=headers)
    assert cancel.status_code == 401


def _without(path: str) -> dict[str, Any]:
    doc = order_doc()
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    del node[last]
    return doc


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_without("ship_to.city"), "$.ship_to.city"),
        ({**order_doc(), "placed_at": "2026-11-20T10:00:00"}, "$.placed_at"),
        (
            {**order_doc(), "parcels": [{**order_doc()["parcels"][0], "weight_g": "heavy"}]},
            "$.parcels[0].weight_g",
        ),
        ({**order_doc(), "service_level": "teleport"}, "$.service_level"),
        ({**order_doc(), "order_id": "no spaces please"}, "$.order_id"),
    ],
)
async def test_a_malformed_body_is_422_naming_the_field(
    edge: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await edge.post("/v1/orders", json=body, headers=ACME)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field
    assert problem["status"] == 422


async def test_not_json_is_400_and_a_bad_order_id_in_the_path_is_422(
    edge: httpx.AsyncClient,
) -> None:
    response = await edge.post("/v1/orders", content=b"{nope", headers=ACME)
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_json"
    bad_id = await edge.post("/v1/orders/-bad%20id/cancel", headers=ACME)
    assert bad_id.status_code == 422
    assert bad_id.json()["field"] == "order_id"
    bad_body = await edge.post(
        "/v1/orders/A-1/cancel", json={"origin_location_ids": "WH-BER-1"}, headers=ACME
    )
    assert bad_body.status_code == 422
    assert bad_body.json()["field"] == "$.origin_location_ids"


async def test_openapi_is_served(edge: httpx.AsyncClient) -> None:
    response = await edge.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"] == "3.1.0"
