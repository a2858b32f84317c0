"""The JSON API and the page, served from an in-memory read model (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

from handoff_control_tower.bootstrap import ControlTower
from handoff_control_tower.settings import ControlTowerSettings
from handoff_events.contracts import KpiSnapshot, ShipmentState
from handoff_events.examples import EXAMPLES
from starlette.testclient import TestClient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def client() -> tuple[TestClient, ControlTower]:
    tower = ControlTower(
        ControlTowerSettings(service_urls="tracking=http://127.0.0.1:9"), clock=lambda: NOW
    )
    state = EXAMPLES[ShipmentState.ce_type]
    kpi = EXAMPLES[KpiSnapshot.ce_type]
    assert isinstance(state, ShipmentState) and isinstance(kpi, KpiSnapshot)
    tower.model.board.apply(state)
    tower.model.kpis.apply(kpi)
    return TestClient(tower.http), tower


def test_summary_counts_the_example_shipment() -> None:
    http, _ = client()
    doc = http.get("/api/summary").json()
    assert doc["shipments"] == 1
    assert {"status": "out_for_delivery", "count": 1} in doc["by_status"]
    assert doc["kpi"]["delivered"] == 120
    assert doc["generated_at"] == "2026-11-21T12:00:00Z"
    assert doc["caught_up"] is False


def test_shipment_detail_and_problems() -> None:
    http, _ = client()
    state = EXAMPLES[ShipmentState.ce_type]
    assert isinstance(state, ShipmentState)
    doc = http.get(f"/api/shipments/{state.shipment_id}").json()
    assert doc["state"]["tracking_number"] == "SW123456789"
    assert [h["event_id"] for h in doc["timeline"]] == ["evt_1"]
    missing = http.get("/api/shipments/nope")
    assert missing.status_code == 404
    assert missing.json()["reason"] == "not_found"
    bad = http.get("/api/exceptions?limit=0")
    assert bad.status_code == 400 and bad.json()["field"] == "limit"


def test_carriers_services_and_the_page() -> None:
    http, _ = client()
    (swift,) = http.get("/api/carriers").json()["items"]
    assert swift["cost_per_delivery"] == [{"amount": 920, "currency": "EUR"}]
    assert swift["active_shipments"] == 1
    (tracking,) = http.get("/api/services").json()["items"]
    assert tracking["name"] == "tracking" and tracking["up"] is False
    page = http.get("/shipments/anything")
    assert page.status_code == 200 and "control tower" in page.text
    assert http.get("/static/tower.js").status_code == 200
    assert http.get("/health/ready").status_code == 503
