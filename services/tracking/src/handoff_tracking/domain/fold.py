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
    keeps its earliest recording. The content part is `_signature` of (carrier code,
    status, sub-status, occurred at, location, proof, description, tracking number),
    normalised here field by field since each field's type is known.
    """
    location, proof = obs.location, obs.proof
    content = digest(
        obs.carrier_code,
        obs.status,
        obs.sub_status,
        obs.occurred_at.timestamp(),
        None if location is None else _JSON.encode(location).decode(),
        None if proof is None else _JSON.encode(proof).decode(),
        obs.description,
        obs.tracking_number,
        length=26,
    )
    return "obs_" + digest(obs.carrier, obs.carrier_event_id, content)


def _signature(*parts: object) -> str:
    """The id contract of a content digest: datetimes as their POSIX timestamp, structs
    as their JSON text, anything else as `str` does."""
    return digest(
        *[
            p.timestamp()
            if isinstance(p, datetime)
            else _JSON.encode(p).decode()
            if isinstance(p, msgspec.Struct)
            else p
            for p in parts
        ],
        length=26,
    )


_JSON = msgspec.json.Encoder()


def _encode(part: msgspec.Struct | None) -> bytes | None:
    return None if part is None else _JSON.encode(part)


def detected_entry_id(detected: DetectedException) -> str:
    return "exc_" + digest(detected.shipment_id, detected.kind, detected.anchor)


def entry_for(inp: FoldInput) -> HistoryEntry:
    """The history entry an event becomes (applied/note are decided by `derive`)."""
    ev = inp.event
    if isinstance(ev, TrackingObserved):  # the hot case: carrier scans
        return HistoryEntry(
            event_id=observation_entry_id(ev),
            type=ev.ce_type,
            occurred_at=ev.occurred_at,
            recorded_at=ev.received_at,
            status=ev.status,
            sub_status=ev.sub_status,
            source=f"carrier:{ev.carrier}",
            description=ev.description,
            facts=ShipmentFacts(carrier=ev.carrier, tracking_number=ev.tracking_number),
            location=ev.location,
            carrier_event_id=ev.carrier_event_id,
            carrier_code=ev.carrier_code,
            proof=ev.proof,
        )
    status: str | None = None
    sub_status: str | None = None
    description: str | None = None
    facts: ShipmentFacts | None = None
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
    recorded = inp.recorded_at or occurred
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
    )


# ---- derivation -------------------------------------------------------------------------
_OrderKey = tuple[float, int, str]
_ScanKeys = tuple[tuple[object, ...], tuple[object, ...]]


def _order_key(entry: HistoryEntry) -> _OrderKey:
    return (
        entry.occurred_at.timestamp(),
        _TIE_RANK.get(entry.status, _NO_STATUS_RANK),
        entry.event_id,
    )


def _representative_key(entry: HistoryEntry) -> tuple[bool, bool, _OrderKey]:
    # Terminal, known scans win a duplicate group, so adding a non-terminal copy can
    # never displace a terminal one (terminal statuses stay terminal).
    return (entry.status not in TERMINAL_STATUSES, entry.status == "unknown", _order_key(entry))


def _scan_keys(e: HistoryEntry) -> _ScanKeys:
    """The two identities of a carrier scan: (carrier, carrier event id) and its content."""
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
    return ("id", carrier, e.carrier_event_id), content


def _duplicates(scans: list[tuple[HistoryEntry, _ScanKeys]]) -> dict[str, str]:
    """Entry id -> representative id, for carrier scans that are the same occurrence.

    Two scans are one occurrence when they share the carrier event id or the content;
    that relation is closed transitively (union-find), so the grouping depends only on
    the set of scans, never on the order they arrived in.
    """
    parent = {e.event_id: e.event_id for e, _ in scans}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_by_key: dict[tuple[object, ...], str] = {}
    merged = False
    for e, keys in scans:
        for key in keys:
            other = first_by_key.setdefault(key, e.event_id)
            if other == e.event_id:
                continue
            a, b = find(other), find(e.event_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
                merged = True
    if not merged:
        return {}
    groups: dict[str, list[HistoryEntry]] = {}
    for e, _ in scans:
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
_astuple = msgspec.structs.astuple
_replace = msgspec.structs.replace


class _Accumulator:
    """The derivation walked so far: entries are stepped in order (`_order_key`).

    `derive` is a fresh accumulator stepped over the sorted entries; when a new entry
    sorts after all of them and is no duplicate, the fold steps a copy of the cached
    accumulator once instead. After `finish` an accumulator is never stepped again:
    the state and the derivation it returned share its containers.
    """

    __slots__ = (
        "attempts",
        "blocked",
        "delivered",
        "edd_entry",
        "exceptions",
        "facts",
        "history",
        "ids",
        "last_key",
        "picked_up_at",
        "scan_keys",
        "status",
        "status_entry",
        "unknown",
        "updated_at",
    )

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.edd_entry: HistoryEntry | None = None
        self.status = "requested"
        self.status_entry: HistoryEntry | None = None
        self.picked_up_at: datetime | None = None
        self.delivered: HistoryEntry | None = None
        self.attempts: list[DeliveryAttempt] = []
        self.exceptions: dict[str, tuple[ExceptionInfo, HistoryEntry]] = {}
        self.blocked: set[str] = set()
        self.unknown = 0
        self.history: list[HistoryEntry] = []
        self.updated_at: datetime | None = None
        self.last_key: _OrderKey | None = None
        self.ids: dict[str, HistoryEntry] = {}
        """entry id -> its entry as recorded in `history`"""
        self.scan_keys: set[tuple[object, ...]] = set()
        """`_scan_keys` of every carrier scan stepped"""

    def copy(self) -> _Accumulator:
        new = _Accumulator.__new__(_Accumulator)
        new.facts = dict(self.facts)
        new.edd_entry = self.edd_entry
        new.status = self.status
        new.status_entry = self.status_entry
        new.picked_up_at = self.picked_up_at
        new.delivered = self.delivered
        new.attempts = list(self.attempts)
        new.exceptions = dict(self.exceptions)
        new.blocked = set(self.blocked)
        new.unknown = self.unknown
        new.history = list(self.history)
        new.updated_at = self.updated_at
        new.last_key = self.last_key
        new.ids = dict(self.ids)
        new.scan_keys = set(self.scan_keys)
        return new

    def extends(self, entry: HistoryEntry, key: _OrderKey, scan_keys: _ScanKeys | None) -> bool:
        """Whether stepping `entry` here gives what a full derivation would: it is new,
        sorts after everything stepped, and is no duplicate of a scan stepped."""
        if entry.event_id in self.ids:
            return False
        if self.last_key is not None and not key > self.last_key:
            return False
        return scan_keys is None or (
            scan_keys[0] not in self.scan_keys and scan_keys[1] not in self.scan_keys
        )

    def step(
        self,
        e: HistoryEntry,
        key: _OrderKey,
        duplicate_of: str | None,
        scan_keys: _ScanKeys | None,
    ) -> None:
        applied, note = True, None
        status = self.status
        if e.facts is not None:
            facts = self.facts
            for name, value in zip(_FACT_FIELDS, _astuple(e.facts), strict=True):
                if value is not None:
                    facts[name] = value
            if e.facts.estimated_delivery_date is not None:
                self.edd_entry = e
        if duplicate_of is not None:
            applied, note = False, f"duplicate of {duplicate_of}"
        elif e.status == "unknown":
            self.unknown += 1
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
            self.exceptions.setdefault(e.event_id, (info, e))
        elif e.status is not None:
            if _may_move(status, e.status):
                self.status, self.status_entry = e.status, e
                _apply_carrier_effects(e, self.attempts, self.exceptions)
                if e.status in CARRIER_STATUSES and self.picked_up_at is None:
                    self.picked_up_at = e.occurred_at
                if e.status == "delivered":
                    self.delivered = e
            else:
                applied = False
                if status in TERMINAL_STATUSES:
                    self.blocked.add(e.event_id)
                    note = f"after terminal status {status}: kept, status not moved"
                else:
                    note = f"older step: status stays {status}"
        recorded = (
            e
            if e.applied == applied and e.note == note
            else _replace(e, applied=applied, note=note)
        )
        self.history.append(recorded)
        self.ids[e.event_id] = recorded
        if scan_keys is not None:
            self.scan_keys.update(scan_keys)
        if self.updated_at is None or e.recorded_at > self.updated_at:
            self.updated_at = e.recorded_at
        self.last_key = key

    def finish(self, shipment_id: str, tenant_id: str) -> Derivation:
        if self.updated_at is None:
            raise ValueError("a derivation needs at least one entry")
        facts = self.facts
        exceptions = self.exceptions
        promised_by = facts.get("promised_by")
        edd: date | None = facts.get("estimated_delivery_date")
        edd_entry = self.edd_entry
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
            # Not in the accumulator: the entry behind the estimate may change later.
            exceptions = dict(exceptions)
            exceptions.setdefault(f"late|projected|{edd_entry.event_id}", (info, edd_entry))

        origin_country = facts.get("origin_country")
        origin_postal_code = facts.get("origin_postal_code")
        destination_country = facts.get("destination_country")
        destination_postal_code = facts.get("destination_postal_code")
        lane = (
            lane_of(
                origin_country, origin_postal_code, destination_country, destination_postal_code
            )
            if origin_country
            and origin_postal_code
            and destination_country
            and destination_postal_code
            else None
        )
        delivered = self.delivered
        delivered_at = delivered.occurred_at if delivered else None
        on_time = (
            delivered_at <= promised_by
            if delivered_at is not None and promised_by is not None
            else None
        )
        reasons = facts.get("reasons") or []
        status_entry = self.status_entry
        state = ShipmentState(
            shipment_id=shipment_id,
            order_id=facts.get("order_id") or "",
            tenant_id=tenant_id,
            status=self.status,
            updated_at=self.updated_at,
            version=len(self.history),
            sub_status=status_entry.sub_status if status_entry else None,
            service_level=facts.get("service_level"),
            origin_location_id=facts.get("origin_location_id"),
            destination_postal_code=destination_postal_code,
            destination_country=destination_country,
            carrier=facts.get("carrier"),
            service=facts.get("service"),
            tracking_number=facts.get("tracking_number"),
            label_ref=facts.get("label_ref"),
            price=facts.get("price"),
            placed_at=facts.get("placed_at"),
            promised_by=promised_by,
            estimated_delivery_date=edd,
            picked_up_at=self.picked_up_at,
            delivered_at=delivered_at,
            proof=delivered.proof if delivered else None,
            attempts=self.attempts,
            exceptions=sorted(
                (info for info, _ in exceptions.values()), key=lambda x: (x.detected_at, x.kind)
            )
            if exceptions
            else [],
            reasons=list(reasons),
            is_return=bool(facts.get("is_return", False)),
            return_of_shipment_id=facts.get("return_of_shipment_id"),
            rma_id=facts.get("rma_id"),
            history=self.history,
            origin_postal_code=origin_postal_code,
            origin_country=origin_country,
            lane=lane,
            return_shipment_id=facts.get("return_shipment_id"),
            on_time=on_time,
            unknown_observations=self.unknown,
        )
        return Derivation(state, self.blocked, status_entry, exceptions)

    def as_recorded(self) -> _Accumulator:
        """This accumulator as a derivation of the history it recorded would leave it.

        A derivation keeps the entries it was *given* as causes (the status entry, the
        delivery, exception causes, the estimate's entry); the next fold is given the
        recorded versions instead (with `applied` and `note` set), so those are what a
        cached accumulator must hold. Returns a shallow copy when anything differs.
        """
        ids = self.ids
        exceptions = self.exceptions
        for _, cause in exceptions.values():
            if cause is not ids[cause.event_id]:
                exceptions = {k: (info, ids[c.event_id]) for k, (info, c) in exceptions.items()}
                break
        status_entry, delivered, edd_entry = self.status_entry, self.delivered, self.edd_entry
        if status_entry is not None:
            status_entry = ids[status_entry.event_id]
        if delivered is not None:
            delivered = ids[delivered.event_id]
        if edd_entry is not None:
            edd_entry = ids[edd_entry.event_id]
        if (
            exceptions is self.exceptions
            and status_entry is self.status_entry
            and delivered is self.delivered
            and edd_entry is self.edd_entry
        ):
            return self
        new = _Accumulator.__new__(_Accumulator)
        for name in _Accumulator.__slots__:
            setattr(new, name, getattr(self, name))
        new.exceptions = exceptions
        new.status_entry = status_entry
        new.delivered = delivered
        new.edd_entry = edd_entry
        return new


def derive(shipment_id: str, tenant_id: str, entries: Iterable[HistoryEntry]) -> Derivation:
    """The state implied by a set of history entries (order of `entries` is irrelevant)."""
    return _derive(shipment_id, tenant_id, entries)[0]


def _derive(
    shipment_id: str, tenant_id: str, entries: Iterable[HistoryEntry]
) -> tuple[Derivation, _Accumulator]:
    # Ids are distinct after `_distinct`, so the keys alone decide the order.
    keyed = sorted((_order_key(e), e) for e in _distinct(entries))
    scans = {e.event_id: _scan_keys(e) for _, e in keyed if e.carrier_event_id is not None}
    duplicate_of = _duplicates([(e, scans[e.event_id]) for _, e in keyed if e.event_id in scans])
    acc = _Accumulator()
    for key, e in keyed:
        acc.step(e, key, duplicate_of.get(e.event_id), scans.get(e.event_id))
    return acc.finish(shipment_id, tenant_id), acc


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
    tenant_id = event.tenant_id
    before: Derivation | None = None
    base = _EMPTY
    seen: HistoryEntry | None = None
    if state is not None:
        if state.tenant_id != tenant_id:
            raise TenantMismatch(
                f"shipment {shipment_id} belongs to tenant {state.tenant_id!r}, "
                f"event {event.event_id} came from {event.tenant_id!r}"
            )
        cached = _cached(state)
        if cached is not None:
            before, base = cached
            seen = base.ids.get(entry.event_id)
        else:
            seen = next((h for h in state.history if h.event_id == entry.event_id), None)
        if seen is not None and seen.recorded_at <= entry.recorded_at:
            return state, []
        if cached is None:
            before, base = _derive(state.shipment_id, state.tenant_id, state.history)
    key = _order_key(entry)
    scan_keys = _scan_keys(entry) if entry.carrier_event_id is not None else None
    if seen is None and base.extends(entry, key, scan_keys):
        # The new entry comes last and stands alone: the new derivation is the old one
        # plus one step (what `derive` over all the entries would walk to, step by step).
        acc = base.copy()
        acc.step(entry, key, None, scan_keys)
        after = acc.finish(shipment_id, tenant_id)
        recorded = acc.ids[entry.event_id]
        # `base` held recorded entries only; the new one is its own record unless its
        # `applied`/`note` changed.
        cache = acc if recorded is entry else acc.as_recorded()
    else:
        after, acc = _derive(shipment_id, tenant_id, [*(state.history if state else ()), entry])
        recorded = acc.ids[entry.event_id]
        cache = acc.as_recorded()
    _remember(after, cache)
    if before is not None and seen is not None:
        # An earlier recording of an event already folded: same facts, nothing to announce.
        return after.state, []
    return after.state, _milestones(before, after, entry, recorded)


_EMPTY = _Accumulator()
"""The accumulator of no entries (never stepped: the fold steps copies)."""

# The derivation behind the latest state of recently folded shipments, with the
# accumulator that produced it. `fold` needs the derivation of the state it is handed;
# when that state is the very object the previous fold returned (the store hands it
# back), deriving it again from its history would double the cost of every event, and
# a new entry that comes last only needs one more step of the accumulator. Keyed by
# shipment and checked by identity, so a different state object -- restored, replayed,
# constructed in a test -- is derived anew: the cache can change the cost of `fold`,
# never its result.
RECENT_DEFAULT = 50_000


class _Recent(OrderedDict[str, tuple[Derivation, _Accumulator]]):
    limit = RECENT_DEFAULT


_RECENT = _Recent()


def remember_at_most(limit: int) -> None:
    """Bound the derivation cache to the `limit` most recently folded shipments (<= 0:
    `RECENT_DEFAULT`). An entry holds its state, so the cache keeps that many states
    alive whatever the store does: the tracking service gives it the store's bound
    (`HANDOFF_STORE_UNPACKED_MAX`), since a state the store has packed comes back as a
    new object and finds no use for its entry."""
    _RECENT.limit = limit if limit > 0 else RECENT_DEFAULT
    while len(_RECENT) > _RECENT.limit:
        _RECENT.popitem(last=False)


def _cached(state: ShipmentState) -> tuple[Derivation, _Accumulator] | None:
    cached = _RECENT.get(state.shipment_id)
    if cached is not None and cached[0].state is state:
        _RECENT.move_to_end(state.shipment_id)
        return cached
    return None


def _remember(derivation: Derivation, acc: _Accumulator) -> None:
    shipment_id = derivation.state.shipment_id
    _RECENT[shipment_id] = (derivation, acc)
    _RECENT.move_to_end(shipment_id)
    if len(_RECENT) > _RECENT.limit:
        _RECENT.popitem(last=False)


def _update_id(shipment_id: str, milestone: str, *cause: object) -> str:
    return "upd_" + digest(shipment_id, milestone, *cause, length=26)


def _milestones(
    before: Derivation | None, after: Derivation, entry: HistoryEntry, recorded: HistoryEntry
) -> list[Milestone]:
    """`recorded` is `entry` as the new state's history holds it."""
    state = after.state
    sid = state.shipment_id
    out: list[Milestone] = []
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
        new_keys = [key for key in after.exceptions if key not in known]
        for key in sorted(new_keys):
            info, cause = after.exceptions[key]
            # The cause is part of the id: an exception can vanish and come back with
            # another cause (a duplicate group's representative changed), and that is a
            # new announcement, not a second copy of the first.
            update_id = _update_id(sid, "exception", key, cause.event_id)
            out.append(Milestone(update_id, "exception", cause, exception=info))
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
