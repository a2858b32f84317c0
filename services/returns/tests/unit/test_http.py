"""POST /v1/returns without a broker: auth, 422 naming the field, 202 after publish, OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from handoff_events import topics
from handoff_events.contracts import ReturnRequested
from handoff_events.envelope import Envelope
from handoff_events.runtime.http import Problem, TenantAuth, parse_api_keys, problem_handler
from handoff_returns.entrypoints.http import request_event_id, routes
from handoff_returns.openapi import API, openapi_document
from starlette.applications import Starlette

from services.returns.tests.factories import T0, return_requested


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Envelope[Any]]] = []

    async def publish(self, topic: str, key: str, envelope: Envelope[Any]) -> tuple[int, int]:
        self.sent.append((topic, key, envelope))
        return 0, len(self.sent) - 1


def client() -> tuple[httpx.AsyncClient, FakePublisher]:
    publisher = FakePublisher()
    auth = TenantAuth(parse_api_keys("acme:acme-key,globex:globex-key"))
    app = Starlette(
        routes=routes(auth, lambda _req: publisher, lambda: T0),  # type: ignore[arg-type,return-value]
        exception_handlers={Problem: problem_handler},
    )
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://returns"), publisher


def body(**kw: Any) -> bytes:
    return msgspec.json.encode(return_requested(**kw))


async def test_accepted_request_is_published_keyed_by_tenant_and_order() -> None:
    http, publisher = client()
    response = await http.post(
        "/v1/returns", content=body(), headers={"Authorization": "Bearer acme-key"}
    )
    assert response.status_code == 202
    [(topic, key, envelope)] = publisher.sent
    assert (topic, key) == (topics.RETURN_REQUESTS, "acme/A-1001")
    assert envelope.tenant_id == "acme" and isinstance(envelope.data, ReturnRequested)
    assert envelope.id == request_event_id("acme", "R-1") == response.json()["event_id"]


async def test_tenant_comes_from_the_api_key() -> None:
    http, publisher = client()
    response = await http.post("/v1/returns", content=body(), headers={"X-Api-Key": "globex-key"})
    assert response.status_code == 202
    assert publisher.sent[0][1] == "globex/A-1001"


async def test_missing_or_wrong_key_is_401() -> None:
    http, publisher = client()
    assert (await http.post("/v1/returns", content=body())).status_code == 401
    wrong = await http.post("/v1/returns", content=body(), headers={"X-Api-Key": "nope"})
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    assert publisher.sent == []


async def test_schema_violation_is_a_422_naming_the_field() -> None:
    http, publisher = client()
    doc = msgspec.json.decode(body())
    doc["items"][0]["quantity"] = 0
    response = await http.post(
        "/v1/returns", content=msgspec.json.encode(doc), headers={"X-Api-Key": "acme-key"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["field"] == "$.items[0].quantity" and problem["reason"] == "schema_violation"
    assert publisher.sent == []


async def test_unknown_reason_code_is_a_422_naming_the_field() -> None:
    http, _ = client()
    doc = msgspec.json.decode(body())
    doc["reason_code"] = "bored"
    response = await http.post(
        "/v1/returns", content=msgspec.json.encode(doc), headers={"X-Api-Key": "acme-key"}
    )
    assert response.status_code == 422 and response.json()["field"] == "$.reason_code"


async def test_repeated_sku_is_a_422_naming_the_item() -> None:
    http, publisher = client()
    response = await http.post(
        "/v1/returns", content=body(skus=("SKU-1", "SKU-1")), headers={"X-Api-Key": "acme-key"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "$.items[1].sku"
    assert publisher.sent == []


async def test_not_json_is_a_400() -> None:
    http, _ = client()
    response = await http.post("/v1/returns", content=b"{nope", headers={"X-Api-Key": "acme-key"})
    assert response.status_code == 400


def test_openapi_document_describes_the_request_schema() -> None:
    doc = openapi_document()
    operation = doc["paths"]["/v1/returns"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    schema = doc["components"]["schemas"][name]
    assert {"return_request_id", "order_id", "items", "reason_code", "method"} <= set(
        schema["required"]
    )
    assert set(operation["responses"]) >= {"202", "401", "422"}


def test_the_committed_openapi_document_is_current() -> None:
    API.check_committed()


async def test_the_documented_example_is_accepted() -> None:
    operation = openapi_document()["paths"]["/v1/returns"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    http, publisher = client()
    response = await http.post("/v1/returns", json=example, headers={"X-Api-Key": "acme-key"})
    assert response.status_code == 202, response.text
    assert publisher.sent[0][2].data.return_request_id == example["return_request_id"]
