"""The shipment stage's decision logic, as a pure fold: (state, event, now) → (state, events)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from handoff_carrier_allocation.domain import allocation as fold
from handoff_carrier_allocation.domain.allocation import Rules, ShipmentAllocation, Step
from handoff_carrier_allocation.domain.policy import Policy
from handoff_carrier_allocation.domain.scorecards import ScorecardDefaults
from handoff_events.contracts import (
    AllocationFailed,
    AllocationReleased,
    CapacityRefused,
    CapacityReleaseRequested,
    CapacityReservationRequested,
    CapacityReserved,
    CarrierAllocated,
    ShipmentCancelled,
    TenderAccepted,
    TenderDeclined,
    TenderFailed,
    TenderRequested,
    TenderWithdrawn,
)

from services.carrier_allocation.tests.factories import NOW, quote, rates, request

SID = "shp_1"
POLICY = Policy(policy_id="default", objective="cheapest_meeting_promise")
RULES = Rules(tender_timeout=timedelta(seconds=30))
CARD = ScorecardDefaults().scorecard()
QUOTES = rates(SID, quote("swift", 900), quote("nordpost", 500), quote("velo", 700))


def start(quotes=QUOTES, request_first=True) -> Step:
    kw = dict(tenant_id="acme", policy=POLICY, scorecards={}, default_scorecard=CARD, now=NOW)
    if request_first:
        s1 = fold.on_shipment_requested(None, request(SID), **kw)
        assert s1.events == []
        return fold.on_rates_quoted(s1.state, quotes, **kw)
    s1 = fold.on_rates_quoted(None, quotes, **kw)
    assert s1.events == []
    return fold.on_shipment_requested(s1.state, request(SID), **kw)


def types(step: Step) -> list[str]:
    return [type(e).__name__ for e in step.events]


def reserved(state: ShipmentAllocation) -> CapacityReserved:
    cur = state.current
    assert cur is not None and state.request_id is not None
    return CapacityReserved(
        request_id=state.request_id,
        shipment_id=SID,
        bucket=fold.bucket_of(cur.quote),
        reserved_at=NOW,
        remaining=1,
    )


def refused(state: ShipmentAllocation) -> CapacityRefused:
    cur = state.current
    assert cur is not None and state.request_id is not None
    return CapacityRefused(
        request_id=state.request_id,
        shipment_id=SID,
        bucket=fold.bucket_of(cur.quote),
        refused_at=NOW,
    )


def accepted(state: ShipmentAllocation, tender_id: str | None = None) -> TenderAccepted:
    cur = state.current
    assert cur is not None
    return TenderAccepted(
        tender_id=tender_id or state.tender_id or "",
        shipment_id=SID,
        carrier=cur.quote.carrier,
        tracking_number="NP123456789DE",
        label_ref="lbl-1",
        accepted_at=NOW,
    )


def declined(state: ShipmentAllocation) -> TenderDeclined:
    cur = state.current
    assert cur is not None and state.tender_id is not None
    return TenderDeclined(
        tender_id=state.tender_id, shipment_id=SID, carrier=cur.quote.carrier, declined_at=NOW
    )


@pytest.mark.parametrize("request_first", [True, False])
def test_ranking_starts_with_a_reservation_for_the_best_candidate(request_first):
    step = start(request_first=request_first)
    assert types(step) == ["CapacityReservationRequested"]
    req = step.events[0]
    assert isinstance(req, CapacityReservationRequested)
    assert req.bucket.key == "nordpost/HUB-BER-1/2026-11-20"
    assert step.state.phase == "reserving"
    assert [c.quote.carrier for c in step.state.candidates] == ["nordpost", "velo", "swift"]


def test_happy_path_reserve_tender_accept():
    s = start().state
    step = fold.on_capacity_reserved(s, reserved(s), RULES, NOW)
    assert types(step) == ["TenderRequested"]
    tender = step.events[0]
    assert isinstance(tender, TenderRequested)
    assert tender.respond_by == NOW + timedelta(seconds=30)
    assert tender.carrier == "nordpost" and tender.attempt == 1
    s = step.state
    step = fold.on_tender_accepted(s, accepted(s), NOW)
    assert types(step) == ["CarrierAllocated"]
    allocated = step.events[0]
    assert isinstance(allocated, CarrierAllocated)
    assert allocated.carrier == "nordpost" and allocated.price.amount == 500
    assert allocated.tracking_number == "NP123456789DE"
    outcomes = {(c.carrier, c.outcome) for c in allocated.decision.candidates}
    assert outcomes == {("nordpost", "chosen"), ("velo", "lost"), ("swift", "lost")}
    lost = [c for c in allocated.decision.candidates if c.outcome == "lost"]
    assert all(c.reasons[0].code == "more_expensive" for c in lost)
    assert step.state.phase == "allocated"
    # the same acceptance again changes nothing
    again = fold.on_tender_accepted(step.state, accepted(s), NOW)
    assert again.events == [] and again.state == step.state


# (reply, expected events, expected outcome of the first candidate)
FAILURES = [
    (
        "declined",
        ["TenderFailed", "CapacityReleaseRequested", "CapacityReservationRequested"],
        "declined",
    ),
    (
        "timeout",
        ["TenderFailed", "CapacityReleaseRequested", "CapacityReservationRequested"],
        "timed_out",
    ),
]


@pytest.mark.parametrize(("how", "expected", "outcome"), FAILURES)
def test_decline_or_timeout_releases_and_moves_to_the_next_candidate(how, expected, outcome):
    s = start().state
    s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    if how == "declined":
        step = fold.on_tender_declined(s, declined(s), NOW)
    else:
        assert fold.on_deadline(s, NOW + timedelta(seconds=29)).events == []
        step = fold.on_deadline(s, NOW + timedelta(seconds=30))
    assert types(step) == expected
    failed, release, nxt = step.events
    assert isinstance(failed, TenderFailed) and failed.outcome == outcome
    assert isinstance(release, CapacityReleaseRequested)
    assert release.request_id == s.request_id  # names the reservation it releases
    assert release.bucket.carrier == "nordpost"
    assert isinstance(nxt, CapacityReservationRequested) and nxt.bucket.carrier == "velo"
    assert step.state.candidates[0].outcome == outcome
    assert step.state.cursor == 1


def test_refused_capacity_moves_on_without_a_release():
    s = start().state
    step = fold.on_capacity_refused(s, refused(s), NOW)
    assert types(step) == ["CapacityReservationRequested"]
    assert step.state.candidates[0].outcome == "no_capacity"


def test_exhausted_candidates_fail_with_every_reason():
    s = start().state
    # nordpost: no capacity; velo: declines; swift: times out
    s = fold.on_capacity_refused(s, refused(s), NOW).state
    s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    s = fold.on_tender_declined(s, declined(s), NOW).state
    s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    step = fold.on_deadline(s, NOW + timedelta(minutes=1))
    assert types(step) == ["TenderFailed", "CapacityReleaseRequested", "AllocationFailed"]
    failed = step.events[-1]
    assert isinstance(failed, AllocationFailed)
    assert failed.reasons[0].code == "all_candidates_failed"
    assert [r.code for r in failed.reasons[1:]] == ["no_capacity", "declined", "timed_out"]
    assert failed.decision is not None
    assert [c.outcome for c in failed.decision.candidates] == [
        "no_capacity",
        "declined",
        "timed_out",
    ]
    assert step.state.phase == "failed"


def test_no_eligible_quote_fails_at_once():
    step = start(rates(SID, quote("swift", 900, meets_promise=False)))
    assert types(step) == ["AllocationFailed"]
    failed = step.events[0]
    assert isinstance(failed, AllocationFailed)
    assert [r.code for r in failed.reasons] == ["no_eligible_carrier", "misses_promise"]
    assert failed.decision is not None
    assert failed.decision.candidates[0].outcome == "ineligible"


def test_stale_replies_change_nothing():
    s = start().state
    s1 = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    stale_reservation = reserved(s)  # the same grant again, now that we are tendering
    assert fold.on_capacity_reserved(s1, stale_reservation, RULES, NOW).events == []
    moved = fold.on_tender_declined(s1, declined(s1), NOW).state
    # the declined tender's reply again, and a refusal for the old request
    assert fold.on_tender_declined(moved, declined(s1), NOW).events == []
    assert fold.on_capacity_refused(moved, refused(s), NOW).events == []


def test_late_acceptance_after_timeout_is_withdrawn_not_allocated():
    s = start().state
    s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    late = accepted(s)
    moved = fold.on_deadline(s, NOW + timedelta(seconds=31)).state
    step = fold.on_tender_accepted(moved, late, NOW + timedelta(seconds=40))
    assert types(step) == ["TenderWithdrawn"]
    withdrawn = step.events[0]
    assert isinstance(withdrawn, TenderWithdrawn)
    assert withdrawn.reason == "not_current" and withdrawn.tracking_number == "NP123456789DE"
    assert step.state == moved  # still reserving the next candidate
    # an acceptance for a tender id we never issued is ignored
    bogus = fold.on_tender_accepted(moved, accepted(s, tender_id="tnd_bogus"), NOW)
    assert bogus.events == []


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("collecting", []),
        ("reserving", ["CapacityReleaseRequested"]),
        ("tendering", ["CapacityReleaseRequested", "TenderWithdrawn"]),
        ("allocated", ["CapacityReleaseRequested", "AllocationReleased"]),
    ],
)
def test_cancellation_releases_what_is_held(phase, expected):
    kw = dict(tenant_id="acme", policy=POLICY, scorecards={}, default_scorecard=CARD, now=NOW)
    if phase == "collecting":
        s = fold.on_shipment_requested(None, request(SID), **kw).state
    else:
        s = start().state
        if phase in ("tendering", "allocated"):
            s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
        if phase == "allocated":
            s = fold.on_tender_accepted(s, accepted(s), NOW).state
    cancel = ShipmentCancelled(
        shipment_id=SID, order_id="A-1", cancelled_at=NOW, release_capacity=phase == "allocated"
    )
    step = fold.on_shipment_cancelled(s, cancel, "acme", NOW)
    assert types(step) == expected
    assert step.state.phase == "cancelled"
    if phase == "allocated":
        released = step.events[1]
        assert isinstance(released, AllocationReleased) and released.label_ref == "lbl-1"
    # quotes after a cancellation start nothing; a second cancellation does nothing
    assert fold.on_rates_quoted(step.state, QUOTES, **kw).events == []
    assert fold.on_shipment_cancelled(step.state, cancel, "acme", NOW).events == []


def test_ids_are_deterministic():
    a, b = start(), start()
    assert a.events == b.events
    assert fold.tender_id(SID, 1) != fold.tender_id(SID, 2)
    assert fold.reservation_id(SID, 1) == a.state.request_id


def test_due_lists_only_expired_tenders():
    s = start().state
    s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    other = start().state
    assert fold.due([s, other], NOW + timedelta(seconds=30)) == [s]
    assert fold.due([s, other], NOW) == []


def _settled_states() -> dict[str, ShipmentAllocation]:
    """A state in each settled phase, reached the way the stage reaches it."""
    kw = dict(tenant_id="acme", policy=POLICY, scorecards={}, default_scorecard=CARD, now=NOW)
    s = start().state
    s = fold.on_capacity_reserved(s, reserved(s), RULES, NOW).state
    allocated = fold.on_tender_accepted(s, accepted(s), NOW).state
    failed = start(rates(SID, quote("swift", 900, meets_promise=False))).state
    cancel = ShipmentCancelled(shipment_id=SID, order_id="A-1", cancelled_at=NOW)
    cancelled = fold.on_shipment_cancelled(s, cancel, "acme", NOW).state
    # a request that arrives after its cancellation: the facts land on a settled state
    late = fold.on_shipment_cancelled(None, cancel, "acme", NOW).state
    late = fold.on_shipment_requested(late, request(SID), **kw).state
    return {"allocated": allocated, "failed": failed, "cancelled": cancelled, "late": late}


@pytest.mark.parametrize("how", ["allocated", "failed", "cancelled", "late"])
def test_a_settled_allocation_keeps_no_recipient(how):
    state = _settled_states()[how]
    assert state.phase in fold.SETTLED_PHASES
    assert state.facts is not None and state.facts.tendered is not None  # the fold keeps it
    kept = fold.without_recipient(state)
    assert kept.facts is not None and kept.facts.tendered is None
    # everything else stays: the order, the service level, the decision's inputs
    assert kept.facts.order_id == state.facts.order_id
    assert kept.facts.service_level == state.facts.service_level
    assert msgspec.structs.replace(kept, facts=state.facts) == state
    # a duplicate request does not re-open it, and stripping again changes nothing
    kw = dict(tenant_id="acme", policy=POLICY, scorecards={}, default_scorecard=CARD, now=NOW)
    again = fold.on_shipment_requested(kept, request(SID), **kw)
    assert again.events == [] and again.state == kept
    assert fold.without_recipient(kept) is kept


def test_an_unsettled_allocation_keeps_the_recipient_it_tenders_with():
    s = start().state
    assert fold.without_recipient(s) is s  # reserving
    tendering = fold.on_capacity_reserved(s, reserved(s), RULES, NOW)
    assert fold.without_recipient(tendering.state) is tendering.state
    tender = tendering.events[0]
    assert isinstance(tender, TenderRequested)
    assert s.facts is not None and tender.shipment == s.facts.tendered
    assert tender.shipment.destination.name == "Ada Muster"
