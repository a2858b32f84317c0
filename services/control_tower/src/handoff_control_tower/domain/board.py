"""The shipment board (pure): every shipment's latest state, counted by status, and the exception queue.

The board is a complete replica of `handoff.shipments.state.v1` (latest state per
shipment id). It keeps the status counts and the set of shipments that need an
operator incrementally, so a page refresh never walks every shipment.

A shipment is *in the exception queue* when something about it still needs
attention (`open_exceptions`):

* it failed to get a carrier (`allocation_failed`) -- terminal, but someone must act;
* it is not terminal and one of `state.exceptions` is still open: a `late`
  shipment stays late until it ends; any other kind (stuck, failed attempt,
  carrier exception, …) is closed by a later status-moving scan that is not itself
  an exception status;
* it is not terminal and its status is `exception`, `delivery_attempt_failed` or
  `returning_to_sender` even if no exception entry explains it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from handoff_events.contracts import TERMINAL_STATUSES, ShipmentState

STATUS_ORDER: tuple[str, ...] = (
    "requested",
    "quoted",
    "allocated",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivery_attempt_failed",
    "available_for_pickup",
    "exception",
    "returning_to_sender",
    "delivered",
    "returned_to_sender",
    "cancelled",
    "rejected",
    "allocation_failed",
)
"""Canonical statuses in lifecycle order: the order of the bars on the page."""

EXCEPTION_STATUSES: frozenset[str] = frozenset(
    {"exception", "delivery_attempt_failed", "returning_to_sender"}
)
"""Statuses that are themselves a problem (a scan moving *into* one does not close an exception)."""


@dataclass(frozen=True, slots=True)
class OpenException:
    """One reason a shipment is in the exception queue."""

    kind: str
    since: datetime
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A shipment in the exception queue, with everything the queue's row shows."""

    shipment_id: str
    tenant_id: str
    order_id: str
    status: str
    carrier: str | None
    promised_by: datetime | None
    updated_at: datetime
    exceptions: tuple[OpenException, ...]

    @property
    def oldest(self) -> datetime:
        return min(e.since for e in self.exceptions)


def open_exceptions(state: ShipmentState) -> tuple[OpenException, ...]:
    """Why `state` needs an operator now (empty when it does not); see the module docstring."""
    if state.status == "allocation_failed":
        detail = "; ".join(r.message for r in state.reasons) or None
        return (OpenException("allocation_failed", state.updated_at, detail),)
    if state.status in TERMINAL_STATUSES:
        return ()
    # The latest scan that moved the shipment on to a healthy status closes
    # exceptions detected before it.
    moved_on = [
        h.occurred_at
        for h in state.history
        if h.applied
        and h.status is not None
        and h.status not in EXCEPTION_STATUSES
        and h.status != "unknown"
    ]
    last_healthy = max(moved_on, default=None)
    found: list[OpenException] = []
    for info in state.exceptions:
        still_open = info.kind == "late" or last_healthy is None or info.detected_at >= last_healthy
        if still_open:
            found.append(OpenException(info.kind, info.detected_at, info.detail or info.sub_status))
    if not found and state.status in EXCEPTION_STATUSES:
        found.append(OpenException(state.status, state.updated_at, state.sub_status))
    return tuple(found)


class ShipmentBoard:
    """Latest state per shipment plus the incrementally kept status counts and exception queue."""

    def __init__(self) -> None:
        self._states: dict[str, ShipmentState] = {}
        self._by_status: Counter[str] = Counter()
        self._queue: dict[str, QueueEntry] = {}
        self._active_by_carrier: Counter[str] = Counter()
        self._by_tenant: Counter[str] = Counter()
        self.last_updated_at: datetime | None = None

    def apply(self, state: ShipmentState) -> None:
        """Take the latest state of a shipment (the state topic's last record per key wins)."""
        previous = self._states.get(state.shipment_id)
        if previous is not None:
            self._account(previous, -1)
        self._states[state.shipment_id] = state
        self._account(state, +1)
        flags = open_exceptions(state)
        if flags:
            self._queue[state.shipment_id] = QueueEntry(
                shipment_id=state.shipment_id,
                tenant_id=state.tenant_id,
                order_id=state.order_id,
                status=state.status,
                carrier=state.carrier,
                promised_by=state.promised_by,
                updated_at=state.updated_at,
                exceptions=flags,
            )
        else:
            self._queue.pop(state.shipment_id, None)
        if self.last_updated_at is None or state.updated_at > self.last_updated_at:
            self.last_updated_at = state.updated_at

    def remove(self, shipment_id: str) -> None:
        """A tombstone on the state topic: the shipment is gone."""
        previous = self._states.pop(shipment_id, None)
        if previous is None:
            return
        self._account(previous, -1)
        self._queue.pop(shipment_id, None)

    def _account(self, state: ShipmentState, sign: int) -> None:
        # Counters kept per update, so a page refresh never walks every shipment.
        self._by_tenant[state.tenant_id] += sign
        if self._by_tenant[state.tenant_id] <= 0:
            del self._by_tenant[state.tenant_id]
        self._by_status[state.status] += sign
        if self._by_status[state.status] <= 0:
            del self._by_status[state.status]
        if state.carrier is not None and state.status not in TERMINAL_STATUSES:
            self._active_by_carrier[state.carrier] += sign
            if self._active_by_carrier[state.carrier] <= 0:
                del self._active_by_carrier[state.carrier]

    def get(self, shipment_id: str) -> ShipmentState | None:
        return self._states.get(shipment_id)

    def __len__(self) -> int:
        return len(self._states)

    def by_status(self) -> list[tuple[str, int]]:
        """Counts in lifecycle order; statuses with no shipment are listed with 0."""
        known = [(s, self._by_status.get(s, 0)) for s in STATUS_ORDER]
        extra = sorted((s, n) for s, n in self._by_status.items() if s not in STATUS_ORDER)
        return known + extra

    def exception_queue(self, limit: int | None = None) -> list[QueueEntry]:
        """Longest-waiting first: the oldest open exception leads."""
        entries = sorted(self._queue.values(), key=lambda e: (e.oldest, e.shipment_id))
        return entries if limit is None else entries[:limit]

    def queue_size(self) -> int:
        return len(self._queue)

    def queue_by_kind(self) -> list[tuple[str, int]]:
        kinds: Counter[str] = Counter()
        for entry in self._queue.values():
            kinds.update({e.kind for e in entry.exceptions})
        return sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))

    def active_by_carrier(self) -> dict[str, int]:
        """Shipments a carrier holds right now (allocated, not yet terminal)."""
        return dict(self._active_by_carrier)

    def tenants(self) -> int:
        return len(self._by_tenant)
