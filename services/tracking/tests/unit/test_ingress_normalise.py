"""Carrier code tables: every shipped table loads, maps its carrier's vocabulary, flags unknowns,
and a broken table is refused with an error naming the file, the entry and the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from handoff_events.contracts import CarrierTrackingEvent
from handoff_events.contracts.tracking import SUB_STATUSES
from handoff_events.values import Location
from handoff_tracking.ingress.code_tables import load_code_table, load_code_tables
from handoff_tracking.ingress.normalise import (
    CARRIER_STATUSES,
    CodeTableError,
    Normalised,
    normalise,
    observe,
    parse_code_table,
)
from hypothesis import given
from hypothesis import strategies as st

CODES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "config" / "carrier-codes"
TABLES = load_code_tables(CODES_DIR)


def test_every_sample_carrier_has_a_table() -> None:
    assert set(TABLES) == {"nordpost", "swift", "velo", "gigly"}


@pytest.mark.parametrize(
    ("carrier", "code", "expected"),
    [
        (
            "nordpost",
            "10",
            Normalised("picked_up", "dropped_off_by_sender", "Posted at a post office counter"),
        ),
        (
            "nordpost",
            "20",
            Normalised("in_transit", "arrived_at_facility", "Arrived at a sorting centre"),
        ),
        (
            "nordpost",
            "51",
            Normalised("delivered", "delivered_to_neighbour", "Delivered to a neighbour"),
        ),
        (
            "nordpost",
            "60",
            Normalised(
                "delivery_attempt_failed",
                "recipient_absent",
                "Recipient not at home, notice card left",
            ),
        ),
        ("nordpost", "99", Normalised("returned_to_sender", None, "Returned to the sender")),
        ("swift", "PUP", Normalised("picked_up", "collected_from_sender", "Picked up")),
        ("swift", "ARR", Normalised("in_transit", "arrived_at_facility", "Arrived at a Swift hub")),
        ("swift", "DEP", Normalised("in_transit", "departed_facility", "Departed a Swift hub")),
        ("swift", "OFD", Normalised("out_for_delivery", None, "Out for delivery")),
        ("swift", "DLV", Normalised("delivered", "delivered_to_recipient", "Delivered")),
        (
            "swift",
            "NH1",
            Normalised("delivery_attempt_failed", "recipient_absent", "Not home, first attempt"),
        ),
        (
            "swift",
            "RTS",
            Normalised("returning_to_sender", "undeliverable", "Returning to shipper"),
        ),
        ("swift", "ofd", Normalised("out_for_delivery", None, "Out for delivery")),  # case folded
        ("velo", "assigned", Normalised("allocated", "courier_assigned", "Rider assigned")),
        ("velo", "collected", Normalised("picked_up", "collected_from_sender", "Collected")),
        ("velo", "enroute", Normalised("out_for_delivery", None, "On the way to the recipient")),
        (
            "velo",
            "dropped",
            Normalised("delivered", "delivered_to_recipient", "Handed to the recipient"),
        ),
        (
            "velo",
            "no_answer",
            Normalised("delivery_attempt_failed", "recipient_absent", "Nobody answered"),
        ),
        (
            "gigly",
            "task.started",
            Normalised("allocated", "courier_assigned", "Courier on the way to the pickup"),
        ),
        (
            "gigly",
            "pickup.completed",
            Normalised("picked_up", "collected_from_sender", "Picked up"),
        ),
        (
            "gigly",
            "dropoff.completed.locker",
            Normalised("delivered", "delivered_to_locker", "Put in a locker"),
        ),
        (
            "gigly",
            "dropoff.failed.no_access",
            Normalised("delivery_attempt_failed", "access_restricted", "No access"),
        ),
        (
            "gigly",
            "task.delayed.weather",
            Normalised("exception", "weather", "Task delayed by weather"),
        ),
    ],
)
def test_carrier_codes_map_to_canonical_statuses(
    carrier: str, code: str, expected: Normalised
) -> None:
    assert normalise(TABLES[carrier], code) == expected


@pytest.mark.parametrize(
    ("carrier", "code"),
    [("nordpost", "42"), ("swift", "XYZ"), ("velo", "teleported"), ("gigly", "task.exploded")],
)
def test_an_unknown_code_is_flagged_not_dropped(carrier: str, code: str) -> None:
    assert normalise(TABLES[carrier], code) == Normalised("unknown", None, None, unknown_code=True)


def test_a_carrier_without_a_table_flags_every_code() -> None:
    assert normalise(None, "DLV").unknown_code is True


def test_the_required_reason_vocabulary_is_reachable_from_the_tables() -> None:
    reachable = {
        (m.status, m.sub_status) for table in TABLES.values() for m in table.codes.values()
    }
    for status, reasons in {
        "delivery_attempt_failed": {
            "recipient_absent",
            "address_problem",
            "refused",
            "access_restricted",
            "business_closed",
        },
        "exception": {
            "damaged",
            "lost",
            "weather",
            "customs",
            "capacity",
            "delayed",
            "held_at_depot",
        },
        "delivered": {
            "delivered_to_recipient",
            "delivered_to_neighbour",
            "delivered_to_safe_place",
            "delivered_to_locker",
        },
    }.items():
        assert reasons <= SUB_STATUSES[status]
        assert {(status, r) for r in reasons} <= reachable, status


def test_every_table_reports_only_carrier_statuses_with_their_own_sub_statuses() -> None:
    for table in TABLES.values():
        for mapping in table.codes.values():
            assert mapping.status in CARRIER_STATUSES
            assert mapping.sub_status is None or mapping.sub_status in SUB_STATUSES[mapping.status]


@given(code=st.text(max_size=40))
def test_normalise_is_total(code: str) -> None:
    for table in TABLES.values():
        result = normalise(table, code)
        assert result.unknown_code == (table.lookup(code) is None)
        assert (result.status == "unknown") == result.unknown_code


def test_observe_keeps_the_carrier_facts_and_prefers_the_carrier_description() -> None:
    scan = CarrierTrackingEvent(
        carrier="swift",
        tracking_number="SW123456789",
        event_id="swift-8841",
        code="NH1",
        description="Nobody home, card left",
        occurred_at=datetime.fromisoformat("2026-11-21T08:12:00+01:00"),
        location=Location(city="Berlin", postal_code="10115", country="DE"),
    )
    received = datetime(2026, 11, 21, 7, 13, tzinfo=UTC)
    observed = observe(scan, TABLES["swift"], shipment_id="shp_1", received_at=received)
    assert observed.status == "delivery_attempt_failed"
    assert observed.sub_status == "recipient_absent"
    assert observed.description == "Nobody home, card left"
    assert observed.carrier_code == "NH1" and observed.carrier_event_id == "swift-8841"
    assert observed.occurred_at.utcoffset() is not None and observed.occurred_at.hour == 8
    assert observed.location == scan.location and observed.received_at == received
    assert observed.unknown_code is False
    bare = observe(
        CarrierTrackingEvent(
            carrier="swift",
            tracking_number="SW123456789",
            event_id="e2",
            code="??",
            occurred_at=received,
        ),
        TABLES["swift"],
        shipment_id="shp_1",
        received_at=received,
    )
    assert (bare.status, bare.unknown_code, bare.description) == ("unknown", True, None)


def _doc(**codes: object) -> dict[str, object]:
    return {
        "carrier": "acme",
        "tracking_number_pattern": "^AC[0-9]{4}$",
        "codes": codes or {"OK": {"status": "delivered"}},
    }


@pytest.mark.parametrize(
    ("doc", "entry", "field", "words"),
    [
        (_doc(X={"status": "teleported"}), "codes.'X'", "status", "not a canonical status"),
        (_doc(X={"status": "quoted"}), "codes.'X'", "status", "decided by Handoff"),
        (
            _doc(X={"status": "delivered", "sub_status": "weather"}),
            "codes.'X'",
            "sub_status",
            "not a sub-status",
        ),
        (_doc(X={"status": "delivered", "colour": "red"}), "codes.'X'", "colour", "unknown field"),
        (_doc(X={"sub_status": "lost"}), "codes.'X'", "status", "required"),
        (_doc(X="delivered"), "codes.'X'", "status", "must be a table"),
        (
            _doc(DLV={"status": "delivered"}, dlv={"status": "delivered"}),
            "codes.'dlv'",
            "code",
            "duplicates",
        ),
        (
            {**_doc(), "tracking_number_pattern": "("},
            "table",
            "tracking_number_pattern",
            "regular expression",
        ),
        (
            {**_doc(), "example_tracking_number": "XX1"},
            "table",
            "example_tracking_number",
            "does not match",
        ),
        ({**_doc(), "carrier": "Acme Inc"}, "table", "carrier", "not a carrier code"),
        ({**_doc(), "codes": {}}, "table", "codes", "non-empty"),
        ({k: v for k, v in _doc().items() if k != "carrier"}, "table", "carrier", "required"),
    ],
)
def test_a_broken_table_is_refused_naming_file_entry_and_field(
    doc: dict[str, object], entry: str, field: str, words: str
) -> None:
    with pytest.raises(CodeTableError) as caught:
        parse_code_table(doc, "acme.toml")
    err = caught.value
    assert (err.source, err.entry, err.field) == ("acme.toml", entry, field)
    assert words in err.message
    assert str(err).startswith(f"acme.toml: {entry}: {field}: ")


def test_loading_checks_the_file_name_and_the_toml(tmp_path: Path) -> None:
    wrong = tmp_path / "other.toml"
    wrong.write_text(
        'carrier = "acme"\ntracking_number_pattern = "^A$"\n[codes.X]\nstatus = "delivered"\n'
    )
    with pytest.raises(CodeTableError, match=r"other\.toml: table: carrier: .*file name"):
        load_code_table(wrong)
    broken = tmp_path / "acme.toml"
    broken.write_text("carrier = \n")
    with pytest.raises(CodeTableError, match=r"acme\.toml: file: toml"):
        load_code_table(broken)
    with pytest.raises(CodeTableError, match="not found"):
        load_code_tables(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CodeTableError, match="holds no"):
        load_code_tables(empty)
