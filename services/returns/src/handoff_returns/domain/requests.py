"""Return requests before any decision: shape rules and routing from order to shipment.

The same rules run for the HTTP edge (a 422 naming the field) and the topic
(a DLQ record naming the field), so a request means the same thing whichever
way it arrives. Routing is pure: given what is known about an order's
shipments, which shipment does a request return?
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from handoff_events.contracts import ReturnRequested
from handoff_events.ids import digest
from handoff_events.values import Reason


def rma_id(tenant_id: str, return_request_id: str) -> str:
    """One RMA per (tenant, marketplace request id): a duplicate request maps to the same RMA."""
    return "rma_" + digest("rma", tenant_id, return_request_id)


def shape_problems(request: ReturnRequested) -> list[Reason]:
    """What the schema cannot say: at least one item, each SKU once."""
    problems: list[Reason] = []
    if not request.items:
        problems.append(
            Reason(code="schema_violation", field="$.items", message="at least one item")
        )
    seen: set[str] = set()
    for index, item in enumerate(request.items):
        if item.sku in seen:
            problems.append(
                Reason(
                    code="schema_violation",
                    field=f"$.items[{index}].sku",
                    message="each SKU once per request (add up the quantities)",
                    value=item.sku,
                )
            )
        seen.add(item.sku)
    return problems


class IndexedShipment(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    origin_location_id: str
    skus: list[str]


class OrderIndex(msgspec.Struct, frozen=True, kw_only=True):
    """The requests stage's store value, keyed `<tenant>/<order_id>`."""

    shipments: list[IndexedShipment] = []
    routed: dict[str, str] = {}
    """return_request_id -> the shipment id it was routed to (duplicates are dropped here)."""

    def with_shipment(self, shipment: IndexedShipment) -> OrderIndex:
        kept = [s for s in self.shipments if s.shipment_id != shipment.shipment_id]
        ordered = sorted([*kept, shipment], key=lambda s: s.shipment_id)
        return msgspec.structs.replace(self, shipments=ordered)

    def with_routed(self, return_request_id: str, shipment_id: str) -> OrderIndex:
        return msgspec.structs.replace(self, routed={**self.routed, return_request_id: shipment_id})


class Unroutable(Exception):
    """The request cannot be tied to one shipment; carries the reason for the DLQ."""

    def __init__(self, reason: Reason):
        super().__init__(f"{reason.code}: {reason.message}")
        self.reason = reason


def route(request: ReturnRequested, shipments: Sequence[IndexedShipment]) -> str:
    """The shipment a request returns.

    A named `shipment_id` wins (the ledger checks it belongs to the order). Otherwise: the
    order's only shipment, or the one shipment that holds every requested SKU.
    """
    if request.shipment_id:
        return request.shipment_id
    if not shipments:
        raise Unroutable(
            Reason(
                code="unknown_order",
                field="$.order_id",
                message="no shipment of this order is known; name shipment_id",
                value=request.order_id,
            )
        )
    if len(shipments) == 1:
        return shipments[0].shipment_id
    wanted = {item.sku for item in request.items}
    holders = [s for s in shipments if wanted <= set(s.skus)]
    if len(holders) == 1:
        return holders[0].shipment_id
    raise Unroutable(
        Reason(
            code="shipment_id_required",
            field="$.shipment_id",
            message=f"the order has {len(shipments)} shipments and the items do not single one "
            "out: name shipment_id",
            value=",".join(s.shipment_id for s in shipments),
        )
    )
