"""Table tests: which milestones (updates) each event causes, with which ids and content."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from handoff_events.contracts import ShipmentState
from handoff_tracking.domain.exceptions import ExceptionPolicy, detect
from handoff_tracking.domain.fold import FoldInput, TenantMismatch, fold, fold_all
from handoff_tracking.domain.kpis import contribution
from handoff_tracking.domain.updates import shipment_update

from services.tracking.tests.fold_factories import (
    allocated,
    at,
    cancelled,
    inp,
    observed,
    quoted,
    requested,
)

LIFECYCLE = [inp(requested()), inp(quoted()), inp(allocated())]


def milestones_of(history: list[FoldInput], event: FoldInput) -> list[tuple[str, str]]:
    state = fold_all(history)
    new, milestones = fold(state, event)
    return [(m.milestone, m.exception.kind if m.exception else new.status) for m in milestones]


@pytest.mark.parametrize(
    ("history", "event", "expected"),
    [
        pytest.param([], inp(requested()), [("requested", "requested")], id="requested"),
        pytest.param([inp(requested())], inp(quoted()), [("quoted", "quoted")], id="quoted"),
        pytest.param(LIFECYCLE[:2], inp(allocated()), [("allocated", "allocated")], id="allocated"),
        pytest.param(
            LIFECYCLE,
            inp(observed("picked_up", 10)),
            [("status_changed", "picked_up")],
            id="pickup",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("picked_up", 10))],
            inp(observed("in_transit", 20)),
            [("status_changed", "in_transit")],
            id="in-transit",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("in_transit", 20))],
            inp(observed("in_transit", 30, city="Munich")),
            [],
            id="same-status-scan-is-no-milestone",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("out_for_delivery", 30))],
            inp(observed("delivery_attempt_failed", 40, sub_status="recipient_absent")),
            [("status_changed", "delivery_attempt_failed"), ("exception", "failed_attempt")],
            id="failed-attempt",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("out_for_delivery", 30))],
            inp(observed("delivered", 40)),
            [("delivered", "delivered")],
            id="delivered",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("delivered", 40))],
            inp(observed("in_transit", 50)),
            [],
            id="late-scan-after-delivered",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("delivered", 40))],
            inp(observed("delivery_attempt_failed", 30)),
            [],
            id="earlier-failed-attempt-arriving-after-delivery-is-not-announced",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("in_transit", 20))],
            inp(observed("unknown", 30)),
            [],
            id="unknown-code",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("delivery_attempt_failed", 40))],
            inp(observed("returning_to_sender", 50)),
            [("status_changed", "returning_to_sender"), ("exception", "returned_to_sender")],
            id="return-to-sender",
        ),
        pytest.param(
            [*LIFECYCLE, inp(observed("returning_to_sender", 50))],
            inp(observed("returned_to_sender", 90)),
            [("status_changed", "returned_to_sender")],
            id="returned-to-sender-once",
        ),
        pytest.param(
            [inp(requested()), inp(observed("in_transit", 20))],
            inp(allocated()),
            [("allocated", "in_transit")],
            id="allocation-after-a-racing-scan-is-still-announced",
        ),
        pytest.param(
            [inp(requested()), inp(observed("delivered", 20))],
            inp(cancelled(minutes=30)),
            [],
            id="cancellation-after-delivery",
        ),
        pytest.param(
            [inp(requested(promised_by=at(60)))],
            inp(allocated(edd=date(2026, 11, 25))),
            [("allocated", "allocated"), ("exception", "late")],
            id="projected-late",
        ),
    ],
)
def test_milestones(
    history: list[FoldInput], event: FoldInput, expected: list[tuple[str, str]]
) -> None:
    assert milestones_of(history, event) == expected


def test_update_ids_are_deterministic_across_replays() -> None:
    events = [*LIFECYCLE, inp(observed("picked_up", 10)), inp(observed("delivered", 50))]

    def ids() -> list[str]:
        state: ShipmentState | None = None
        out: list[str] = []
        for event in events:
            state, ms = fold(state, event)
            out += [m.update_id for m in ms]
        return out

    assert ids() == ids()
    assert len(set(ids())) == len(ids())


def test_delivered_update_carries_lane_service_and_transit_times() -> None:
    state = fold_all([*LIFECYCLE, inp(observed("picked_up", 10))])
    state, milestones = fold(state, inp(observed("delivered", 600)))
    (delivered,) = milestones
    update = shipment_update(state, delivered)
    assert update.milestone == "delivered"
    assert update.lane == "DE-10>DE-80"
    assert update.service == "parcel"
    assert update.picked_up_at == at(10)
    assert update.delivered_at == at(600)
    assert update.carrier == "swift" and update.tracking_number == "SW123456789"
    assert update.order_id == "A-1001" and update.tenant_id == "acme"
    assert update.proof is not None and update.proof.signed_by == "A. Muster"
    assert state.on_time is True
    assert [a.outcome for a in state.attempts] == ["delivered"]


def test_state_records_attempts_promise_and_exceptions() -> None:
    state = fold_all(
        [
            inp(requested(promised_by=at(60 * 24))),
            inp(allocated()),
            inp(observed("picked_up", 10)),
            inp(observed("delivery_attempt_failed", 100, sub_status="recipient_absent")),
            inp(observed("delivered", 60 * 30)),
        ]
    )
    assert state is not None
    assert state.status == "delivered"
    assert [a.outcome for a in state.attempts] == ["failed", "delivered"]
    assert state.on_time is False
    assert [e.kind for e in state.exceptions] == ["failed_attempt"]
    kpi = contribution(state)
    assert kpi is not None
    assert kpi.first_attempt is False and kpi.on_time is False and kpi.had_promise
    assert kpi.transit_hours == pytest.approx((60 * 30 - 10) / 60, abs=0.001)
    assert kpi.kpi_key == "swift/DE-10>DE-80/acme/2026-11-21"


def test_content_duplicate_with_another_carrier_id_is_applied_once() -> None:
    first = observed("delivery_attempt_failed", 40, carrier_event_id="a-1")
    copy = observed("delivery_attempt_failed", 40, carrier_event_id="b-7")
    state = fold_all([*LIFECYCLE, inp(first)])
    state, milestones = fold(state, inp(copy))
    assert milestones == []
    assert len(state.attempts) == 1
    notes = [h.note for h in state.history if h.carrier_event_id in {"a-1", "b-7"}]
    assert sorted(n or "" for n in notes)[1].startswith("duplicate of ")


def test_unknown_code_is_kept_flagged_and_counted() -> None:
    state = fold_all([*LIFECYCLE, inp(observed("in_transit", 20)), inp(observed("unknown", 30))])
    assert state is not None
    assert state.status == "in_transit"
    assert state.unknown_observations == 1
    (entry,) = [h for h in state.history if h.status == "unknown"]
    assert not entry.applied and entry.carrier_code == "ZZ9" and entry.note


def test_observation_racing_ahead_of_the_request_folds_into_a_partial_state() -> None:
    state, milestones = fold(None, inp(observed("picked_up", 10)))
    assert state.status == "picked_up" and state.order_id == ""
    assert [m.milestone for m in milestones] == ["status_changed"]
    state, milestones = fold(state, inp(requested()))
    assert state.order_id == "A-1001" and state.status == "picked_up"
    assert [m.milestone for m in milestones] == ["requested"]


def test_other_tenants_event_is_refused() -> None:
    state = fold_all([inp(requested())])
    with pytest.raises(TenantMismatch):
        fold(state, inp(observed("picked_up", 10), tenant="globex"))


def test_stuck_and_late_are_detected_once() -> None:
    state = fold_all(
        [inp(requested(promised_by=at(60 * 24))), *LIFECYCLE[1:], inp(observed("picked_up", 10))]
    )
    assert state is not None
    policy = ExceptionPolicy(stuck_after=timedelta(hours=48))
    assert detect(state, at(60), policy) == []
    now = at(10 + 60 * 48)
    found = detect(state, now, policy)
    assert [f.event.kind for f in found] == ["stuck", "late"]  # type: ignore[union-attr]
    kinds = []
    for item in found:
        state, milestones = fold(state, item)
        kinds += [m.exception.kind for m in milestones if m.exception]
    assert kinds == ["stuck", "late"]
    assert detect(state, now + timedelta(hours=5), policy) == []
    # A new scan ends the silence; a later silence is a new finding.
    state = fold_all([inp(observed("in_transit", 60 * 60))], state)
    assert state is not None
    later = detect(state, at(60 * 60 + 60 * 49), policy)
    assert [f.event.kind for f in later] == ["stuck"]  # type: ignore[union-attr]


def test_terminal_shipments_are_not_checked() -> None:
    state = fold_all([*LIFECYCLE, inp(observed("delivered", 10))])
    assert state is not None
    assert detect(state, at(60 * 24 * 30), ExceptionPolicy()) == []


def test_an_exception_that_vanishes_and_returns_is_announced_under_a_new_id() -> None:
    """Found by hypothesis: one carrier event id reused for returning -> picked up ->
    returned. The return-to-sender exception appears, vanishes while the picked-up scan
    represents the group, and comes back with the terminal scan: every update id the fold
    emits must still be unique (a repeated id would be taken for a redelivery and dropped)."""
    state: ShipmentState | None = fold_all(LIFECYCLE)
    ids: list[str] = []
    kinds: list[str] = []
    for status in ("returning_to_sender", "picked_up", "returned_to_sender"):
        state, milestones = fold(state, inp(observed(status, 5, carrier_event_id="ev-0")))
        ids += [m.update_id for m in milestones]
        kinds += [m.exception.kind for m in milestones if m.exception is not None]
    assert len(ids) == len(set(ids)), ids
    assert kinds.count("returned_to_sender") == 2
    assert state is not None and state.status == "returned_to_sender"
