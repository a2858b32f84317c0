"""`POST /v1/quotes` and its OpenAPI document, without a broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import msgspec
from handoff_events.contracts import RatesQuoted, ShipmentRequested
from handoff_events.runtime.http import Problem, TenantAuth, problem_handler
from handoff_rate_shopping.domain.catalogue import Catalogue
from handoff_rate_shopping.domain.transit_history import TransitHistory
from handoff_rate_shopping.entrypoints import http
from handoff_rate_shopping.openapi import API, openapi_document
from handoff_rate_shopping.quoting import Quoter
from starlette.applications import Starlette

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
KEY = {"authorization": "Bearer s3cret"}


class _Client:
    """A synchronous face over httpx's ASGI transport (no server, no threads)."""

    def __init__(self, app: Starlette):
        self.app = app

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rating") as client:
                return await client.post(path, **kwargs)  # type: ignore[arg-type]

        return asyncio.run(call())


def _client(catalogue: Catalogue) -> _Client:
    quoter = Quoter(catalogue, TransitHistory())
    app = Starlette(
        routes=http.routes(quoter, TenantAuth({"s3cret": "acme"}), lambda: NOW),
        exception_handlers={Problem: problem_handler},
    )
    return _Client(app)


def test_quotes_synchronously(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    body = msgspec.json.encode(shipment_factory(service_level="next_day", requested_at=NOW))
    response = _client(catalogue).post("/v1/quotes", content=body, headers=KEY)
    assert response.status_code == 200
    doc = response.json()
    assert doc["shipment_id"] == "shp_test_1"
    assert {q["carrier"] for q in doc["quotes"]} == {"swift", "gigly", "velo"}
    assert all(isinstance(q["price"]["total"]["amount"], int) for q in doc["quotes"])


def test_problems_name_the_field(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    client = _client(catalogue)
    doc = msgspec.to_builtins(shipment_factory(requested_at=NOW))
    doc["parcels"][0]["weight_g"] = -5
    response = client.post("/v1/quotes", json=doc, headers=KEY)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "$.parcels[0].weight_g"
    assert client.post("/v1/quotes", json=doc).status_code == 401

    nowhere = msgspec.to_builtins(
        shipment_factory(requested_at=NOW, dest_country="FR", dest_postal="75001")
    )
    response = client.post("/v1/quotes", json=nowhere, headers=KEY)
    assert response.status_code == 422
    problem = response.json()
    assert problem["reason"] == "no_eligible_carrier"
    assert {e["carrier"] for e in problem["errors"]} == {"nordpost", "swift", "velo", "gigly"}


def test_the_committed_openapi_document_is_current() -> None:
    API.check_committed()


def test_openapi_is_built_from_the_contract() -> None:
    doc = openapi_document()
    operation = doc["paths"]["/v1/quotes"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ShipmentRequested"
    }
    assert "Quote" in doc["components"]["schemas"]
    assert "RatesQuoted" in doc["components"]["schemas"]
    assert operation["responses"]["422"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


def test_the_documented_example_gets_the_documented_kind_of_answer(catalogue: Catalogue) -> None:
    operation = openapi_document()["paths"]["/v1/quotes"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["example"]
    response = _client(catalogue).post("/v1/quotes", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    assert msgspec.convert(response.json(), RatesQuoted).quotes


def test_an_origin_that_cannot_be_dated_is_a_422(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    doc = msgspec.to_builtins(shipment_factory(requested_at=NOW))
    doc["origin"]["time_zone"] = "Mars/Olympus_Mons"
    response = _client(catalogue).post("/v1/quotes", json=doc, headers=KEY)
    assert response.status_code == 422
    problem = response.json()
    assert (problem["reason"], problem["field"], problem["value"]) == (
        "invalid_time_zone",
        "$.origin.time_zone",
        "Mars/Olympus_Mons",
    )
    doc["origin"]["time_zone"] = "Europe/Berlin"
    doc["origin"]["cutoff_local"] = "5pm"
    problem = _client(catalogue).post("/v1/quotes", json=doc, headers=KEY).json()
    assert (problem["reason"], problem["field"]) == ("invalid_cutoff", "$.origin.cutoff_local")
