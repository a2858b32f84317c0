"""Tenant isolation at every HTTP endpoint that names an order or a shipment (in-process, no
broker): a tenant's API key never reads another tenant's shipment (state, as_of, events,
listings, KPIs), and a cancellation or return request is always filed under the caller's
own tenant -- its key and CloudEvents tenant come from the API key, never from the
request -- so it can only ever address the caller's own orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from handoff_events import topics
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import Envelope
from handoff_events.runtime.http import Problem, TenantAuth, parse_api_keys, problem_handler
from handoff_order_intake.entrypoints.http import order_routes
from handoff_returns.entrypoints.http import routes as return_routes
from handoff_tracking.adapters.read_model import KpiReadModel, ShipmentReadModel
from handoff_tracking.domain.fold import fold_all
from handoff_tracking.entrypoints.http import ShipmentQueries
from starlette.applications import Starlette

from services.tracking.tests.fold_factories import allocated, inp, observed, requested

KEYS = "acme:acme-key,globex:globex-key"
ACME = {"Authorization": "Bearer acme-key"}
GLOBEX = {"X-Api-Key": "globex-key"}
NOBODY: dict[str, str] = {}
FORGED = {"Authorization": "Bearer acme-key-but-longer"}
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


# ---- tracking queries ---------------------------------------------------------------------


@dataclass
class Views:
    shipments: ShipmentReadModel = field(default_factory=ShipmentReadModel)
    kpis: KpiReadModel = field(default_factory=KpiReadModel)
    caught_up: bool = True


def _state(shipment_id: str, tenant: str) -> ShipmentState:
    state = fold_all(
        [
            inp(requested(shipment_id), tenant),
            inp(allocated(shipment_id), tenant),
            inp(observed("delivered", 90, shipment_id=shipment_id), tenant),
        ]
    )
    assert state is not None
    return state


@pytest.fixture
def tracking() -> httpx.AsyncClient:
    views = Views()
    views.shipments.apply(_state("shp_acme_1", "acme"))
    views.shipments.apply(_state("shp_globex_1", "globex"))
    queries = ShipmentQueries(views, TenantAuth(parse_api_keys(KEYS)))
    app = Starlette(routes=queries.routes(), exception_handlers={Problem: problem_handler})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


SHIPMENT_READS = [
    ("state", "/v1/shipments/{id}", {}),
    ("state as_of", "/v1/shipments/{id}", {"as_of": "2026-11-30T00:00:00Z"}),
    ("events", "/v1/shipments/{id}/events", {}),
]


@pytest.mark.parametrize(
    ("what", "path", "params"), SHIPMENT_READS, ids=[r[0] for r in SHIPMENT_READS]
)
@pytest.mark.parametrize(
    ("caller", "owner", "shipment"),
    [(GLOBEX, "acme", "shp_acme_1"), (ACME, "globex", "shp_globex_1")],
    ids=["globex-reads-acme", "acme-reads-globex"],
)
async def test_another_tenants_shipment_is_indistinguishable_from_a_missing_one(
    tracking: httpx.AsyncClient,
    what: str,
    path: str,
    params: dict[str, str],
    caller: dict[str, str],
    owner: str,
    shipment: str,
) -> None:
    own_headers = ACME if owner == "acme" else GLOBEX
    mine = await tracking.get(path.format(id=shipment), params=params, headers=own_headers)
    assert mine.status_code == 200, what
    theirs = await tracking.get(path.format(id=shipment), params=params, headers=caller)
    missing = await tracking.get(path.format(id="shp_nowhere"), params=params, headers=caller)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    # The same answer as for an id that does not exist (up to echoing the id asked for):
    # nothing to tell another tenant's shipment ids from unused ones.
    assert theirs.text.replace(shipment, "<id>") == missing.text.replace("shp_nowhere", "<id>")


@pytest.mark.parametrize(
    ("what", "path", "params"), SHIPMENT_READS, ids=[r[0] for r in SHIPMENT_READS]
)
@pytest.mark.parametrize("headers", [NOBODY, FORGED], ids=["no-key", "forged-key"])
async def test_no_key_or_a_forged_key_reads_nothing(
    tracking: httpx.AsyncClient, what: str, path: str, params: dict[str, str],
    headers: dict[str, str],
) -> None:  # fmt: skip
    answer = await tracking.get(path.format(id="shp_acme_1"), params=params, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == "unauthorized"


async def test_listings_and_kpis_hold_only_the_callers_shipments(
    tracking: httpx.AsyncClient,
) -> None:
    acme = (await tracking.get("/v1/shipments", headers=ACME)).json()
    globex = (await tracking.get("/v1/shipments", headers=GLOBEX)).json()
    assert [i["shipment_id"] for i in acme["items"]] == ["shp_acme_1"]
    assert [i["shipment_id"] for i in globex["items"]] == ["shp_globex_1"]
    for status in ("delivered", "in_transit"):
        page = await tracking.get("/v1/shipments", params={"status": status}, headers=GLOBEX)
        assert "shp_acme_1" not in page.text
    kpis = await tracking.get("/v1/kpis", headers=GLOBEX)
    assert kpis.status_code == 200 and "acme" not in kpis.text
    for path in ("/v1/shipments", "/v1/kpis"):
        assert (await tracking.get(path)).status_code == 401


# ---- order cancellation and returns ---------------------------------------------------------


class CapturingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Envelope[Any]]] = []

    async def publish(self, topic: str, key: str, envelope: Envelope[Any]) -> tuple[int, int]:
        self.published.append((topic, key, envelope))
        return 0, len(self.published) - 1


def _client(routes: list[Any], publisher: CapturingPublisher) -> httpx.AsyncClient:
    app = Starlette(routes=routes, exception_handlers={Problem: problem_handler})
    app.state.app = SimpleNamespace(publisher=publisher)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_cancellation_is_filed_under_the_callers_tenant_only() -> None:
    publisher = CapturingPublisher()
    http = _client(order_routes(TenantAuth(parse_api_keys(KEYS)), lambda: NOW), publisher)
    # globex names acme's order id (and tries to smuggle a tenant in the body).
    answer = await http.post(
        "/v1/orders/ACME-1001/cancel", headers=GLOBEX, json={"tenant_id": "acme", "reason": "x"}
    )
    assert answer.status_code in (202, 422)
    for topic, key, envelope in publisher.published:
        assert topic == topics.ORDERS
        assert key == "globex/ACME-1001"  # globex's own order namespace: acme's is untouched
        assert envelope.tenant_id == "globex"
    for headers in (NOBODY, FORGED):
        refused = await http.post("/v1/orders/ACME-1001/cancel", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
    assert all(env.tenant_id != "acme" for _, _, env in publisher.published)


async def test_a_return_request_is_filed_under_the_callers_tenant_only() -> None:
    publisher = CapturingPublisher()
    http = _client(
        return_routes(TenantAuth(parse_api_keys(KEYS)), lambda _req: publisher, lambda: NOW),  # type: ignore[arg-type,return-value]
        publisher,
    )
    body = {
        "return_request_id": "RR-1",
        "order_id": "ACME-1001",
        "shipment_id": "shp_acme_1",
        "requested_at": "2026-11-21T08:00:00Z",
        "items": [{"sku": "SKU-1", "quantity": 1}],
        "reason_code": "changed_mind",
        "method": "drop_off",
        "tenant_id": "acme",
    }
    answer = await http.post("/v1/returns", headers=GLOBEX, json=body)
    assert answer.status_code in (202, 422), answer.text
    for topic, key, envelope in publisher.published:
        assert topic == topics.RETURN_REQUESTS
        assert key == "globex/ACME-1001"
        assert envelope.tenant_id == "globex"
    for headers in (NOBODY, FORGED):
        refused = await http.post("/v1/returns", headers=headers, json=body)
        assert refused.status_code == 401
    assert all(env.tenant_id != "acme" for _, _, env in publisher.published)
