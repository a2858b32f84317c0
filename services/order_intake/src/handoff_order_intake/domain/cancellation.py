"""Deciding a shipment's cancellation against its latest known status (pure).

The "cancellations" stage keeps, per shipment id, the latest canonical status
seen on `handoff.shipments.updates.v1` and answers each `CancellationRequested`:

* no status yet, `requested`, `quoted`: `ShipmentCancelled(release_capacity=False)`;
* `allocated`: `ShipmentCancelled(release_capacity=True)`: carrier allocation
  releases the capacity and voids the label;
* picked up or later (the carrier has the parcel): `CancellationRefused`
  with reason `already_picked_up`;
* terminal (`delivered`, `rejected`, `cancelled`, `allocation_failed`,
  `returned_to_sender`): `CancellationRefused` with reason `already_<status>`.

A shipment this stage has already cancelled is never cancelled twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from handoff_events.contracts import (
    TERMINAL_STATUSES,
    CancellationRefused,
    CancellationRequested,
    ShipmentCancelled,
    ShipmentUpdate,
)
from handoff_events.values import Reason

NOT_ALLOCATED: frozenset[str | None] = frozenset({None, "requested", "quoted"})
ALLOCATED = "allocated"


class ShipmentStatusView(msgspec.Struct, frozen=True, kw_only=True):
    """Order intake's view of one shipment: enough to decide a cancellation."""

    status: str | None = None
    order_id: str | None = None
    status_at: datetime | None = None
    cancelled: bool = False
    """This stage has emitted `ShipmentCancelled` for the shipment."""


def observe_update(view: ShipmentStatusView | None, update: ShipmentUpdate) -> ShipmentStatusView:
    """Fold one shipment update into the view; a late update never leaves a terminal status."""
    current = view or ShipmentStatusView()
    if current.status in TERMINAL_STATUSES and update.status not in TERMINAL_STATUSES:
        return current
    return msgspec.structs.replace(
        current, status=update.status, order_id=update.order_id, status_at=update.occurred_at
    )


@dataclass(frozen=True)
class CancellationDecision:
    view: ShipmentStatusView | None
    """The view to store (None = unchanged)."""
    event: ShipmentCancelled | CancellationRefused | None
    kind: Literal["cancelled", "refused", "already_cancelled"]


def decide_shipment_cancellation(
    view: ShipmentStatusView | None, request: CancellationRequested, *, now: datetime
) -> CancellationDecision:
    current = view or ShipmentStatusView(order_id=request.order_id)
    if current.cancelled:
        return CancellationDecision(None, None, "already_cancelled")
    status = current.status
    if status in NOT_ALLOCATED or status == ALLOCATED:
        cancelled = ShipmentCancelled(
            shipment_id=request.shipment_id,
            order_id=request.order_id,
            cancelled_at=now,
            reason=request.reason,
            release_capacity=status == ALLOCATED,
        )
        return CancellationDecision(
            msgspec.structs.replace(current, cancelled=True), cancelled, "cancelled"
        )
    if status in TERMINAL_STATUSES:
        code = f"already_{status}"
        message = f"the shipment is already {status}"
    else:
        code = "already_picked_up"
        message = f"the carrier has the parcel (status {status}); ask the carrier to return it"
    refused = CancellationRefused(
        shipment_id=request.shipment_id,
        order_id=request.order_id,
        refused_at=now,
        reasons=[Reason(code=code, field="status", message=message, value=status)],
    )
    return CancellationDecision(None, refused, "refused")
