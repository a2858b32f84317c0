"""Shared fixtures: the sample catalogue and a factory for shipment requests from our locations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from handoff_events.contracts import Origin, ShipmentRequested
from handoff_events.values import Address, Parcel
from handoff_rate_shopping.adapters.catalogue_files import load_catalogue
from handoff_rate_shopping.domain.catalogue import Catalogue

REPO = Path(__file__).resolve().parents[3]
CARRIERS_DIR = REPO / "deploy" / "config" / "carriers"


# The origins order intake resolves (deploy/config/locations.toml ids; cut-off default 17:00).
def _origin(*fields: str) -> Origin:
    location_id, kind, postal_code, city, country, tz = fields
    return Origin(
        location_id=location_id,
        kind=kind,  # type: ignore[arg-type]
        postal_code=postal_code,
        city=city,
        country=country,
        time_zone=tz,
    )


ORIGINS: dict[str, Origin] = {
    o.location_id: o
    for o in (
        _origin("WH-BER-1", "warehouse", "10317", "Berlin", "DE", "Europe/Berlin"),
        _origin("ST-BER-2", "store", "10115", "Berlin", "DE", "Europe/Berlin"),
        _origin("WH-MUC-1", "warehouse", "80939", "München", "DE", "Europe/Berlin"),
        _origin("MFC-AMS-1", "micro_fulfilment", "1043", "Amsterdam", "NL", "Europe/Amsterdam"),
        _origin("RC-DE-1", "return_centre", "04129", "Leipzig", "DE", "Europe/Berlin"),
        _origin("RC-NL-1", "return_centre", "3542", "Utrecht", "NL", "Europe/Amsterdam"),
    )
}


def parcel(
    weight_g: int,
    length_mm: int = 300,
    width_mm: int = 200,
    height_mm: int = 100,
    parcel_id: str = "P1",
) -> Parcel:
    return Parcel(
        parcel_id=parcel_id,
        weight_g=weight_g,
        length_mm=length_mm,
        width_mm=width_mm,
        height_mm=height_mm,
    )


def make_shipment(
    *,
    origin: str | Origin = "WH-BER-1",
    dest_postal: str = "10119",
    dest_country: str = "DE",
    service_level: str = "standard",
    requested_at: datetime,
    parcels: list[Parcel] | None = None,
    shipment_id: str = "shp_test_1",
    **extra: Any,
) -> ShipmentRequested:
    return ShipmentRequested(
        shipment_id=shipment_id,
        order_id="A-1001",
        requested_at=requested_at,
        placed_at=requested_at,
        service_level=service_level,  # type: ignore[arg-type]
        origin=ORIGINS[origin] if isinstance(origin, str) else origin,
        destination=Address(
            name="Ada Muster",
            line1="Torstr. 1",
            city="City",
            postal_code=dest_postal,
            country=dest_country,
        ),
        parcels=parcels if parcels is not None else [parcel(1200)],
        **extra,
    )


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(CARRIERS_DIR)


@pytest.fixture(scope="session")
def shipment_factory() -> Callable[..., ShipmentRequested]:
    return make_shipment


@pytest.fixture(scope="session")
def parcel_factory() -> Callable[..., Parcel]:
    return parcel
