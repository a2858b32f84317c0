"""The incremental fold: stepping the cached derivation once gives what a full derivation gives.

`fold` keeps, per shipment, the accumulator behind the state it returned; an entry that
sorts after every entry and duplicates none is one more step of it. These tests fold
random event sequences with that fast path and the cache, and again with the cache
cleared and the fast path disabled (a full `derive` for every event), and require
byte-identical states and milestones after every single event. The pinned ids and
digests below were computed before the fold became incremental: ids are persisted
contracts and must never change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any
from unittest import mock

import msgspec
from handoff_events.contracts import ShipmentState
from handoff_events.ids import digest
from handoff_events.values import Location, Proof
from handoff_tracking.domain import fold as fold_module
from handoff_tracking.domain.fold import (
    CARRIER_STATUSES,
    DetectedException,
    FoldInput,
    Milestone,
    detected_entry_id,
    entry_for,
    fold,
    observation_entry_id,
)
from handoff_tracking.domain.kpis import contribution
from handoff_tracking.domain.updates import shipment_update
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tracking.tests.fold_factories import (
    SHIPMENT,
    TENANT,
    allocated,
    at,
    cancelled,
    inp,
    observed,
    quoted,
    requested,
)

SCALE = int(os.environ.get("HANDOFF_PROPERTY_SCALE", "1"))

STATUSES = [*sorted(CARRIER_STATUSES), "unknown"]


# ---- strategies -------------------------------------------------------------------------
def _recorded(event: FoldInput, delay_min: int) -> FoldInput:
    """The same event recorded at another time (a re-recording: same entry id)."""
    return FoldInput(
        event_id=event.event_id,
        tenant_id=event.tenant_id,
        event=event.event,
        recorded_at=entry_for(event).occurred_at + timedelta(minutes=delay_min),
    )


@st.composite
def fold_events(draw: st.DrawFn) -> list[FoldInput]:
    """A shipment's events: lifecycle steps, scans colliding by id and content, unknown
    codes, terminal scans followed by late ones, timer-detected exceptions, projected
    lateness, re-recordings."""
    events: list[FoldInput] = []
    if draw(st.booleans()):
        promise = draw(st.sampled_from([None, at(60 * 36), at(60 * 12)]))
        events.append(inp(requested(minutes=draw(st.integers(0, 10)), promised_by=promise)))
    if draw(st.booleans()):
        events.append(inp(quoted(minutes=draw(st.integers(0, 10)))))
    if draw(st.booleans()):
        edd = draw(st.sampled_from([date(2026, 11, 21), date(2026, 11, 25)]))
        events.append(inp(allocated(minutes=draw(st.integers(0, 12)), edd=edd)))
    if draw(st.integers(0, 6)) == 0:
        events.append(inp(cancelled(minutes=draw(st.integers(0, 60)))))
    scans = draw(
        st.lists(
            st.tuples(
                st.sampled_from(STATUSES),
                st.integers(1, 60),
                st.integers(0, 15),  # carrier event ids collide sometimes
                st.sampled_from(["Berlin", "Munich"]),
                st.integers(0, 3),  # receive delay: same entry, another recording
                st.sampled_from([None, "recipient_absent"]),
            ),
            max_size=16,
        )
    )
    for status, minute, ident, city, delay, sub_status in scans:
        obs = observed(
            status,
            minute,
            carrier_event_id=f"ev-{ident}",
            city=city,
            received_delay_min=delay,
            sub_status=sub_status,
        )
        events.append(inp(obs))
    detected = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["stuck", "late"]),
                st.sampled_from(["promise", "a1", "a2"]),
                st.integers(0, 70),
            ),
            max_size=3,
        )
    )
    for kind, anchor, minute in detected:
        found = DetectedException(
            shipment_id=SHIPMENT,
            kind=kind,
            anchor=anchor,
            detected_at=at(minute),
            detail=f"{kind} since {minute}",
        )
        events.append(
            FoldInput(
                event_id=detected_entry_id(found),
                tenant_id=TENANT,
                event=found,
                recorded_at=at(minute),
            )
        )
    # Re-recordings of lifecycle events (an earlier or later envelope time).
    lifecycle = [e for e in events if type(e.event).__name__ != "TrackingObserved"]
    if lifecycle:
        for delay in draw(st.lists(st.integers(-2, 2), max_size=2)):
            events.append(_recorded(draw(st.sampled_from(lifecycle)), delay))
    return events


@st.composite
def arrival_orders(draw: st.DrawFn) -> list[FoldInput]:
    """The events in event-time order (the fast path), shuffled, or in order with some
    stragglers, plus redeliveries inserted anywhere."""
    events = draw(fold_events())
    mode = draw(st.sampled_from(["in_order", "shuffled", "mostly_in_order"]))
    if mode == "shuffled":
        events = draw(st.permutations(events))
    else:
        events = sorted(events, key=lambda e: fold_module._order_key(entry_for(e)))
        if mode == "mostly_in_order" and len(events) > 1:
            for _ in range(draw(st.integers(1, 3))):
                i = draw(st.integers(0, len(events) - 1))
                j = draw(st.integers(0, len(events) - 1))
                events.insert(j, events.pop(i))
    if events:
        extra = draw(st.lists(st.sampled_from(events), max_size=4))
        for dup in extra:
            events.insert(draw(st.integers(0, len(events))), dup)
    return events


# ---- helpers ----------------------------------------------------------------------------
@contextmanager
def full_derivation_only() -> Iterator[None]:
    """Every fold derives the whole history: no cache, no incremental step."""
    with mock.patch.object(fold_module._Accumulator, "extends", return_value=False):
        yield


def _encoded(state: ShipmentState | None, milestones: list[Milestone]) -> tuple[bytes, bytes]:
    return msgspec.json.encode(state), msgspec.json.encode(milestones)


def _fold_each(events: list[FoldInput], *, cached: bool) -> list[tuple[bytes, bytes, bool]]:
    """(state, milestones, unchanged?) after every event."""
    out: list[tuple[bytes, bytes, bool]] = []
    state: ShipmentState | None = None
    for event in events:
        if not cached:
            fold_module._RECENT.clear()
        new, milestones = fold(state, event)
        out.append((*_encoded(new, milestones), new is state))
        state = new
    return out


def _reference(events: list[FoldInput]) -> list[tuple[bytes, bytes, bool]]:
    with full_derivation_only():
        return _fold_each(events, cached=False)


# ---- properties -------------------------------------------------------------------------
@settings(max_examples=200 * SCALE, deadline=None)
@given(events=arrival_orders())
def test_incremental_fold_equals_full_derivation_event_by_event(
    events: list[FoldInput],
) -> None:
    fold_module._RECENT.clear()
    incremental = _fold_each(events, cached=True)
    assert incremental == _reference(events)


@settings(max_examples=100 * SCALE, deadline=None)
@given(events=arrival_orders())
def test_a_cold_cache_then_one_step_equals_full_derivation(events: list[FoldInput]) -> None:
    # A state the cache does not know (restored, replayed) is derived, then stepped.
    cold = _fold_each(events, cached=False)
    assert cold == _reference(events)


@settings(max_examples=60 * SCALE, deadline=None)
@given(events=arrival_orders(), data=st.data())
def test_folding_from_an_older_state_object_is_not_confused_by_the_cache(
    events: list[FoldInput], data: st.DataObject
) -> None:
    # The cache holds the derivation of the latest state only; branching from an
    # earlier state object must give what a full derivation of that branch gives.
    if len(events) < 2:
        return
    fold_module._RECENT.clear()
    states: list[ShipmentState | None] = [None]
    for event in events:
        states.append(fold(states[-1], event)[0])
    older = data.draw(st.sampled_from(states[:-1]))
    extra = data.draw(st.sampled_from(events))
    got = _encoded(*fold(older, extra))
    with full_derivation_only():
        fold_module._RECENT.clear()
        expected = _encoded(*fold(older, extra))
    assert got == expected


def test_a_cause_is_announced_as_recorded_even_when_it_was_folded_incrementally() -> None:
    # The allocation is folded in one step but does not apply (the scan came first); a
    # later promise makes its estimate late. The exception's cause must be the recorded
    # allocation (applied false, with its note), as a full derivation reports it.
    events = [
        inp(observed("picked_up", 1)),
        inp(allocated(minutes=2, edd=date(2026, 11, 25))),
        inp(requested(minutes=3, promised_by=at(60 * 12))),
    ]
    fold_module._RECENT.clear()
    incremental = _fold_each(events, cached=True)
    assert incremental == _reference(events)
    late = msgspec.json.decode(incremental[-1][1])[-1]
    assert late["exception"]["sub_status"] == "projected"
    assert late["cause"]["applied"] is False
    assert late["cause"]["note"] == "older step: status stays picked_up"


# ---- the fast path is taken -------------------------------------------------------------
def _counting_full_derivations() -> Any:
    """Patches `_derive` (the full derivation) with a call-counting wrapper."""
    return mock.patch.object(fold_module, "_derive", side_effect=fold_module._derive)


def test_in_order_scans_never_derive_the_whole_history() -> None:
    fold_module._RECENT.clear()
    events = [inp(requested()), inp(quoted()), inp(allocated())] + [
        inp(observed(status, 10 * (i + 1)))
        for i, status in enumerate(
            ["picked_up", "in_transit", "in_transit", "out_for_delivery", "delivered"]
        )
    ]
    state: ShipmentState | None = None
    with _counting_full_derivations() as full:
        for event in events:
            state, _ = fold(state, event)
    assert full.call_count == 0
    assert state is not None and state.status == "delivered" and state.version == len(events)


def test_out_of_order_duplicate_and_re_recorded_events_take_the_full_derivation() -> None:
    fold_module._RECENT.clear()
    state, _ = fold(None, inp(requested()))
    state, _ = fold(state, inp(observed("in_transit", 20)))
    with _counting_full_derivations() as full:
        state, _ = fold(state, inp(observed("picked_up", 10)))  # sorts before the last
        assert full.call_count == 1
        # Same content as the in-transit scan, another carrier event id: a duplicate.
        state, _ = fold(state, inp(observed("in_transit", 20, carrier_event_id="copy")))
        assert full.call_count == 2
        # An earlier recording of an event already folded.
        state, _ = fold(state, _recorded(inp(requested()), -5))
        assert full.call_count == 3
        # A later scan after all that is one step again.
        state, _ = fold(state, inp(observed("out_for_delivery", 30)))
        assert full.call_count == 3
    assert state.status == "out_for_delivery"
    assert [(h.note or "").startswith("duplicate of") for h in state.history].count(True) == 1


def test_a_state_the_cache_does_not_know_is_derived_once() -> None:
    fold_module._RECENT.clear()
    state, _ = fold(None, inp(requested()))
    restored = msgspec.json.decode(msgspec.json.encode(state), type=ShipmentState)
    with _counting_full_derivations() as full:
        fold(restored, inp(observed("picked_up", 10)))
    assert full.call_count == 1  # the `before` derivation; the new scan is one step


def test_the_cache_keeps_the_derivations_of_the_last_shipments_it_is_told_to() -> None:
    """Bounded like the store (`build_fold(remember=...)`): an entry keeps its state alive,
    so the cache must not outgrow the store's bound."""
    fold_module._RECENT.clear()
    try:
        fold_module.remember_at_most(2)
        states = {
            sid: fold(None, inp(requested(shipment_id=sid)))[0]
            for sid in ("shp_a", "shp_b", "shp_c")
        }
        assert list(fold_module._RECENT) == ["shp_b", "shp_c"]
        with _counting_full_derivations() as full:
            fold(states["shp_a"], inp(observed("picked_up", 10, shipment_id="shp_a")))
            fold(states["shp_c"], inp(observed("picked_up", 10, shipment_id="shp_c")))
        assert full.call_count == 1  # shp_a was forgotten, shp_c was not
        fold_module.remember_at_most(1)
        assert list(fold_module._RECENT) == ["shp_c"]
    finally:
        fold_module.remember_at_most(0)
    assert fold_module._RECENT.limit == fold_module.RECENT_DEFAULT


# ---- ids computed before the fold became incremental ------------------------------------
def test_observation_and_detected_entry_ids_are_unchanged() -> None:
    assert [
        observation_entry_id(o)
        for o in (
            observed("picked_up", 10),
            observed("delivered", 40),
            observed("exception", 27, sub_status="damaged"),
            msgspec.structs.replace(observed("in_transit", 12.5), location=None, description=None),
        )
    ] == [
        "obs_1d4b111a6fb61c33adc5",
        "obs_a464fcd5558da739c260",
        "obs_cc3d8dd4662b29ae6369",
        "obs_6f5278e3a9048e9b7086",
    ]
    stuck = DetectedException(shipment_id=SHIPMENT, kind="stuck", anchor="a1", detected_at=at(33))
    assert detected_entry_id(stuck) == "exc_3a3e68141a716ce53da2"


@settings(max_examples=100 * SCALE, deadline=None)
@given(
    status=st.sampled_from(STATUSES),
    minute=st.floats(0, 10_000, allow_nan=False),
    sub_status=st.none() | st.text(max_size=5),
    description=st.none() | st.text(max_size=5),
    city=st.none() | st.text(max_size=5),
    with_location=st.booleans(),
    signed_by=st.none() | st.text(max_size=5),
)
def test_observation_ids_are_the_generic_signature_of_their_content(
    status: str,
    minute: float,
    sub_status: str | None,
    description: str | None,
    city: str | None,
    with_location: bool,
    signed_by: str | None,
) -> None:
    # `observation_entry_id` normalises field by field; `_signature` is the generic rule.
    obs = msgspec.structs.replace(
        observed(status, minute, sub_status=sub_status),
        description=description,
        location=Location(city=city, country="DE") if with_location else None,
        proof=Proof(signed_by=signed_by) if signed_by is not None else None,
    )
    content = fold_module._signature(
        obs.carrier_code,
        obs.status,
        obs.sub_status,
        obs.occurred_at,
        obs.location,
        obs.proof,
        obs.description,
        obs.tracking_number,
    )
    assert observation_entry_id(obs) == "obs_" + digest(obs.carrier, obs.carrier_event_id, content)


def _pinned_scenario() -> list[FoldInput]:
    stuck = DetectedException(
        shipment_id=SHIPMENT, kind="stuck", anchor="a1", detected_at=at(33), detail="silence"
    )
    return [
        inp(requested()),
        inp(quoted()),
        inp(allocated()),
        inp(observed("picked_up", 10)),
        inp(observed("in_transit", 20, city="Munich")),
        inp(
            observed(
                "in_transit",
                20,
                city="Munich",
                carrier_event_id="dup-content",
                received_delay_min=3,
            )
        ),
        inp(observed("unknown", 25)),
        inp(observed("exception", 27, sub_status="damaged")),
        inp(observed("out_for_delivery", 30)),
        inp(observed("delivery_attempt_failed", 35, sub_status="recipient_absent")),
        inp(observed("in_transit", 15)),  # out of order
        inp(stuck, ce_id="ignored"),
        inp(observed("delivered", 40)),
        inp(observed("in_transit", 50)),
    ]


def test_update_ids_are_unchanged() -> None:
    # Pinned from the fold before it became incremental; the three exception ids were
    # re-pinned when the cause entered the exception update id (a vanished-and-returned
    # exception is a new announcement, see fold._milestones).
    fold_module._RECENT.clear()
    state: ShipmentState | None = None
    ids: list[str] = []
    for event in _pinned_scenario():
        state, milestones = fold(state, event)
        ids += [m.update_id for m in milestones]
    assert ids == [
        "upd_89d539d9eb5e718fc8244614bb",
        "upd_de318b1872e92e8286bbd7642e",
        "upd_af5177b55c6e519fbf02efa826",
        "upd_68032fd7cca11388ac5033a770",
        "upd_c4039d429ec92741879f2ec28e",
        "upd_d581bcf2eb1ec76412ed8f72b1",
        "upd_61c405091d54e2f4f3137cadab",
        "upd_f75998436038a8d9fa4235908f",
        "upd_071672a211f7c904abeff02b43",
        "upd_c567bbd0c5ded5b99c7f508735",
        "upd_209d0d93256d43626d42128cab",
        "upd_80840facacee8405108f73166c",
    ]
    assert state is not None
    kpi = hashlib.sha256(msgspec.json.encode(contribution(state))).hexdigest()
    assert kpi == "4e2d2a9562b83cef183d3522ea2d84d7d4825e3b58862ddc9997d473ff0ea5ce"


def test_states_and_updates_are_unchanged() -> None:
    # Digest of every state (without the entries' facts, whose encoding is the contract
    # library's business) and every update, as the non-incremental fold produced them.
    # If a contract's encoding changes on purpose, this digest changes with it (it did
    # when exception update ids took their cause, see test_update_ids_are_unchanged).
    fold_module._RECENT.clear()
    state: ShipmentState | None = None
    hasher = hashlib.sha256()
    for event in _pinned_scenario():
        state, milestones = fold(state, event)
        hasher.update(msgspec.json.encode(msgspec.structs.replace(state, history=[])))
        hasher.update(
            msgspec.json.encode(
                [(h.event_id, h.applied, h.note, h.recorded_at) for h in state.history]
            )
        )
        for m in milestones:
            hasher.update(msgspec.json.encode(shipment_update(state, m)))
    assert hasher.hexdigest() == "0d012e2504f3e32de380cf318fbe76f05da8f3e34d862ed1155a1b73bb032400"
