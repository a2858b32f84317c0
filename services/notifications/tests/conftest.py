"""Shared fixtures for the notifications tests: the real rules and templates, event factories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from handoff_events.contracts import UPDATE_TYPES, ShipmentRequested, ShipmentUpdate
from handoff_events.contracts.intake import Origin
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.values import Address, Parcel, Preferences
from handoff_notifications.adapters.config_files import load_rules
from handoff_notifications.adapters.templates import TemplateRenderer
from handoff_notifications.domain.ledger import Planner, StoredUpdate
from handoff_notifications.domain.rules import RuleBook

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "deploy" / "config" / "notifications"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 13:00 in Berlin: outside quiet hours


@pytest.fixture(scope="session")
def rulebook() -> RuleBook:
    return load_rules(CONFIG / "rules.toml", CONFIG / "time_zones.toml")


@pytest.fixture(scope="session")
def renderer() -> TemplateRenderer:
    return TemplateRenderer(CONFIG / "templates")


@pytest.fixture
def planner(rulebook: RuleBook) -> Planner:
    return Planner(
        rules=rulebook, pepper=b"test-pepper", webhook_tenants=frozenset({"acme", "globex"})
    )


def shipment_requested(
    shipment_id: str = "shp_1",
    *,
    email: str | None = "ada@example.com",
    phone: str | None = "+49301234567",
    country: str = "DE",
    locale: str = "de-DE",
    channels: list[str] | None = None,
    opted_out: bool = False,
    name: str = "Ada Muster",
) -> ShipmentRequested:
    return ShipmentRequested(
        shipment_id=shipment_id,
        order_id=f"A-{shipment_id[-4:]}",
        requested_at=T0,
        placed_at=T0,
        service_level="next_day",
        origin=Origin(
            location_id="WH-BER-1",
            kind="warehouse",
            postal_code="10115",
            city="Berlin",
            country="DE",
            time_zone="Europe/Berlin",
        ),
        destination=Address(
            name=name,
            line1="Torstr. 1",
            city="Berlin",
            postal_code="10119",
            country=country,
            email=email,
            phone=phone,
        ),
        parcels=[Parcel(parcel_id="P1", weight_g=1200, length_mm=300, width_mm=200, height_mm=100)],
        preferences=Preferences(channels=channels or [], locale=locale, opted_out=opted_out),  # type: ignore[arg-type]
    )


def shipment_update(
    milestone: str,
    shipment_id: str = "shp_1",
    *,
    status: str | None = None,
    occurred_at: datetime = T0,
    **extra: Any,
) -> ShipmentUpdate:
    return ShipmentUpdate(
        update_id=f"upd-{shipment_id}-{milestone}-{status}",
        shipment_id=shipment_id,
        order_id=f"A-{shipment_id[-4:]}",
        tenant_id="acme",
        milestone=milestone,
        status=status or milestone,
        occurred_at=occurred_at,
        carrier="swift",
        tracking_number="SW123",
        **extra,
    )


def update_envelope(update: ShipmentUpdate, tenant: str = "acme") -> Envelope[ShipmentUpdate]:
    return new_envelope(
        update,
        source="handoff/tracking",
        tenant_id=tenant,
        type=UPDATE_TYPES[update.milestone],
        caused_by=update.update_id,
        time=update.occurred_at,
    )


def stored(update: ShipmentUpdate, tenant: str = "acme") -> StoredUpdate:
    env = update_envelope(update, tenant)
    return StoredUpdate(
        event_id=env.id,
        event_type=env.type,
        event_source=env.source,
        event_time=env.time,
        update=update,
    )


@pytest.fixture
def factories() -> dict[str, Callable[..., Any]]:
    return {
        "requested": shipment_requested,
        "update": shipment_update,
        "envelope": update_envelope,
        "stored": stored,
    }


@pytest.fixture
def f(factories: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    return factories
