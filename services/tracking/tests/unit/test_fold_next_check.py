"""`next_check` (the fold's due time for the engine's due index) never hides an exception:
whenever `detect` would find something at a moment, the state was due by then; and once
what it found is folded in, the state is not due for it again."""

from __future__ import annotations

import os
from datetime import timedelta

from handoff_events.contracts import TERMINAL_STATUSES
from handoff_tracking.domain.exceptions import ExceptionPolicy, detect, next_check
from handoff_tracking.domain.fold import fold, fold_all
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tracking.tests.fold_factories import (
    allocated,
    at,
    inp,
    observed,
    quoted,
    requested,
)

SCALE = int(os.environ.get("HANDOFF_PROPERTY_SCALE", "1"))
POLICY = ExceptionPolicy(stuck_after=timedelta(hours=6))
STATUSES = ("picked_up", "in_transit", "out_for_delivery", "delivery_attempt_failed", "delivered")


@settings(max_examples=150 * SCALE, deadline=None)
@given(
    scans=st.lists(
        st.tuples(st.sampled_from(STATUSES), st.integers(5, 3000)), min_size=0, max_size=6
    ),
    promise_in_min=st.integers(-600, 6000),
    probe_min=st.lists(st.integers(0, 12_000), min_size=1, max_size=5),
)
def test_whatever_detect_finds_was_due(
    scans: list[tuple[str, int]], promise_in_min: int, probe_min: list[int]
) -> None:
    events = [inp(requested(promised_by=at(promise_in_min))), inp(quoted()), inp(allocated())]
    events += [inp(observed(s, m)) for s, m in scans]
    state = fold_all(events)
    assert state is not None
    for minute in sorted(probe_min):
        now = at(minute)
        found = detect(state, now, POLICY)
        due = next_check(state, POLICY)
        if found:
            assert due is not None and due <= now, (due, now, [f.event for f in found])
        for item in found:
            state, _ = fold(state, item)
        # What was found is recorded: the same finding is never due again.
        assert not detect(state, now, POLICY)
        after = next_check(state, POLICY)
        assert after is None or after > now or detect(state, after, POLICY) == []


def test_terminal_states_are_never_due() -> None:
    state = fold_all(
        [inp(requested(promised_by=at(10))), inp(allocated()), inp(observed("delivered", 20))]
    )
    assert state is not None and state.status in TERMINAL_STATUSES
    assert next_check(state, POLICY) is None


def test_in_transit_is_due_when_silence_would_make_it_stuck() -> None:
    state = fold_all(
        [inp(requested(promised_by=at(100_000))), inp(allocated()), inp(observed("in_transit", 30))]
    )
    assert state is not None
    assert next_check(state, POLICY) == at(30) + POLICY.stuck_after


def test_a_recorded_finding_is_not_due_again() -> None:
    """Silence found at one moment and a promise missed at a later one: once each is in
    the history, `next_check` names the other, then nothing."""
    state = fold_all(
        [inp(requested(promised_by=at(2_000))), inp(allocated()), inp(observed("in_transit", 30))]
    )
    assert state is not None
    stuck_at = at(30) + POLICY.stuck_after
    assert next_check(state, POLICY) == stuck_at
    for item in detect(state, stuck_at, POLICY):
        state, _ = fold(state, item)
    assert next_check(state, POLICY) == at(2_000) + timedelta(microseconds=1)
    for item in detect(state, at(2_001), POLICY):
        state, _ = fold(state, item)
    assert next_check(state, POLICY) is None
