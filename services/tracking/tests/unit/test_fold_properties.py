"""Properties of the shipment fold: idempotent, order-independent, terminal-safe, nothing dropped.

"Same state" here means *the whole encoded ShipmentState is byte-identical*:
status, sub-status, attempts, pickup/delivery times, proof, exceptions, facts,
version, updated_at and the history (ids, order, applied flags, notes). That is
stronger than comparing a handful of fields, and it is what the state topic and
the crash test rely on.
"""

from __future__ import annotations

import os

import msgspec
from handoff_events.contracts import TERMINAL_STATUSES, ShipmentState
from handoff_tracking.domain.fold import FoldInput, fold, fold_all, state_as_of
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tracking.tests.fold_factories import (
    allocated,
    at,
    cancelled,
    inp,
    observed,
    quoted,
    requested,
)

SCALE = int(os.environ.get("HANDOFF_PROPERTY_SCALE", "1"))
"""Multiply the examples for a deep run: `HANDOFF_PROPERTY_SCALE=50 pytest ...`."""

CARRIER_STATUSES = [
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivery_attempt_failed",
    "available_for_pickup",
    "delivered",
    "exception",
    "returning_to_sender",
    "returned_to_sender",
    "unknown",
]


@st.composite
def shipment_events(draw: st.DrawFn) -> list[FoldInput]:
    """A shipment's distinct events: lifecycle steps plus carrier scans that collide on
    purpose (shared carrier event ids, identical content, identical timestamps)."""
    events: list[FoldInput] = []
    if draw(st.booleans()):
        events.append(inp(requested(minutes=draw(st.integers(0, 3)))))
    if draw(st.booleans()):
        events.append(inp(quoted(minutes=draw(st.integers(0, 5)))))
    if draw(st.booleans()):
        events.append(inp(allocated(minutes=draw(st.integers(0, 8)))))
    if draw(st.integers(0, 9)) == 0:
        events.append(inp(cancelled(minutes=draw(st.integers(0, 40)))))
    scans = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CARRIER_STATUSES),
                st.integers(5, 40),  # a narrow window: many equal timestamps
                st.integers(0, 12),  # carrier event ids collide sometimes
                st.sampled_from(["Berlin", "Munich"]),
                st.integers(0, 3),  # receive delay: identical content, other arrival
            ),
            max_size=14,
        )
    )
    for status, minute, ident, city, delay in scans:
        obs = observed(
            status,
            minute,
            carrier_event_id=f"ev-{ident}",
            city=city,
            received_delay_min=delay,
        )
        events.append(inp(obs))
    return events


def encoded(state: ShipmentState | None) -> bytes:
    return msgspec.json.encode(state)


@settings(max_examples=120 * SCALE, deadline=None)
@given(data=st.data(), events=shipment_events())
def test_any_permutation_and_duplication_folds_to_the_same_state(
    data: st.DataObject, events: list[FoldInput]
) -> None:
    if not events:
        return
    reference = fold_all(events)
    shuffled = data.draw(st.permutations(events))
    extra = data.draw(st.lists(st.sampled_from(events), max_size=6))
    positions = data.draw(
        st.lists(st.integers(0, len(shuffled)), min_size=len(extra), max_size=len(extra))
    )
    replayed = list(shuffled)
    for pos, dup in zip(positions, extra, strict=True):
        replayed.insert(pos, dup)
    other = fold_all(replayed)
    assert reference is not None and other is not None
    assert other.status == reference.status
    assert other.attempts == reference.attempts
    assert other.delivered_at == reference.delivered_at
    assert other.exceptions == reference.exceptions
    assert {h.event_id for h in other.history} == {h.event_id for h in reference.history}
    assert encoded(other) == encoded(reference)


@settings(max_examples=80 * SCALE, deadline=None)
@given(events=shipment_events())
def test_folding_an_event_again_changes_nothing(events: list[FoldInput]) -> None:
    state = fold_all(events)
    for event in events:
        again, milestones = fold(state, event)
        assert again is state
        assert milestones == []


@settings(max_examples=120 * SCALE, deadline=None)
@given(data=st.data(), events=shipment_events())
def test_a_terminal_status_is_never_left_because_of_a_late_non_terminal_event(
    data: st.DataObject, events: list[FoldInput]
) -> None:
    state: ShipmentState | None = None
    for event in data.draw(st.permutations(events)):
        before = state.status if state else None
        state, _ = fold(state, event)
        status = getattr(event.event, "status", None)
        is_terminal_fact = status in TERMINAL_STATUSES or type(event.event).__name__ in {
            "ShipmentCancelled",
            "ShipmentRejected",
            "AllocationFailed",
            "RatingFailed",
        }
        if before in TERMINAL_STATUSES and not is_terminal_fact:
            assert state.status == before


@settings(max_examples=80 * SCALE, deadline=None)
@given(events=shipment_events())
def test_unknown_codes_are_kept_and_flagged_never_dropped(events: list[FoldInput]) -> None:
    state = fold_all(events)
    if state is None:
        return
    assert state.status != "unknown"
    unknown_entries = [h for h in state.history if h.status == "unknown"]
    for h in unknown_entries:
        assert not h.applied
        assert h.note  # flagged: "unknown carrier code ..." or "duplicate of ..."
    flagged = [h for h in unknown_entries if h.note and h.note.startswith("unknown carrier code")]
    assert state.unknown_observations == len(flagged)
    # Every event is in the history (duplicates by id collapse to one entry).
    scans = [e for e in events if type(e.event).__name__ == "TrackingObserved"]
    assert {s.event.carrier_event_id for s in scans} <= {  # type: ignore[union-attr]
        h.carrier_event_id for h in state.history
    }


@settings(max_examples=80 * SCALE, deadline=None)
@given(data=st.data(), events=shipment_events())
def test_milestone_ids_are_unique_and_delivered_is_announced_at_most_once(
    data: st.DataObject, events: list[FoldInput]
) -> None:
    state: ShipmentState | None = None
    ids: list[str] = []
    delivered = 0
    for event in data.draw(st.permutations(events)) + events:
        state, milestones = fold(state, event)
        ids += [m.update_id for m in milestones]
        delivered += sum(1 for m in milestones if m.milestone == "delivered")
    assert len(ids) == len(set(ids))
    # Two different terminal facts (a cancellation or a return scan time-stamped before a
    # delivery scan) are a conflict the fold resolves by event time (ADR 0003), and may
    # re-announce; with at most one kind of terminal fact, delivery is announced once.
    terminal_facts = {
        "cancelled" if type(e.event).__name__ == "ShipmentCancelled" else e.event.status  # type: ignore[union-attr]
        for e in events
        if type(e.event).__name__ == "ShipmentCancelled"
        or getattr(e.event, "status", None) in TERMINAL_STATUSES
    }
    if len(terminal_facts) <= 1:
        assert delivered <= 1


@settings(max_examples=100 * SCALE, deadline=None)
@given(events=shipment_events(), minute=st.integers(0, 45))
def test_as_of_is_the_fold_of_what_had_happened_by_then(
    events: list[FoldInput], minute: int
) -> None:
    state = fold_all(events)
    if state is None:
        return
    moment = at(minute)
    earlier = [e for e in events if _occurred(e) <= moment]
    assert encoded(state_as_of(state, moment)) == encoded(fold_all(earlier))


def _occurred(event: FoldInput) -> object:
    from handoff_tracking.domain.fold import entry_for

    return entry_for(event).occurred_at
