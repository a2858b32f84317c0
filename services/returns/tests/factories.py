"""Test data for the returns service: policies, centres, events, and a fake stream context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from handoff_events.contracts import (
    UPDATE_TYPES,
    Origin,
    ReturnItem,
    ReturnRequested,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.ids import shipment_id as derive_shipment_id
from handoff_events.stream.api import Emit
from handoff_events.values import Address, Money, Parcel
from handoff_returns.domain.ledger import ReturnCentre
from handoff_returns.domain.policy import ReturnPolicy

S = TypeVar("S")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CENTRES = {
    "RC-DE-1": ReturnCentre(
        location_id="RC-DE-1",
        name="Kassel returns centre",
        line1="Sandershäuser Str. 34",
        postal_code="34123",
        city="Kassel",
        country="DE",
        time_zone="Europe/Berlin",
    ),
    "RC-NL-1": ReturnCentre(
        location_id="RC-NL-1",
        name="Tilburg returns centre",
        line1="Kraaivenstraat 21",
        postal_code="5048 AB",
        city="Tilburg",
        country="NL",
        time_zone="Europe/Amsterdam",
    ),
}


def policy(**overrides: Any) -> ReturnPolicy:
    values: dict[str, Any] = {
        "tenant_id": "acme",
        "window_days": 14,
        "eligible_reasons": frozenset({"damaged", "wrong_item", "changed_mind", "defective"}),
        "methods": frozenset({"drop_off", "locker", "home_pickup"}),
        "non_returnable_skus": ("GIFT-CARD-*", "FOOD-*"),
        "fees": {"changed_mind": Money(amount=395, currency="EUR")},
        "label_validity": timedelta(days=10),
        "return_centres": {"DE": "RC-DE-1", "NL": "RC-NL-1"},
        "default_time_zone": "Europe/Berlin",
        "customer_time_zones": {"DE": "Europe/Berlin", "NL": "Europe/Amsterdam"},
    }
    values.update(overrides)
    return ReturnPolicy(**values)


def customer(country: str = "DE") -> Address:
    if country == "NL":
        return Address(
            name="Ada Muster",
            line1="Oudegracht 1",
            city="Utrecht",
            postal_code="3511 AA",
            country="NL",
        )
    return Address(
        name="Ada Muster", line1="Torstr. 1", city="Berlin", postal_code="10119", country="DE"
    )


def shipment_requested(
    *,
    tenant: str = "acme",
    order_id: str = "A-1001",
    origin: str = "WH-BER-1",
    skus: tuple[str, ...] = ("SKU-1", "SKU-2"),
    country: str = "DE",
) -> ShipmentRequested:
    return ShipmentRequested(
        shipment_id=derive_shipment_id(tenant, order_id, origin),
        order_id=order_id,
        requested_at=T0 - timedelta(days=3),
        placed_at=T0 - timedelta(days=3),
        service_level="next_day",
        origin=Origin(
            location_id=origin,
            kind="warehouse",
            postal_code="10557",
            city="Berlin",
            country="DE",
            time_zone="Europe/Berlin",
        ),
        destination=customer(country),
        parcels=[Parcel(parcel_id="P1", weight_g=1200, length_mm=300, width_mm=200, height_mm=100)],
        skus=list(skus),
    )


def update(
    shipment_id: str,
    milestone: str,
    status: str,
    at: datetime,
    *,
    tenant: str = "acme",
    order_id: str = "A-1001",
    is_return: bool = False,
) -> ShipmentUpdate:
    return ShipmentUpdate(
        update_id=f"upd-{shipment_id}-{milestone}-{status}",
        shipment_id=shipment_id,
        order_id=order_id,
        tenant_id=tenant,
        milestone=milestone,
        status=status,
        occurred_at=at,
        delivered_at=at if milestone == "delivered" else None,
        is_return=is_return,
    )


def update_type(event: ShipmentUpdate) -> str:
    return UPDATE_TYPES[event.milestone]


def return_requested(
    *,
    request_id: str = "R-1",
    order_id: str = "A-1001",
    skus: tuple[str, ...] = ("SKU-1",),
    reason: str = "damaged",
    method: str = "drop_off",
    at: datetime = T0 + timedelta(days=2),
    shipment_id: str | None = None,
) -> ReturnRequested:
    return ReturnRequested(
        return_request_id=request_id,
        order_id=order_id,
        requested_at=at,
        items=[ReturnItem(sku=s, quantity=1) for s in skus],
        reason_code=reason,  # type: ignore[arg-type]
        method=method,  # type: ignore[arg-type]
        shipment_id=shipment_id,
    )


def wrap(
    data: Any, tenant: str = "acme", ce_id: str | None = None, type: str | None = None
) -> Envelope[Any]:
    return new_envelope(
        data, source="test", tenant_id=tenant, id=ce_id or f"evt-{id(data)}", type=type
    )


class FakeStore(Generic[S]):
    def __init__(self) -> None:
        self.data: dict[str, S] = {}

    def get(self, key: str) -> S | None:
        return self.data.get(key)

    def put(self, key: str, value: S) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, S]]:
        return iter(list(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class FakeContext(Generic[S]):
    """Stands in for the engine's context: one partition, an in-memory store, a settable clock."""

    now: datetime = T0
    store: FakeStore[S] = field(default_factory=FakeStore)
    emits: list[Emit] = field(default_factory=list)
    partition: int = 0
    topic: str = ""
    offset: int = 0
    key: str | None = None

    def emit(self, topic: str, key: str, envelope: Envelope[Any]) -> None:
        self.emits.append(Emit(topic, key, envelope))

    def due(self) -> list[tuple[str, S]]:
        """Every stored value (a superset of what the engine's due index hands over)."""
        return list(self.store.items())

    def take(self) -> list[Emit]:
        out, self.emits = self.emits, []
        return out
