"""The shipment board: status counts, the exception queue and when an exception is still open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handoff_control_tower.domain.board import STATUS_ORDER, ShipmentBoard, open_exceptions
from handoff_events.contracts import ExceptionInfo, HistoryEntry, ShipmentState
from handoff_events.values import Reason
from hypothesis import given
from hypothesis import strategies as st

T = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def entry(i: int, status: str, hours: float) -> HistoryEntry:
    at = T + timedelta(hours=hours)
    return HistoryEntry(
        event_id=f"e{i}",
        type="handoff.tracking.observed.v1",
        occurred_at=at,
        recorded_at=at,
        status=status,
    )  # type: ignore[arg-type]


def state(
    sid: str,
    status: str,
    *,
    history: list[HistoryEntry] | None = None,
    exceptions: list[ExceptionInfo] | None = None,
    carrier: str | None = "swift",
    version: int = 1,
) -> ShipmentState:
    return ShipmentState(
        shipment_id=sid,
        order_id="A-1",
        tenant_id="acme",
        status=status,
        updated_at=T + timedelta(hours=version),
        version=version,
        carrier=carrier,
        history=history or [],
        exceptions=exceptions or [],
    )


def exc(kind: str, hours: float) -> ExceptionInfo:
    return ExceptionInfo(kind=kind, detected_at=T + timedelta(hours=hours))


def test_a_healthy_shipment_needs_nobody() -> None:
    assert open_exceptions(state("s", "in_transit", history=[entry(1, "in_transit", 1)])) == ()


def test_late_stays_open_until_the_shipment_ends() -> None:
    moving = state(
        "s",
        "out_for_delivery",
        history=[entry(1, "out_for_delivery", 5)],
        exceptions=[exc("late", 2)],
    )
    assert [e.kind for e in open_exceptions(moving)] == ["late"]
    delivered = state(
        "s", "delivered", history=[entry(2, "delivered", 6)], exceptions=[exc("late", 2)]
    )
    assert open_exceptions(delivered) == ()


def test_a_later_healthy_scan_closes_stuck_and_failed_attempts() -> None:
    history = [entry(1, "delivery_attempt_failed", 1), entry(2, "out_for_delivery", 20)]
    closed = state(
        "s",
        "out_for_delivery",
        history=history,
        exceptions=[exc("stuck", 10), exc("failed_attempt", 1)],
    )
    assert open_exceptions(closed) == ()
    still = state(
        "s", "delivery_attempt_failed", history=history[:1], exceptions=[exc("failed_attempt", 1)]
    )
    assert [e.kind for e in open_exceptions(still)] == ["failed_attempt"]


def test_a_scan_into_an_exception_status_does_not_close_anything() -> None:
    history = [entry(1, "in_transit", 1), entry(2, "exception", 30)]
    s = state("s", "exception", history=history, exceptions=[exc("stuck", 20)])
    assert [e.kind for e in open_exceptions(s)] == ["stuck"]


def test_an_exception_status_without_an_entry_still_queues() -> None:
    s = state("s", "exception", history=[entry(1, "exception", 1)])
    assert [e.kind for e in open_exceptions(s)] == ["exception"]


def test_allocation_failed_queues_with_its_reasons() -> None:
    s = ShipmentState(
        shipment_id="s",
        order_id="A",
        tenant_id="acme",
        status="allocation_failed",
        updated_at=T,
        version=3,
        reasons=[Reason(code="no_capacity", message="no carrier has capacity")],
    )
    (flag,) = open_exceptions(s)
    assert (flag.kind, flag.detail) == ("allocation_failed", "no carrier has capacity")


def test_counts_and_queue_follow_the_latest_state_of_each_shipment() -> None:
    board = ShipmentBoard()
    board.apply(state("a", "in_transit", history=[entry(1, "in_transit", 1)]))
    board.apply(state("b", "exception", history=[entry(1, "exception", 1)], carrier="nordpost"))
    board.apply(state("c", "delivered", history=[entry(1, "delivered", 1)]))
    counts = dict(board.by_status())
    assert (counts["in_transit"], counts["exception"], counts["delivered"]) == (1, 1, 1)
    assert [e.shipment_id for e in board.exception_queue()] == ["b"]
    assert board.active_by_carrier() == {"swift": 1, "nordpost": 1}
    # b recovers, a gets stuck: the queue and the counts move with them
    board.apply(
        state(
            "b",
            "out_for_delivery",
            history=[entry(1, "exception", 1), entry(2, "out_for_delivery", 2)],
            carrier="nordpost",
            version=2,
        )
    )
    board.apply(
        state(
            "a",
            "in_transit",
            history=[entry(1, "in_transit", 1)],
            exceptions=[exc("stuck", 49)],
            version=2,
        )
    )
    counts = dict(board.by_status())
    assert (counts["exception"], counts["out_for_delivery"]) == (0, 1)
    assert [e.shipment_id for e in board.exception_queue()] == ["a"]
    assert board.queue_by_kind() == [("stuck", 1)]
    board.remove("a")
    assert len(board) == 2
    assert board.queue_size() == 0
    assert board.active_by_carrier() == {"nordpost": 1}


def test_the_queue_leads_with_the_longest_waiting() -> None:
    board = ShipmentBoard()
    for sid, hours in (("x", 30), ("y", 10), ("z", 20)):
        board.apply(state(sid, "in_transit", exceptions=[exc("late", hours)]))
    assert [e.shipment_id for e in board.exception_queue()] == ["y", "z", "x"]
    assert [e.shipment_id for e in board.exception_queue(limit=1)] == ["y"]


def test_unknown_statuses_are_still_counted() -> None:
    board = ShipmentBoard()
    board.apply(state("a", "teleported"))
    assert board.by_status()[-1] == ("teleported", 1)
    assert [s for s, _ in board.by_status()[: len(STATUS_ORDER)]] == list(STATUS_ORDER)


@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(STATUS_ORDER)), max_size=60))
def test_counts_always_equal_a_recount_of_the_latest_states(updates: list[tuple[int, str]]) -> None:
    board = ShipmentBoard()
    latest: dict[str, str] = {}
    for version, (n, status) in enumerate(updates, start=1):
        board.apply(state(f"s{n}", status, version=version))
        latest[f"s{n}"] = status
    counts = {s: c for s, c in board.by_status() if c}
    expected: dict[str, int] = {}
    for status in latest.values():
        expected[status] = expected.get(status, 0) + 1
    assert counts == expected
    assert len(board) == len(latest)
