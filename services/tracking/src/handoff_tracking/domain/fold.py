"""The shipment fold: a shipment's state as a pure, deterministic function of its events.

The state keeps every event it has seen as a `HistoryEntry` (with the facts the
event asserted), and everything else -- status, attempts, pickup and delivery
times, proof, exceptions -- is *derived* from that set of entries, sorted by
event time. Folding is therefore set union followed by derivation:

* idempotent: an entry whose id is already in the history changes nothing;
* order-independent: the derivation only looks at the set, never at arrival;
* replayable: `state_as_of` refolds the entries that had occurred by a moment.

Ordering is (occurred_at, canonical lifecycle rank, entry id). Status rules:

* a terminal status (TERMINAL_STATUSES) is never left; the first terminal entry
  in event time decides it, so a late non-terminal event can never move it;
* order intake / rating / allocation steps only move forward
  (requested < quoted < allocated) and never pull a carrier status back;
* after returning_to_sender, forward carrier scans do not move the status
  (returned_to_sender, being terminal, does);
* an `unknown` observation is kept and flagged but never moves the status;
* carrier scans that are the same event (same carrier event id) or the same
  content (code, time, place, proof) are applied once: the others stay in the
  history marked as duplicates.

The fold also returns the *milestones* the new event caused (the updates a
marketplace sees), each with an id derived from the shipment, the milestone and
its cause, so reprocessing after a crash produces the same ids.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgspec
from handoff_events.contracts import (
    TERMINAL_STATUSES,
    AllocationFailed,
    AllocationReleased,
    CancellationRefused,
    CarrierAllocated,
    DeliveryAttempt,
    ExceptionInfo,
    HistoryEntry,
    NotificationDeadLettered,
    NotificationFailed,
    NotificationSent,
    RatesQuoted,
    RatingFailed,
    RefundEligible,
    ReturnAuthorised,
    ReturnExpired,
    ReturnReceived,
    ReturnRefused,
    ShipmentCancelled,
    ShipmentFacts,
    ShipmentRejected,
    ShipmentRequested,
    ShipmentState,
    TenderFailed,
    TrackingObserved,
)
from handoff_events.ids import digest
from handoff_events.values import lane_of

DETECTED_TYPE = "handoff.tracking.exception_detected"
"""History type of an exception found by the timer (stuck, promise missed): no event behind it."""


class DetectedException(msgspec.Struct, frozen=True, kw_only=True):
    """An exception the tracking timer found (carrier silence, promise passed)."""

    shipment_id: str
    kind: str
    """stuck or late"""
    anchor: str
    """What it is about (the last scan's entry id, or `promise`): one per (kind, anchor)."""
    detected_at: datetime
    detail: str | None = None


FoldEvent = (
    ShipmentRequested
    | ShipmentRejected
    | ShipmentCancelled
    | CancellationRefused
    | RatesQuoted
    | RatingFailed
    | CarrierAllocated
    | TenderFailed
    | AllocationFailed
    | AllocationReleased
    | TrackingObserved
    | NotificationSent
    | NotificationFailed
    | NotificationDeadLettered
    | ReturnAuthorised
    | ReturnRefused
    | ReturnReceived
    | RefundEligible
    | ReturnExpired
    | DetectedException
)
FOLD_EVENT_TYPES: tuple[type[Any], ...] = FoldEvent.__args__


@dataclass(frozen=True, slots=True)
class FoldInput:
    """One event for the fold: the payload plus the envelope facts the fold needs."""

    event_id: str
    """The CloudEvents id (deterministic upstream); observations use the carrier's event id."""
    tenant_id: str
    event: FoldEvent
    recorded_at: datetime | None = None
    """When Handoff recorded it (the envelope time); defaults to the event's own time."""


@dataclass(frozen=True, slots=True)
class Milestone:
    """Something a marketplace is told: `milestone` is a key of UPDATE_TYPES."""

    update_id: str
    milestone: str
    cause: HistoryEntry
    exception: ExceptionInfo | None = None


class TenantMismatch(ValueError):
    """An event for a shipment that belongs to another tenant: never folded in."""


# Canonical precedence for events at the same instant: the lifecycle order.
_TIE_RANK: dict[str | None, int] = {
    s: i
    for i, s in enumerate(
        (
            "requested",
            "rejected",
            "quoted",
            "allocated",
            "allocation_failed",
            "cancelled",
            "picked_up",
            "in_transit",
            "available_for_pickup",
            "out_for_delivery",
            "exception",
            "delivery_attempt_failed",
            "returning_to_sender",
            "delivered",
            "returned_to_sender",
            "unknown",
        )
    )
}
_NO_STATUS_RANK = len(_TIE_RANK)
_PRE_CARRIER_RANK = {"requested": 0, "quoted": 1, "allocated": 2}
CARRIER_STATUSES = frozenset(
    {
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivery_attempt_failed",
        "available_for_pickup",
        "delivered",
        "exception",
        "returning_to_sender",
        "returned_to_sender",
    }
)
_RETURN_TO_SENDER = frozenset({"returning_to_sender", "returned_to_sender"})

# Lifecycle events whose arrival is itself a milestone (besides status changes).
_ENTRY_MILESTONES: dict[str, str] = {
    ShipmentRequested.ce_type: "requested",
    ShipmentRejected.ce_type: "rejected",
    RatesQuoted.ce_type: "quoted",
    CarrierAllocated.ce_type: "allocated",
    AllocationFailed.ce_type: "allocation_failed",
    RatingFailed.ce_type: "allocation_failed",
    ShipmentCancelled.ce_type: "cancelled",
    CancellationRefused.ce_type: "cancellation_refused",
    ReturnAuthorised.ce_type: "return_authorised",
    ReturnRefused.ce_type: "return_refused",
    ReturnReceived.ce_type: "return_received",
    RefundEligible.ce_type: "refund_eligible",
    ReturnExpired.ce_type: "return_expired",
}
# Announced even when they do not move the status (a carrier scan raced ahead):
# the marketplace needs the carrier and the tracking number.
_ALWAYS_ANNOUNCED = frozenset({ShipmentRequested.ce_type, CarrierAllocated.ce_type})
_EXCEPTION_SUB_STATUS = {"stuck": "no_scan", "late": "promise_missed"}


# ---- events -> history entries ----------------------------------------------------------
def observation_entry_id(obs: TrackingObserved) -> str:
    """Same carrier event with the same content -> same id (exact redeliveries vanish).

    Everything but `received_at` counts: a redelivery is the same entry, and the fold
    keeps its earliest recording.
    """
    content = _signature(
        obs.carrier_code,
        obs.status,
        obs.sub_status,
        obs.occurred_at,
        obs.location,
        obs.proof,
        obs.description,
        obs.tracking_number,
    )
    return "obs_" + digest(obs.carrier, obs.carrier_event_id, content)


def _signature(*parts: object) -> str:
    def norm(part: object) -> object:
        if isinstance(part, datetime):
            return part.timestamp()
        if isinstance(part, msgspec.Struct):
            return msgspec.json.encode(part).decode()
        return part

    return digest(*(norm(p) for p in parts), length=26)


def _encode(part: msgspec.Struct | None) -> bytes | None:
    return None if part is None else msgspec.json.encode(part)


def detected_entry_id(detected: DetectedException) -> str:
    return "exc_" + digest(detected.shipment_id, detected.kind, detected.anchor)


def entry_for(inp: FoldInput) -> HistoryEntry:
    """The history entry an event becomes (applied/note are decided by `derive`)."""
    ev = inp.event
    status: str | None = None
    sub_status: str | None = None
    description: str | None = None
    facts: ShipmentFacts | None = None
    extra: dict[str, Any] = {}
    source = "tracking"
    event_id = inp.event_id
    match ev:
        case ShipmentRequested():
            occurred, status = ev.requested_at, "requested"
            source = "returns" if ev.is_return else "order_intake"
            facts = ShipmentFacts(
                order_id=ev.order_id,
                service_level=ev.service_level,
                origin_location_id=ev.origin.location_id,
                origin_postal_code=ev.origin.postal_code,
                origin_country=ev.origin.country,
                destination_postal_code=ev.destination.postal_code,
                destination_country=ev.destination.country,
                placed_at=ev.placed_at,
                promised_by=ev.promised_by,
                is_return=ev.is_return,
                return_of_shipment_id=ev.return_of_shipment_id,
                rma_id=ev.rma_id,
            )
        case ShipmentRejected():
            occurred, status, source = ev.rejected_at, "rejected", "order_intake"
            facts = ShipmentFacts(order_id=ev.order_id, reasons=list(ev.reasons))
        case ShipmentCancelled():
            occurred, status, source = ev.cancelled_at, "cancelled", "order_intake"
            description = ev.reason
            facts = ShipmentFacts(order_id=ev.order_id)
        case CancellationRefused():
            occurred, source = ev.refused_at, "order_intake"
            description = "cancellation refused"
            facts = ShipmentFacts(order_id=ev.order_id, reasons=list(ev.reasons))
        case RatesQuoted():
            occurred, status, source = ev.quoted_at, "quoted", "rate_shopping"
            description = f"{len(ev.quotes)} quotes, {len(ev.ineligible)} carriers ineligible"
            facts = ShipmentFacts(order_id=ev.order_id)
        case RatingFailed():
            occurred, status, source = ev.failed_at, "allocation_failed", "rate_shopping"
            sub_status = "no_carrier_quoted"
            facts = ShipmentFacts(order_id=ev.order_id, reasons=list(ev.reasons))
        case CarrierAllocated():
            occurred, status, source = ev.allocated_at, "allocated", "carrier_allocation"
            description = ev.decision.explanation
            facts = ShipmentFacts(
                order_id=ev.order_id,
                carrier=ev.carrier,
                service=ev.service,
                tracking_number=ev.tracking_number,
                label_ref=ev.label_ref,
                price=ev.price,
                estimated_delivery_date=ev.estimated_delivery_date,
            )
        case TenderFailed():
            occurred, source = ev.failed_at, "carrier_allocation"
            sub_status = f"tender_{ev.outcome}"
            description = f"tender to {ev.carrier} {ev.outcome}" + (
                f": {ev.detail}" if ev.detail else ""
            )
        case AllocationFailed():
            occurred, status, source = ev.failed_at, "allocation_failed", "carrier_allocation"
            facts = ShipmentFacts(order_id=ev.order_id, reasons=list(ev.reasons))
        case AllocationReleased():
            occurred, source = ev.released_at, "carrier_allocation"
            description = f"allocation to {ev.carrier} released, label voided"
        case TrackingObserved():
            occurred, status, sub_status = ev.occurred_at, ev.status, ev.sub_status
            source = f"carrier:{ev.carrier}"
            description = ev.description
            event_id = observation_entry_id(ev)
            extra = {
                "location": ev.location,
                "carrier_event_id": ev.carrier_event_id,
                "carrier_code": ev.carrier_code,
                "proof": ev.proof,
            }
            facts = ShipmentFacts(carrier=ev.carrier, tracking_number=ev.tracking_number)
        case NotificationSent():
            occurred, source = ev.sent_at, "notifications"
            description = (
                f"{ev.channel} notification for {ev.milestone} sent (attempt {ev.attempt})"
            )
        case NotificationFailed():
            occurred, source = ev.failed_at, "notifications"
            description = f"{ev.channel} notification for {ev.milestone} failed: {ev.error}"
        case NotificationDeadLettered():
            occurred, source = ev.dead_lettered_at, "notifications"
            description = (
                f"{ev.channel} notification for {ev.milestone} dead-lettered "
                f"after {ev.attempts} attempts"
            )
        case ReturnAuthorised():
            occurred, source = ev.authorised_at, "returns"
            description = f"return {ev.rma_id} authorised ({ev.reason_code}, {ev.method})"
            facts = ShipmentFacts(
                order_id=ev.order_id, rma_id=ev.rma_id, return_shipment_id=ev.return_shipment_id
            )
        case ReturnRefused():
            occurred, source = ev.refused_at, "returns"
            description = "return refused"
            facts = ShipmentFacts(order_id=ev.order_id, reasons=list(ev.reasons))
        case ReturnReceived():
            occurred, source = ev.received_at, "returns"
            description = f"return {ev.rma_id} received"
            facts = ShipmentFacts(rma_id=ev.rma_id, return_shipment_id=ev.return_shipment_id)
        case RefundEligible():
            occurred, source = ev.eligible_at, "returns"
            description = f"refund eligible ({ev.policy_outcome})"
            facts = ShipmentFacts(order_id=ev.order_id, rma_id=ev.rma_id)
        case ReturnExpired():
            occurred, source = ev.expired_at, "returns"
            description = f"return {ev.rma_id} expired"
            facts = ShipmentFacts(rma_id=ev.rma_id, return_shipment_id=ev.return_shipment_id)
        case DetectedException():
            occurred, sub_status = ev.detected_at, ev.kind
            description = ev.detail
            event_id = detected_entry_id(ev)
        case _:  # pragma: no cover - the union is closed
            raise TypeError(f"not a fold event: {type(ev).__name__}")
    ce_type = DETECTED_TYPE if isinstance(ev, DetectedException) else ev.ce_type
    recorded = ev.received_at if isinstance(ev, TrackingObserved) else (inp.recorded_at or occurred)
    return HistoryEntry(
        event_id=event_id,
        type=ce_type,
        occurred_at=occurred,
        recorded_at=recorded,
        status=status,  # type: ignore[arg-type]
        sub_status=sub_status,
        source=source,
        description=description,
        facts=facts,
        **extra,
    )


# ---- derivation -------------------------------------------------------------------------
def _order_key(entry: HistoryEntry) -> tuple[float, int, str]:
    return (
        entry.occurred_at.timestamp(),
        _TIE_RANK.get(entry.status, _NO_STATUS_RANK),
        entry.event_id,
    )


def _representative_key(entry: HistoryEntry) -> tuple[bool, bool, tuple[float, int, str]]:
    # Terminal, known scans win a duplicate group, so adding a non-terminal copy can
    # never displace a terminal one (terminal statuses stay terminal).
    return (entry.status not in TERMINAL_STATUSES, entry.status == "unknown", _order_key(entry))


def _duplicates(entries: list[HistoryEntry]) -> dict[str, str]:
    """Entry id -> representative id, for carrier scans that are the same occurrence.

    Two scans are one occurrence when they share the carrier event id or the content;
    that relation is closed transitively (union-find), so the grouping depends only on
    the set of scans, never on the order they arrived in.
    """
    scans = [e for e in entries if e.carrier_event_id is not None]
    parent = {e.event_id: e.event_id for e in scans}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_by_key: dict[tuple[object, ...], str] = {}
    for e in scans:
        carrier = e.facts.carrier if e.facts else None
        content = (
            "content",
            carrier,
            e.carrier_code,
            e.status,
            e.sub_status,
            e.occurred_at.timestamp(),
            _encode(e.location),
            _encode(e.proof),
        )
        for key in (("id", carrier, e.carrier_event_id), content):
            other = first_by_key.setdefault(key, e.event_id)
            a, b = find(other), find(e.event_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[str, list[HistoryEntry]] = {}
    for e in scans:
        groups.setdefault(find(e.event_id), []).append(e)
    out: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        rep = min(members, key=_representative_key).event_id
        for m in members:
            if m.event_id != rep:
                out[m.event_id] = rep
    return out


def _distinct(entries: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """One entry per id; of two recordings of the same event, the earliest is kept."""
    by_id: dict[str, HistoryEntry] = {}
    for e in entries:
        kept = by_id.get(e.event_id)
        if kept is None or e.recorded_at < kept.recorded_at:
            by_id[e.event_id] = e
    return list(by_id.values())


def _may_move(current: str, candidate: str) -> bool:
    if current in TERMINAL_STATUSES:
        return False
    if candidate in TERMINAL_STATUSES:
        return True
    if candidate in _PRE_CARRIER_RANK:
        return (
            current in _PRE_CARRIER_RANK
            and _PRE_CARRIER_RANK[candidate] > _PRE_CARRIER_RANK[current]
        )
    if current == "returning_to_sender":
        return candidate == "exception"
    return True


@dataclass
class Derivation:
    """A derived state plus what the milestone diff needs to know about it."""

    state: ShipmentState
    terminal_blocked: set[str] = field(default_factory=set)
    status_entry: HistoryEntry | None = None
    exceptions: dict[str, tuple[ExceptionInfo, HistoryEntry]] = field(default_factory=dict)
    """exception key -> (exception, the entry that caused it)"""


_FACT_FIELDS = tuple(ShipmentFacts.__struct_fields__)


def derive(shipment_id: str, tenant_id: str, entries: Iterable[HistoryEntry]) -> Derivation:
    """The state implied by a set of history entries (order of `entries` is irrelevant)."""
    ordered = sorted(_distinct(entries), key=_order_key)
    duplicate_of = _duplicates(ordered)
    facts: dict[str, Any] = {}
    edd_entry: HistoryEntry | None = None
    status = "requested"
    status_entry: HistoryEntry | None = None
    picked_up_at: datetime | None = None
    delivered: HistoryEntry | None = None
    attempts: list[DeliveryAttempt] = []
    exceptions: dict[str, tuple[ExceptionInfo, HistoryEntry]] = {}
    blocked: set[str] = set()
    unknown = 0
    history: list[HistoryEntry] = []

    def add_exception(key: str, info: ExceptionInfo, cause: HistoryEntry) -> None:
        exceptions.setdefault(key, (info, cause))

    for e in ordered:
        applied, note = True, None
        if e.facts is not None:
            for name in _FACT_FIELDS:
                value = getattr(e.facts, name)
                if value is not None:
                    facts[name] = value
            if e.facts.estimated_delivery_date is not None:
                edd_entry = e
        if e.event_id in duplicate_of:
            applied, note = False, f"duplicate of {duplicate_of[e.event_id]}"
        elif e.status == "unknown":
            unknown += 1
            applied = False
            note = (
                f"unknown carrier code {e.carrier_code!r}: recorded and flagged, status not moved"
            )
        elif e.type == DETECTED_TYPE:
            kind = e.sub_status or "exception"
            info = ExceptionInfo(
                kind=kind,
                detected_at=e.occurred_at,
                detail=e.description,
                sub_status=_EXCEPTION_SUB_STATUS.get(kind),
            )
            add_exception(e.event_id, info, e)
        elif e.status is not None:
            if _may_move(status, e.status):
                status, status_entry = e.status, e
                _apply_carrier_effects(e, attempts, exceptions)
                if e.status in CARRIER_STATUSES and picked_up_at is None:
                    picked_up_at = e.occurred_at
                if e.status == "delivered":
                    delivered = e
            else:
                applied = False
                if status in TERMINAL_STATUSES:
                    blocked.add(e.event_id)
                    note = f"after terminal status {status}: kept, status not moved"
                else:
                    note = f"older step: status stays {status}"
        history.append(msgspec.structs.replace(e, applied=applied, note=note))

    promised_by = facts.get("promised_by")
    edd: date | None = facts.get("estimated_delivery_date")
    if (
        edd_entry is not None
        and edd is not None
        and promised_by is not None
        and edd > promised_by.date()
    ):
        info = ExceptionInfo(
            kind="late",
            detected_at=edd_entry.occurred_at,
            detail=f"estimated delivery {edd.isoformat()} is after the promise",
            sub_status="projected",
        )
        add_exception(f"late|projected|{edd_entry.event_id}", info, edd_entry)

    ends: tuple[str | None, ...] = tuple(
        facts.get(name)
        for name in (
            "origin_country",
            "origin_postal_code",
            "destination_country",
            "destination_postal_code",
        )
    )
    lane = lane_of(*ends) if all(ends) else None  # type: ignore[arg-type]
    delivered_at = delivered.occurred_at if delivered else None
    on_time = (
        delivered_at <= promised_by
        if delivered_at is not None and promised_by is not None
        else None
    )
    reasons = facts.get("reasons") or []
    state = ShipmentState(
        shipment_id=shipment_id,
        order_id=facts.get("order_id") or "",
        tenant_id=tenant_id,
        status=status,
        updated_at=max(e.recorded_at for e in ordered),
        version=len(ordered),
        sub_status=status_entry.sub_status if status_entry else None,
        service_level=facts.get("service_level"),
        origin_location_id=facts.get("origin_location_id"),
        destination_postal_code=facts.get("destination_postal_code"),
        destination_country=facts.get("destination_country"),
        carrier=facts.get("carrier"),
        service=facts.get("service"),
        tracking_number=facts.get("tracking_number"),
        label_ref=facts.get("label_ref"),
        price=facts.get("price"),
        placed_at=facts.get("placed_at"),
        promised_by=promised_by,
        estimated_delivery_date=edd,
        picked_up_at=picked_up_at,
        delivered_at=delivered_at,
        proof=delivered.proof if delivered else None,
        attempts=attempts,
        exceptions=sorted(
            (info for info, _ in exceptions.values()), key=lambda x: (x.detected_at, x.kind)
        ),
        reasons=list(reasons),
        is_return=bool(facts.get("is_return", False)),
        return_of_shipment_id=facts.get("return_of_shipment_id"),
        rma_id=facts.get("rma_id"),
        history=history,
        origin_postal_code=facts.get("origin_postal_code"),
        origin_country=facts.get("origin_country"),
        lane=lane,
        return_shipment_id=facts.get("return_shipment_id"),
        on_time=on_time,
        unknown_observations=unknown,
    )
    return Derivation(state, blocked, status_entry, exceptions)


def _apply_carrier_effects(
    e: HistoryEntry,
    attempts: list[DeliveryAttempt],
    exceptions: dict[str, tuple[ExceptionInfo, HistoryEntry]],
) -> None:
    """Attempts and event-borne exceptions of a scan that moved the status.

    Exception keys use the scan's content (kind, sub-status, time), not its id, so a
    duplicate scan that becomes the representative does not count as a new exception.
    """
    if e.status == "delivery_attempt_failed":
        attempts.append(
            DeliveryAttempt(attempted_at=e.occurred_at, outcome="failed", sub_status=e.sub_status)
        )
        info = ExceptionInfo(
            kind="failed_attempt",
            detected_at=e.occurred_at,
            detail=e.description,
            sub_status=e.sub_status,
        )
        exceptions.setdefault(
            f"failed_attempt|{e.sub_status}|{e.occurred_at.isoformat()}", (info, e)
        )
    elif e.status == "delivered":
        attempts.append(
            DeliveryAttempt(
                attempted_at=e.occurred_at, outcome="delivered", sub_status=e.sub_status
            )
        )
    elif e.status == "exception":
        info = ExceptionInfo(
            kind="carrier_exception",
            detected_at=e.occurred_at,
            detail=e.description,
            sub_status=e.sub_status,
        )
        exceptions.setdefault(
            f"carrier_exception|{e.sub_status}|{e.occurred_at.isoformat()}", (info, e)
        )
    if e.status in _RETURN_TO_SENDER:
        info = ExceptionInfo(
            kind="returned_to_sender",
            detected_at=e.occurred_at,
            detail=e.description,
            sub_status=e.status,
        )
        # One per shipment: the first scan of the way back.
        exceptions.setdefault("returned_to_sender", (info, e))


# ---- the fold ---------------------------------------------------------------------------
def shipment_id_of(event: FoldEvent) -> str:
    return event.shipment_id


def fold(state: ShipmentState | None, event: FoldInput) -> tuple[ShipmentState, list[Milestone]]:
    """Fold one event into a shipment's state; returns the new state and the milestones it caused.

    Returns the *same* state object (and no milestones) when the event is already in
    the history, so callers can skip writing it.
    """
    entry = entry_for(event)
    shipment_id = shipment_id_of(event.event)
    seen: HistoryEntry | None = None
    if state is not None:
        if state.tenant_id != event.tenant_id:
            raise TenantMismatch(
                f"shipment {shipment_id} belongs to tenant {state.tenant_id!r}, "
                f"event {event.event_id} came from {event.tenant_id!r}"
            )
        seen = next((h for h in state.history if h.event_id == entry.event_id), None)
        if seen is not None and seen.recorded_at <= entry.recorded_at:
            return state, []
        before = _derivation_of(state)
    else:
        before = None
    after = derive(shipment_id, event.tenant_id, [*(state.history if state else ()), entry])
    _remember(after)
    if before is not None and seen is not None:
        # An earlier recording of an event already folded: same facts, nothing to announce.
        return after.state, []
    return after.state, _milestones(before, after, entry)


# The derivation behind the latest state of recently folded shipments. `fold` needs the
# derivation of the state it is handed; when that state is the very object the previous
# fold returned (the store hands it back), deriving it again from its history would
# double the cost of every event. Keyed by shipment and checked by identity, so a
# different state object -- restored, replayed, constructed in a test -- is derived anew:
# the cache can change the cost of `fold`, never its result.
_RECENT: OrderedDict[str, Derivation] = OrderedDict()
_RECENT_LIMIT = 50_000


def _derivation_of(state: ShipmentState) -> Derivation:
    cached = _RECENT.get(state.shipment_id)
    if cached is not None and cached.state is state:
        _RECENT.move_to_end(state.shipment_id)
        return cached
    return derive(state.shipment_id, state.tenant_id, state.history)


def _remember(derivation: Derivation) -> None:
    _RECENT[derivation.state.shipment_id] = derivation
    _RECENT.move_to_end(derivation.state.shipment_id)
    if len(_RECENT) > _RECENT_LIMIT:
        _RECENT.popitem(last=False)


def _update_id(shipment_id: str, milestone: str, *cause: object) -> str:
    return "upd_" + digest(shipment_id, milestone, *cause, length=26)


def _milestones(
    before: Derivation | None, after: Derivation, entry: HistoryEntry
) -> list[Milestone]:
    state = after.state
    sid = state.shipment_id
    out: list[Milestone] = []
    recorded = next(h for h in state.history if h.event_id == entry.event_id)
    was_terminal = before is not None and before.state.status in TERMINAL_STATUSES

    milestone = _ENTRY_MILESTONES.get(entry.type)
    if milestone is not None and entry.event_id not in after.terminal_blocked:
        status_bearing = entry.status is not None
        if not status_bearing or recorded.applied or entry.type in _ALWAYS_ANNOUNCED:
            out.append(Milestone(_update_id(sid, milestone, entry.event_id), milestone, recorded))

    old_status = before.state.status if before else None
    if (
        state.status != old_status
        and state.status in CARRIER_STATUSES
        and after.status_entry is not None
    ):
        milestone = "delivered" if state.status == "delivered" else "status_changed"
        cause = after.status_entry
        # The version is part of the id: a status can come back with the same cause (a
        # duplicate group's representative changed), and that is a new update, not a copy.
        update_id = _update_id(sid, milestone, state.status, cause.event_id, state.version)
        out.append(Milestone(update_id, milestone, cause))

    if not was_terminal:
        known = before.exceptions if before else {}
        for key, (info, cause) in sorted(after.exceptions.items()):
            if key not in known:
                out.append(
                    Milestone(_update_id(sid, "exception", key), "exception", cause, exception=info)
                )
    return out


def state_as_of(state: ShipmentState, as_of: datetime) -> ShipmentState | None:
    """The state as it was at `as_of` (event time): a refold of the entries that had occurred."""
    entries = [e for e in state.history if e.occurred_at <= as_of]
    if not entries:
        return None
    return derive(state.shipment_id, state.tenant_id, entries).state


def fold_all(
    events: Iterable[FoldInput], state: ShipmentState | None = None
) -> ShipmentState | None:
    """Fold many events (tests, oracles, replays)."""
    for event in events:
        state, _ = fold(state, event)
    return state
