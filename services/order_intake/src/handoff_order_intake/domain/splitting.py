"""Splitting an order into shipments: one shipment per origin location.

A parcel leaves from its own `origin_location_id` when it names one, else from
the order's `ship_from`; order lines are attributed the same way. The shipment
id is derived from (tenant, order, origin), so a replay or a duplicate order
yields the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from handoff_events.contracts import OrderLine, OrderPlaced
from handoff_events.ids import digest, shipment_id
from handoff_events.values import Parcel

UNKNOWN_ORIGIN = "unknown"
"""The origin used to key a rejection when the order names no usable ship-from location."""


@dataclass
class OriginPart:
    """What one origin ships: its parcels and lines, with their indexes (for JSON paths)."""

    origin_location_id: str
    parcels: list[tuple[int, Parcel]] = field(default_factory=list)
    lines: list[tuple[int, OrderLine]] = field(default_factory=list)


def _default_origin(order: OrderPlaced) -> str:
    location_id = getattr(order.ship_from, "location_id", None)
    return location_id if isinstance(location_id, str) and location_id else UNKNOWN_ORIGIN


def _origin_of(own: str | None, default: str) -> str:
    # Only an absent origin falls back to ship_from; an empty string is kept and
    # reported by the validator as an unknown location.
    return own if own is not None else default


def split_by_origin(order: OrderPlaced) -> dict[str, OriginPart]:
    """Group parcels and lines by origin, in order of first appearance (parcels first)."""
    default = _default_origin(order)
    parts: dict[str, OriginPart] = {}
    for index, parcel in enumerate(order.parcels):
        origin = _origin_of(parcel.origin_location_id, default)
        parts.setdefault(origin, OriginPart(origin)).parcels.append((index, parcel))
    for index, line in enumerate(order.lines):
        origin = _origin_of(line.origin_location_id, default)
        parts.setdefault(origin, OriginPart(origin)).lines.append((index, line))
    return parts


def planned_shipment_ids(tenant_id: str, order: OrderPlaced) -> list[str]:
    """The shipment ids a valid order will produce (one per origin), as told to HTTP callers."""
    return [shipment_id(tenant_id, order.order_id, origin) for origin in split_by_origin(order)]


def rejection_shipment_id(tenant_id: str, order: OrderPlaced) -> str:
    """The id a rejection of the whole order is keyed by: the ship-from origin's shipment id."""
    return shipment_id(tenant_id, order.order_id, _default_origin(order))


def conflict_shipment_id(tenant_id: str, order_id: str, fingerprint: str) -> str:
    """The id a `conflict` rejection is keyed by.

    Derived from the conflicting content's fingerprint, not from an origin, so
    the rejection never lands on (and never terminates) a real shipment of the
    order that was accepted first; the same conflicting content always maps to
    the same id.
    """
    return "shp_" + digest("shipment-conflict", tenant_id, order_id, fingerprint)
