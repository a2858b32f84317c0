"""The query routes over an in-memory read model: tenant scoping, as_of, paging, problems."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import msgspec
import pytest
from handoff_events.contracts import ShipmentState
from handoff_events.runtime.http import Problem, TenantAuth, parse_api_keys, problem_handler
from handoff_tracking.adapters.read_model import KpiReadModel, ShipmentReadModel
from handoff_tracking.entrypoints.http import ShipmentQueries
from handoff_tracking.openapi import API, openapi_document
from starlette.applications import Starlette

from services.tracking.tests.fold_factories import folded_shipment

ACME = {"X-Api-Key": "acme-key"}
GLOBEX = {"Authorization": "Bearer globex-key"}


@dataclass
class Views:
    shipments: ShipmentReadModel = field(default_factory=ShipmentReadModel)
    kpis: KpiReadModel = field(default_factory=KpiReadModel)
    caught_up: bool = True


shipment = folded_shipment


@pytest.fixture
def views() -> Views:
    views = Views()
    views.shipments.apply(shipment("shp_a1", delivered=True))
    views.shipments.apply(shipment("shp_a2"))
    views.shipments.apply(shipment("shp_a3", delivered=True))
    views.shipments.apply(shipment("shp_g1", tenant="globex"))
    return views


@pytest.fixture
async def client(views: Views) -> httpx.AsyncClient:
    queries = ShipmentQueries(views, TenantAuth(parse_api_keys("acme:acme-key,globex:globex-key")))
    app = Starlette(routes=queries.routes(), exception_handlers={Problem: problem_handler})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_state_is_served_to_its_tenant_only(client: httpx.AsyncClient) -> None:
    mine = await client.get("/v1/shipments/shp_a1", headers=ACME)
    assert mine.status_code == 200
    assert msgspec.json.decode(mine.content, type=ShipmentState).status == "delivered"
    theirs = await client.get("/v1/shipments/shp_a1", headers=GLOBEX)
    missing = await client.get("/v1/shipments/shp_nope", headers=GLOBEX)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"]
    assert theirs.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/shipments/shp_a1")).status_code == 401


async def test_as_of_refolds_the_history(client: httpx.AsyncClient) -> None:
    then = await client.get(
        "/v1/shipments/shp_a1", params={"as_of": "2026-11-20T08:45:00+00:00"}, headers=ACME
    )
    assert then.json()["status"] == "in_transit"
    before = await client.get(
        "/v1/shipments/shp_a1", params={"as_of": "2026-11-19T00:00:00Z"}, headers=ACME
    )
    assert before.status_code == 404
    bad = await client.get("/v1/shipments/shp_a1", params={"as_of": "yesterday"}, headers=ACME)
    assert bad.status_code == 400 and bad.json()["field"] == "as_of"


async def test_events_are_the_history_in_event_time_order(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/shipments/shp_a1/events", headers=ACME)).json()
    times = [e["occurred_at"] for e in body["events"]]
    assert len(times) == 4 and times == sorted(times)


async def test_listing_is_tenant_scoped_filtered_and_paged(client: httpx.AsyncClient) -> None:
    first = (
        await client.get(
            "/v1/shipments", params={"limit": "1", "status": "delivered"}, headers=ACME
        )
    ).json()
    assert [i["shipment_id"] for i in first["items"]] == ["shp_a1"]
    assert first["next_cursor"] == "shp_a1"
    second = (
        await client.get(
            "/v1/shipments",
            params={"limit": "1", "status": "delivered", "cursor": first["next_cursor"]},
            headers=ACME,
        )
    ).json()
    assert [i["shipment_id"] for i in second["items"]] == ["shp_a3"]
    assert second["next_cursor"] is None
    everything = (await client.get("/v1/shipments", headers=GLOBEX)).json()
    assert [i["shipment_id"] for i in everything["items"]] == ["shp_g1"]
    bad = await client.get("/v1/shipments", params={"limit": "0"}, headers=ACME)
    assert bad.status_code == 400


async def test_not_ready_until_the_read_model_caught_up(
    views: Views, client: httpx.AsyncClient
) -> None:
    views.caught_up = False
    response = await client.get("/v1/shipments/shp_a1", headers=ACME)
    assert response.status_code == 503 and response.json()["reason"] == "not_ready"


def test_openapi_document_names_the_schemas() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert {"ShipmentState", "ShipmentEvents", "ShipmentPage", "KpiPage", "Problem"} <= set(schemas)
    assert "/v1/shipments/{shipment_id}" in doc["paths"]
    assert "/v1/carriers/{carrier}/events" in doc["paths"]


def test_the_committed_openapi_document_is_current() -> None:
    API.check_committed()
