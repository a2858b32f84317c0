"""The operator commands' pure parts: drain planning, offset ranges, topic names, record lines."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from handoff_events.cli_ops import (
    DrainPosition,
    decode_offsets,
    encode_offsets,
    format_line,
    partition_for_key,
    plan_drain,
    republished_headers,
    resolve_topic,
)
from hypothesis import given
from hypothesis import strategies as st


@dataclass
class Rec:
    offset: int
    reason: str
    partition: int = 0
    key: bytes | None = b"k"
    value: bytes | None = b"{}"
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.headers = [("ce_id", b"x"), ("handoff_dlq_reason", self.reason.encode())]


@given(st.sets(st.integers(0, 500), max_size=60))
def test_offset_ranges_round_trip(offsets: set[int]) -> None:
    assert decode_offsets(encode_offsets(offsets)) == offsets


def test_offset_ranges_are_compact() -> None:
    assert encode_offsets([9, 3, 4, 5, 11, 12]) == "3-5,9,11-12"


def test_a_plain_drain_sends_everything_and_moves_to_the_end() -> None:
    records = [Rec(0, "a"), Rec(1, "b"), Rec(2, "a")]
    plan = plan_drain(records, DrainPosition(0), end_offset=3, reason=None)  # type: ignore[arg-type]
    assert [r.offset for r in plan.resend] == [0, 1, 2]
    assert plan.position == DrainPosition(3)


def test_a_filtered_drain_keeps_the_others_and_remembers_what_it_sent() -> None:
    records = [Rec(0, "a"), Rec(1, "b"), Rec(2, "a"), Rec(3, "a")]
    first = plan_drain(records, DrainPosition(0), 4, "a")  # type: ignore[arg-type]
    assert [r.offset for r in first.resend] == [0, 2, 3]
    assert first.position == DrainPosition(1, frozenset({2, 3}))
    assert first.position.metadata() == "drained:2-3"
    # the same filter again: nothing to send
    again = plan_drain(records[1:], DrainPosition.parse(1, "drained:2-3"), 4, "a")  # type: ignore[arg-type]
    assert again.resend == [] and again.already == 2 and again.filtered == 1
    # then everything: only the kept-back record goes, and the position reaches the end
    rest = plan_drain(records[1:], DrainPosition.parse(1, "drained:2-3"), 4, None)  # type: ignore[arg-type]
    assert [r.offset for r in rest.resend] == [1]
    assert rest.position == DrainPosition(4)


def test_republished_headers_drop_only_the_dlq_annotations() -> None:
    assert republished_headers(Rec(0, "a")) == [("ce_id", b"x")]  # type: ignore[arg-type]


def test_topic_names_take_the_prefix_and_suggest_on_typos() -> None:
    assert resolve_topic("handoff.shipments.state.v1", "t1.") == "t1.handoff.shipments.state.v1"
    assert resolve_topic("t1.handoff.shipments.state.v1", "t1.") == "t1.handoff.shipments.state.v1"
    with pytest.raises(SystemExit, match=r"did you mean handoff\.shipments\.state\.v1"):
        resolve_topic("handoff.shipment.state.v1", "")


def test_a_key_always_lands_in_one_partition_and_keys_spread() -> None:
    assert len({partition_for_key("shp_1", [2, 0, 1]) for _ in range(5)}) == 1
    assert {partition_for_key(f"shp_{i}", [0, 1, 2]) for i in range(50)} == {0, 1, 2}


def test_a_line_spends_its_width_on_what_the_attributes_do_not_say() -> None:
    doc = {
        "time": "2026-11-21T08:00:00Z",
        "type": "handoff.x.v1",
        "key": "s1",
        "subject": "s1",
        "tenant": "acme",
        "data": {
            "shipment_id": "s1",
            "tenant_id": "acme",
            "status": "delivered",
            "reasons": [],
            "carrier": None,
        },
    }
    assert format_line(doc) == (
        '2026-11-21T08:00:00Z  handoff.x.v1  key=s1  subject=s1  tenant=acme  {"status":"delivered"}'
    )
