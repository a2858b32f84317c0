"""Example orders for order intake's tests: a valid base order and ways to change it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from handoff_events.contracts import OrderPlaced
from handoff_order_intake.adapters.location_file import load_locations
from handoff_order_intake.domain.locations import LocationCatalogue

REPO = Path(__file__).resolve().parents[4]
LOCATIONS_FILE = REPO / "deploy" / "config" / "locations.toml"
NOW = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)


def catalogue() -> LocationCatalogue:
    return load_locations(LOCATIONS_FILE)


def order_doc(**changes: Any) -> dict[str, Any]:
    """The brief's example order as JSON-ready data, with top-level `changes` applied."""
    doc: dict[str, Any] = {
        "order_id": "A-1001",
        "placed_at": "2026-11-20T10:00:00Z",
        "service_level": "next_day",
        "promised_by": "2026-11-21T20:00:00+01:00",
        "delivery_window": {
            "start": "2026-11-21T17:00:00+01:00",
            "end": "2026-11-21T20:00:00+01:00",
        },
        "ship_from": {"location_id": "WH-BER-1"},
        "ship_to": {
            "name": "Ada Muster",
            "line1": "Torstr. 1",
            "city": "Berlin",
            "postal_code": "10119",
            "country": "DE",
            "email": "ada@example.com",
            "phone": "+4930123456",
            "instructions": "2nd floor",
        },
        "lines": [{"sku": "SKU-1", "quantity": 1, "origin_location_id": "WH-BER-1"}],
        "parcels": [
            {
                "parcel_id": "P1",
                "weight_g": 1200,
                "length_mm": 300,
                "width_mm": 200,
                "height_mm": 100,
                "declared_value": {"amount": 4999, "currency": "EUR"},
            }
        ],
        "requirements": {"signature": False, "min_age": 0, "cold_chain": False},
        "preferences": {"channels": ["email", "sms"], "locale": "de-DE"},
    }
    doc.update(changes)
    return doc


def order(**changes: Any) -> OrderPlaced:
    return msgspec.convert(order_doc(**changes), OrderPlaced)


def with_path(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set `a.b[0].c`-style `path` in a copy of `doc`."""
    copy: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(doc))
    node: Any = copy
    parts = path.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return copy
