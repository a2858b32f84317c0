"""The per-shipment allocation fold (pure): state + event + now → new state + events to emit.

One `ShipmentAllocation` per shipment, stored by the "shipments" stage. The
life of an allocation:

    collecting ──(request and quotes known)──▶ reserving ──(CapacityReserved)──▶ tendering
        │                                        │  ▲                              │
        │                              refused   │  │ next candidate   declined /  │
        │                                        ▼  │                  timed out   │
        │                                     (advance) ◀──────────────────────────┤
        │                                        │ none left                       │ accepted
        ▼                                        ▼                                 ▼
    cancelled                                  failed                          allocated

Rules that keep capacity exact:
- A candidate whose reservation was *requested* is released as soon as it is
  abandoned (declined, timed out, cancelled), whether or not the grant has
  arrived yet: the release is keyed by the same bucket, so the bucket's owner
  sees it after the reservation and the two cancel out. Therefore replies for
  requests that are no longer current are simply ignored.
- A release names the reservation it releases (its `request_id` is the
  reservation's request id), so a stale release can never free a newer slot.

Tender replies that are no longer current (the tender timed out, was declined
earlier, or the shipment was cancelled) never change the allocation. A late
*acceptance* gets a `TenderWithdrawn` to that carrier so it voids the label it
created; capacity was already released when the tender was abandoned.

Every id here is derived from the shipment id and the attempt number, so a
re-run of the same input against the same state emits the same events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import msgspec
from handoff_events.contracts import (
    AllocationDecision,
    AllocationFailed,
    AllocationReleased,
    Candidate,
    CapacityBucket,
    CapacityRefused,
    CapacityReleaseRequested,
    CapacityReservationRequested,
    CapacityReserved,
    CarrierAllocated,
    Event,
    Quote,
    RatesQuoted,
    ShipmentCancelled,
    ShipmentRequested,
    TenderAccepted,
    TenderDeclined,
    TenderedShipment,
    TenderFailed,
    TenderRequested,
    TenderWithdrawn,
)
from handoff_events.ids import digest
from handoff_events.values import Money, Reason, Requirements, ServiceLevel

from handoff_carrier_allocation.domain.policy import (
    Objective,
    Policy,
    Ranked,
    Scorecard,
    explain,
    rank,
    why_lost,
)

Phase = Literal["collecting", "reserving", "tendering", "allocated", "failed", "cancelled"]
ACTIVE_PHASES: frozenset[str] = frozenset({"reserving", "tendering"})
SETTLED_PHASES: frozenset[str] = frozenset({"allocated", "failed", "cancelled"})
"""Phases no transition tenders from again."""
Outcome = Literal["not_tried", "chosen", "declined", "timed_out", "no_capacity", "cancelled"]


class ShipmentFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What allocation needs from the shipment request to tender it."""

    order_id: str
    service_level: ServiceLevel
    requirements: Requirements
    tendered: TenderedShipment | None
    """What a tender tells the carrier, the recipient's address and contact included;
    None once the allocation is settled (`without_recipient`)."""
    is_return: bool = False


class CandidateState(msgspec.Struct, frozen=True, kw_only=True):
    quote: Quote
    score: float
    preferred: bool
    outcome: Outcome = "not_tried"
    detail: str | None = None


class IneligibleState(msgspec.Struct, frozen=True, kw_only=True):
    carrier: str
    service: str | None
    quote_id: str | None
    total: Money | None
    reasons: list[Reason]


class Allocated(msgspec.Struct, frozen=True, kw_only=True):
    carrier: str
    service: str
    tracking_number: str
    label_ref: str
    tender_id: str
    request_id: str
    bucket: CapacityBucket


class ShipmentAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """The store value of one shipment in the "shipments" stage."""

    shipment_id: str
    tenant_id: str
    phase: Phase = "collecting"
    facts: ShipmentFacts | None = None
    quotes: RatesQuoted | None = None
    policy_id: str | None = None
    objective: Objective | None = None
    explanation: str = ""
    candidates: list[CandidateState] = []
    ineligible: list[IneligibleState] = []
    cursor: int = -1
    """Index into `candidates` of the candidate being reserved or tendered."""
    request_id: str | None = None
    """The current reservation request (held or pending), if any."""
    tender_id: str | None = None
    respond_by: datetime | None = None
    allocation: Allocated | None = None

    @property
    def current(self) -> CandidateState | None:
        if 0 <= self.cursor < len(self.candidates):
            return self.candidates[self.cursor]
        return None


@dataclass(frozen=True)
class Step:
    """The result of one transition: the new state and the events it decided (in order)."""

    state: ShipmentAllocation
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    """The knobs a transition needs besides state and event."""

    tender_timeout: timedelta


# ---- deterministic ids --------------------------------------------------------------------


def reservation_id(shipment_id: str, attempt: int) -> str:
    return "cap_" + digest("reserve", shipment_id, attempt)


def tender_id(shipment_id: str, attempt: int) -> str:
    return "tnd_" + digest("tender", shipment_id, attempt)


def bucket_of(quote: Quote) -> CapacityBucket:
    return CapacityBucket(carrier=quote.carrier, hub_id=quote.hub_id, day=quote.ship_date)


# ---- helpers ------------------------------------------------------------------------------


def _replace_candidate(
    state: ShipmentAllocation, index: int, outcome: Outcome, detail: str | None
) -> list[CandidateState]:
    out = list(state.candidates)
    out[index] = msgspec.structs.replace(out[index], outcome=outcome, detail=detail)
    return out


def _ranked(state: ShipmentAllocation) -> list[Ranked]:
    return [
        Ranked(quote=c.quote, score=c.score, preferred=c.preferred, rank=i)
        for i, c in enumerate(state.candidates)
    ]


_OUTCOME_WORDS = {
    "declined": "declined the tender",
    "timed_out": "did not answer the tender in time",
    "no_capacity": "had no capacity left",
    "cancelled": "was being tried when the shipment was cancelled",
}


def decision_of(state: ShipmentAllocation) -> AllocationDecision:
    """Every candidate with its score, outcome and why it won or lost."""
    ranked = _ranked(state)
    winner = (
        ranked[state.cursor]
        if state.phase == "allocated" and 0 <= state.cursor < len(ranked)
        else None
    )
    candidates: list[Candidate] = []
    history: list[str] = []
    for i, c in enumerate(state.candidates):
        q = c.quote
        reasons: list[Reason] = []
        outcome: str = c.outcome
        if c.outcome == "chosen":
            reasons.append(Reason(code="chosen", message=f"ranked {i + 1} and accepted the tender"))
            history.append(f"{q.carrier}/{q.service} accepted")
        elif c.outcome == "not_tried":
            outcome = "lost" if winner is not None else "not_tried"
            if winner is not None:
                reasons.append(why_lost(ranked[i], winner, state.objective or "fastest"))
        else:
            words = _OUTCOME_WORDS.get(c.outcome, c.outcome)
            reasons.append(
                Reason(code=c.outcome, field="carrier", value=q.carrier, message=c.detail or words)
            )
            history.append(f"{q.carrier}/{q.service} {words}")
        candidates.append(
            Candidate(
                carrier=q.carrier,
                service=q.service,
                quote_id=q.quote_id,
                total=q.price.total,
                score=c.score,
                eligible=True,
                outcome=outcome,
                reasons=reasons,
            )
        )
    for item in state.ineligible:
        candidates.append(
            Candidate(
                carrier=item.carrier,
                service=item.service or "",
                quote_id=item.quote_id,
                total=item.total,
                score=None,
                eligible=False,
                outcome="ineligible",
                reasons=list(item.reasons),
            )
        )
    explanation = state.explanation
    if history:
        explanation += "; tenders: " + ", ".join(history)
    return AllocationDecision(
        policy_id=state.policy_id or "",
        objective=state.objective or "",
        candidates=candidates,
        explanation=explanation,
    )


def _start_candidate(state: ShipmentAllocation, index: int, now: datetime) -> Step:
    """Request capacity for candidate `index`, or fail the allocation when none is left."""
    if index >= len(state.candidates):
        failed = msgspec.structs.replace(
            state,
            phase="failed",
            cursor=len(state.candidates),
            request_id=None,
            tender_id=None,
            respond_by=None,
        )
        return Step(failed, [_allocation_failed(failed, now)])
    quote = state.candidates[index].quote
    request = reservation_id(state.shipment_id, index + 1)
    new_state = msgspec.structs.replace(
        state,
        phase="reserving",
        cursor=index,
        request_id=request,
        tender_id=None,
        respond_by=None,
    )
    return Step(
        new_state,
        [
            CapacityReservationRequested(
                request_id=request,
                shipment_id=state.shipment_id,
                bucket=bucket_of(quote),
                requested_at=now,
            )
        ],
    )


def _allocation_failed(state: ShipmentAllocation, now: datetime) -> AllocationFailed:
    order_id = state.facts.order_id if state.facts else ""
    if not state.candidates:
        summary = Reason(
            code="no_eligible_carrier",
            message=f"no quote is eligible under policy {state.policy_id}",
        )
    else:
        summary = Reason(
            code="all_candidates_failed",
            message=f"all {len(state.candidates)} eligible carriers were tried and none took it",
        )
    reasons = [summary]
    for c in state.candidates:
        reasons.append(
            Reason(
                code=c.outcome,
                field="carrier",
                value=f"{c.quote.carrier}/{c.quote.service}",
                message=c.detail or _OUTCOME_WORDS.get(c.outcome, c.outcome),
            )
        )
    for item in state.ineligible:
        for r in item.reasons:
            reasons.append(
                Reason(
                    code=r.code,
                    field="carrier",
                    value=f"{item.carrier}/{item.service or '-'}",
                    message=r.message,
                )
            )
    return AllocationFailed(
        shipment_id=state.shipment_id,
        order_id=order_id,
        failed_at=now,
        reasons=reasons,
        decision=decision_of(state),
    )


def _abandon_current(
    state: ShipmentAllocation, outcome: Outcome, detail: str | None, now: datetime
) -> tuple[ShipmentAllocation, list[Event]]:
    """Mark the current candidate, release its capacity request, emit TenderFailed if tendered."""
    current = state.current
    if current is None or state.request_id is None:
        return state, []
    events: list[Event] = []
    if state.tender_id is not None and outcome in ("declined", "timed_out"):
        events.append(
            TenderFailed(
                shipment_id=state.shipment_id,
                tender_id=state.tender_id,
                carrier=current.quote.carrier,
                failed_at=now,
                outcome=outcome,
                detail=detail,
            )
        )
    if outcome != "no_capacity":
        events.append(
            CapacityReleaseRequested(
                request_id=state.request_id,
                shipment_id=state.shipment_id,
                bucket=bucket_of(current.quote),
                requested_at=now,
                reason=outcome,
            )
        )
    new_state = msgspec.structs.replace(
        state,
        candidates=_replace_candidate(state, state.cursor, outcome, detail),
        request_id=None,
        tender_id=None,
        respond_by=None,
    )
    return new_state, events


def _advance(
    state: ShipmentAllocation, outcome: Outcome, detail: str | None, now: datetime
) -> Step:
    abandoned, events = _abandon_current(state, outcome, detail, now)
    step = _start_candidate(abandoned, state.cursor + 1, now)
    return Step(step.state, events + step.events)


# ---- transitions --------------------------------------------------------------------------


def new_state(shipment_id: str, tenant_id: str) -> ShipmentAllocation:
    return ShipmentAllocation(shipment_id=shipment_id, tenant_id=tenant_id)


def facts_of(event: ShipmentRequested) -> ShipmentFacts:
    return ShipmentFacts(
        order_id=event.order_id,
        service_level=event.service_level,
        requirements=event.requirements,
        tendered=TenderedShipment(
            origin_location_id=event.origin.location_id,
            origin_postal_code=event.origin.postal_code,
            origin_country=event.origin.country,
            destination=event.destination,
            parcels=event.parcels,
            requirements=event.requirements,
        ),
        is_return=event.is_return,
    )


def without_recipient(state: ShipmentAllocation) -> ShipmentAllocation:
    """What the stage keeps of a state: once the allocation is settled (allocated, failed
    or cancelled) nothing tenders the shipment again, so the recipient's name, address,
    e-mail and phone are dropped from it and from its changelog (data minimisation,
    docs/security.md). The carrier that won has them from its tender."""
    facts = state.facts
    if state.phase not in SETTLED_PHASES or facts is None or facts.tendered is None:
        return state
    return msgspec.structs.replace(state, facts=msgspec.structs.replace(facts, tendered=None))


def _start_if_ready(
    state: ShipmentAllocation,
    policy: Policy,
    scorecards: Mapping[str, Scorecard],
    default_scorecard: Scorecard,
    now: datetime,
) -> Step:
    if state.phase != "collecting" or state.facts is None or state.quotes is None:
        return Step(state)
    ranking = rank(
        state.quotes.quotes,
        policy,
        state.facts.requirements,
        scorecards=scorecards,
        default_scorecard=default_scorecard,
        rated_ineligible=state.quotes.ineligible,
    )
    explanation = explain(ranking, policy)
    if policy.objective == "weighted":
        cards = []
        for carrier in sorted({r.quote.carrier for r in ranking.eligible}):
            card = scorecards.get(carrier)
            if card is None:
                cards.append(f"{carrier} defaults")
            else:
                cards.append(
                    f"{carrier} on-time {card.on_time_rate:.2f} first-attempt "
                    f"{card.first_attempt_rate:.2f} exceptions {card.exception_rate:.2f} "
                    f"({card.shipments_delivered} delivered)"
                )
        if cards:
            explanation += "; scorecards: " + ", ".join(cards)
    ranked_state = msgspec.structs.replace(
        state,
        policy_id=ranking.policy_id,
        objective=ranking.objective,
        explanation=explanation,
        candidates=[
            CandidateState(quote=r.quote, score=r.score, preferred=r.preferred)
            for r in ranking.eligible
        ],
        ineligible=[
            IneligibleState(
                carrier=i.carrier,
                service=i.service,
                quote_id=i.quote_id,
                total=i.total,
                reasons=list(i.reasons),
            )
            for i in ranking.ineligible
        ],
    )
    return _start_candidate(ranked_state, 0, now)


def on_shipment_requested(
    state: ShipmentAllocation | None,
    event: ShipmentRequested,
    *,
    tenant_id: str,
    policy: Policy,
    scorecards: Mapping[str, Scorecard],
    default_scorecard: Scorecard,
    now: datetime,
) -> Step:
    current = state or new_state(event.shipment_id, tenant_id)
    if current.facts is not None:
        return Step(current)  # a duplicate request changes nothing
    with_facts = msgspec.structs.replace(current, facts=facts_of(event))
    return _start_if_ready(with_facts, policy, scorecards, default_scorecard, now)


def on_rates_quoted(
    state: ShipmentAllocation | None,
    event: RatesQuoted,
    *,
    tenant_id: str,
    policy: Policy,
    scorecards: Mapping[str, Scorecard],
    default_scorecard: Scorecard,
    now: datetime,
) -> Step:
    current = state or new_state(event.shipment_id, tenant_id)
    if current.quotes is not None or current.phase != "collecting":
        return Step(current)  # quotes are decided on once; a re-quote does not re-open it
    with_quotes = msgspec.structs.replace(current, quotes=event)
    return _start_if_ready(with_quotes, policy, scorecards, default_scorecard, now)


def on_capacity_reserved(
    state: ShipmentAllocation, event: CapacityReserved, rules: Rules, now: datetime
) -> Step:
    if state.phase != "reserving" or event.request_id != state.request_id:
        return Step(state)
    current = state.current
    facts = state.facts
    # Reserving implies a candidate and the request's facts, not yet settled.
    assert current is not None and facts is not None and facts.tendered is not None
    attempt = state.cursor + 1
    tid = tender_id(state.shipment_id, attempt)
    respond_by = now + rules.tender_timeout
    tendering = msgspec.structs.replace(
        state, phase="tendering", tender_id=tid, respond_by=respond_by
    )
    return Step(
        tendering,
        [
            TenderRequested(
                tender_id=tid,
                shipment_id=state.shipment_id,
                carrier=current.quote.carrier,
                service=current.quote.service,
                service_level=facts.service_level,
                attempt=attempt,
                requested_at=now,
                respond_by=respond_by,
                shipment=facts.tendered,
                is_return=facts.is_return,
            )
        ],
    )


def on_capacity_refused(state: ShipmentAllocation, event: CapacityRefused, now: datetime) -> Step:
    if state.phase != "reserving" or event.request_id != state.request_id:
        return Step(state)
    b = event.bucket
    detail = f"{event.reason}: {b.carrier} at {b.hub_id} on {b.day.isoformat()}"
    return _advance(state, "no_capacity", detail, now)


def _earlier_tender(state: ShipmentAllocation, tid: str) -> bool:
    return any(
        tender_id(state.shipment_id, i + 1) == tid
        for i in range(len(state.candidates))
        if state.candidates[i].outcome != "not_tried" or i == state.cursor
    )


def on_tender_accepted(state: ShipmentAllocation, event: TenderAccepted, now: datetime) -> Step:
    current = state.current
    if (
        state.phase == "tendering"
        and event.tender_id == state.tender_id
        and current is not None
        and event.carrier == current.quote.carrier
        and state.request_id is not None
    ):
        quote = current.quote
        allocated = msgspec.structs.replace(
            state,
            phase="allocated",
            candidates=_replace_candidate(state, state.cursor, "chosen", None),
            respond_by=None,
            allocation=Allocated(
                carrier=quote.carrier,
                service=quote.service,
                tracking_number=event.tracking_number,
                label_ref=event.label_ref,
                tender_id=event.tender_id,
                request_id=state.request_id,
                bucket=bucket_of(quote),
            ),
        )
        return Step(
            allocated,
            [
                CarrierAllocated(
                    shipment_id=state.shipment_id,
                    order_id=state.facts.order_id if state.facts else "",
                    allocated_at=now,
                    carrier=quote.carrier,
                    service=quote.service,
                    tracking_number=event.tracking_number,
                    label_ref=event.label_ref,
                    quote_id=quote.quote_id,
                    price=quote.price.total,
                    estimated_delivery_date=quote.estimated_delivery_date,
                    hub_id=quote.hub_id,
                    decision=decision_of(allocated),
                )
            ],
        )
    if state.allocation is not None and state.allocation.tender_id == event.tender_id:
        return Step(state)  # the accepted tender's reply again: already allocated
    if _earlier_tender(state, event.tender_id):
        # A late acceptance of a tender we gave up on: tell the carrier to void its label.
        return Step(
            state,
            [
                TenderWithdrawn(
                    tender_id=event.tender_id,
                    shipment_id=state.shipment_id,
                    carrier=event.carrier,
                    withdrawn_at=now,
                    reason="cancelled" if state.phase == "cancelled" else "not_current",
                    tracking_number=event.tracking_number,
                    label_ref=event.label_ref,
                )
            ],
        )
    return Step(state)


def on_tender_declined(state: ShipmentAllocation, event: TenderDeclined, now: datetime) -> Step:
    if state.phase != "tendering" or event.tender_id != state.tender_id:
        return Step(state)
    return _advance(state, "declined", event.reason, now)


def on_deadline(state: ShipmentAllocation, now: datetime) -> Step:
    """The timer: a tender unanswered by its `respond_by` fails and the next candidate is tried."""
    if state.phase != "tendering" or state.respond_by is None or now < state.respond_by:
        return Step(state)
    detail = f"no answer by {state.respond_by.isoformat()}"
    return _advance(state, "timed_out", detail, now)


def on_shipment_cancelled(
    state: ShipmentAllocation | None, event: ShipmentCancelled, tenant_id: str, now: datetime
) -> Step:
    """Stop allocating; give back any capacity held or requested; void an allocation."""
    current = state or new_state(event.shipment_id, tenant_id)
    if current.phase in ("cancelled", "failed"):
        return Step(current)
    events: list[Event] = []
    if current.phase == "allocated" and current.allocation is not None:
        a = current.allocation
        events.append(
            CapacityReleaseRequested(
                request_id=a.request_id,
                shipment_id=current.shipment_id,
                bucket=a.bucket,
                requested_at=now,
                reason="cancelled",
            )
        )
        events.append(
            AllocationReleased(
                shipment_id=current.shipment_id,
                released_at=now,
                carrier=a.carrier,
                label_ref=a.label_ref,
            )
        )
        return Step(msgspec.structs.replace(current, phase="cancelled"), events)
    if current.phase in ACTIVE_PHASES:
        abandoned, events = _abandon_current(current, "cancelled", event.reason, now)
        if current.tender_id is not None and current.current is not None:
            events.append(
                TenderWithdrawn(
                    tender_id=current.tender_id,
                    shipment_id=current.shipment_id,
                    carrier=current.current.quote.carrier,
                    withdrawn_at=now,
                    reason="cancelled",
                )
            )
        return Step(msgspec.structs.replace(abandoned, phase="cancelled"), events)
    return Step(msgspec.structs.replace(current, phase="cancelled"))


def deadline(state: ShipmentAllocation) -> datetime | None:
    """When the timer must look at this shipment: its tender's deadline while tendering."""
    return state.respond_by if state.phase == "tendering" else None


def due(states: Sequence[ShipmentAllocation], now: datetime) -> list[ShipmentAllocation]:
    """Shipments whose tender deadline has passed (the timer's work list), in shipment-id order."""
    return sorted(
        (
            s
            for s in states
            if s.phase == "tendering" and s.respond_by is not None and s.respond_by <= now
        ),
        key=lambda s: s.shipment_id,
    )
