"""The join's decisions without a broker: hold, release, de-duplicate, re-route misplaced."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from handoff_events import topics
from handoff_events.contracts import (
    CarrierTrackingEvent,
    Event,
    TrackingNumberAssigned,
    TrackingObserved,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.runtime.publisher import murmur2, murmur2_partitioner
from handoff_events.stream.api import Emit, MsgpackCodec, Rejected
from handoff_tracking.ingress.code_tables import load_code_tables
from handoff_tracking.ingress.join import (
    REROUTED_SOURCE,
    WEBHOOK_SOURCE_PREFIX,
    JoinRow,
    build_join,
    join_assignment,
    join_scan,
    observation_id,
    partition_for,
    received_at,
)
from handoff_tracking.ingress.metrics import MISROUTED, UNKNOWN_CODES

CODES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "config" / "carrier-codes"
TABLES = load_code_tables(CODES_DIR)
T0 = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
PARTITIONS = 3


def scan(
    n: int, code: str = "ARR", carrier: str = "swift", number: str = "SW123456789"
) -> CarrierTrackingEvent:
    return CarrierTrackingEvent(
        carrier=carrier,
        tracking_number=number,
        event_id=f"{carrier}-{n}",
        code=code,
        occurred_at=datetime.fromisoformat(f"2026-11-21T08:{n:02d}:00+01:00"),
    )


def assigned(
    shipment: str = "shp_1", carrier: str = "swift", number: str = "SW123456789"
) -> TrackingNumberAssigned:
    return TrackingNumberAssigned(
        carrier=carrier, tracking_number=number, shipment_id=shipment, assigned_at=T0
    )


# ---- pure decisions ----------------------------------------------------------------------


def test_a_scan_for_a_known_shipment_is_observed() -> None:
    row, _ = join_assignment(None, assigned(), "acme", TABLES)
    row, observed = join_scan(row, scan(1, "OFD"), T0, TABLES)
    assert [o.status for o in observed] == ["out_for_delivery"]
    assert observed[0].shipment_id == "shp_1" and observed[0].received_at == T0
    assert row.seen == ("swift-1",)


def test_scans_before_the_assignment_are_held_then_released_in_order() -> None:
    row: JoinRow | None = None
    for n, code in enumerate(["PUP", "ARR", "BOGUS"], start=1):
        row, observed = join_scan(row, scan(n, code), T0 + timedelta(minutes=n), TABLES)
        assert observed == []
    assert row is not None and len(row.held) == 3 and row.shipment_id is None
    row, released = join_assignment(row, assigned(), "acme", TABLES)
    assert [(o.carrier_event_id, o.status) for o in released] == [
        ("swift-1", "picked_up"),
        ("swift-2", "in_transit"),
        ("swift-3", "unknown"),
    ]
    assert released[2].unknown_code is True
    # Each keeps the time it was first received and the carrier's UTC offset.
    assert [o.received_at for o in released] == [T0 + timedelta(minutes=n) for n in (1, 2, 3)]
    assert released[0].occurred_at.utcoffset() == timedelta(hours=1)
    assert row.held == () and (row.shipment_id, row.tenant_id) == ("shp_1", "acme")
    again, nothing = join_assignment(row, assigned(), "acme", TABLES)
    assert nothing == [] and again.shipment_id == "shp_1"


def test_duplicates_are_dropped_held_or_joined() -> None:
    row, _ = join_scan(None, scan(1), T0, TABLES)
    same, observed = join_scan(row, scan(1), T0, TABLES)
    assert same is row and observed == []
    row, released = join_assignment(row, assigned(), "acme", TABLES)
    assert len(released) == 1
    same, observed = join_scan(row, scan(1), T0, TABLES)
    assert observed == []


def test_the_hold_is_bounded() -> None:
    row, _ = join_scan(None, scan(1), T0, TABLES, max_held=2)
    row, _ = join_scan(row, scan(2), T0, TABLES, max_held=2)
    with pytest.raises(Exception, match="already wait"):
        join_scan(row, scan(3), T0, TABLES, max_held=2)


def test_the_row_round_trips_through_the_changelog_codec() -> None:
    row, _ = join_scan(None, scan(1), T0, TABLES)
    codec = MsgpackCodec(JoinRow)
    value, headers = codec.encode("swift/SW123456789", row)
    assert codec.decode(value, headers) == row


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_partitioning_matches_the_java_client(key: str, java_murmur2: int) -> None:
    # Kafka's UtilsTest vectors; the Java partitioner is toPositive(murmur2(key)) % n.
    for n in (1, 3, 12, 7):
        assert partition_for(key, n) == (java_murmur2 & 0x7FFFFFFF) % n
    assert murmur2(key.encode()) == java_murmur2 & 0xFFFFFFFF


def test_the_fast_murmur2_is_aiokafkas_bit_for_bit() -> None:
    # Every length (word count and 0-3 tail bytes), random bytes including high ones: the
    # webhook's producer and the join must agree with every other murmur2 producer.
    rnd = random.Random(20261121)
    for length in range(300):
        for _ in range(8):
            data = rnd.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data), data
    for key in ("", "\x00\x00\x00\x00\x00", "swift/SW012345678", "ü/€"):
        data = key.encode()
        assert murmur2(data) == aiokafka_murmur2(data)
        # The producer's partitioner and the join's misplacement check pick the same partition.
        assert murmur2_partitioner(data, list(range(12)), []) == partition_for(key, 12)


# ---- the stage's handler against a fake context ------------------------------------------


class FakeStore:
    def __init__(self) -> None:
        self.data: dict[str, JoinRow] = {}

    def get(self, key: str) -> JoinRow | None:
        return self.data.get(key)

    def put(self, key: str, value: JoinRow) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, JoinRow]]:
        return iter(self.data.items())

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class FakeContext:
    partition: int
    topic: str
    store: FakeStore
    now: datetime = T0
    offset: int = 0
    key: str | None = None
    emits: list[Emit] = field(default_factory=list)

    def emit(self, topic: str, key: str, envelope: Envelope[Any]) -> None:
        self.emits.append(Emit(topic, key, envelope))


def env(data: Event, tenant: str = "swift", id: str = "in-1") -> Envelope[Event]:
    return new_envelope(data, source="test", tenant_id=tenant, id=id)


def handle(envelope: Envelope[Event], ctx: FakeContext) -> None:
    result = build_join(TABLES, partitions=PARTITIONS, max_held=1).handle(envelope, ctx)  # type: ignore[arg-type]
    assert result is None


def key_partition(key: str) -> int:
    return partition_for(key, PARTITIONS)


def test_the_handler_emits_observations_keyed_by_shipment_with_deterministic_ids() -> None:
    key = "swift/SW123456789"
    store = FakeStore()
    ctx = FakeContext(key_partition(key), topics.CARRIER_TRACKING, store)
    handle(env(scan(1, "DLV")), ctx)
    assert ctx.emits == [] and store.data[key].held
    ctx.topic = topics.TRACKING_NUMBERS
    handle(env(assigned(), tenant="acme", id="tna-1"), ctx)
    [out] = ctx.emits
    assert (out.topic, out.key) == (topics.OBSERVATIONS, "shp_1")
    assert out.envelope.id == observation_id("swift", "swift-1")
    assert out.envelope.tenant_id == "acme" and out.envelope.subject == "shp_1"
    data = out.envelope.data
    assert isinstance(data, TrackingObserved) and data.sub_status == "delivered_to_recipient"
    # The same scan re-posted (same carrier event id) changes nothing.
    ctx.topic = topics.CARRIER_TRACKING
    handle(env(scan(1, "DLV"), id="in-again"), ctx)
    assert len(ctx.emits) == 1


def test_unknown_codes_are_counted_per_carrier() -> None:
    key = "velo/VL12345678"
    before = UNKNOWN_CODES.labels("velo")._value.get()
    store = FakeStore()
    ctx = FakeContext(key_partition(key), topics.TRACKING_NUMBERS, store)
    handle(env(assigned("shp_v", "velo", "VL12345678"), tenant="acme"), ctx)
    ctx.topic = topics.CARRIER_TRACKING
    handle(env(scan(1, "teleported", "velo", "VL12345678")), ctx)
    [out] = ctx.emits
    assert out.envelope.data.status == "unknown" and out.envelope.data.unknown_code
    assert UNKNOWN_CODES.labels("velo")._value.get() == before + 1


def test_too_many_held_scans_are_rejected_to_the_dlq() -> None:
    key = "swift/SW123456789"
    ctx = FakeContext(key_partition(key), topics.CARRIER_TRACKING, FakeStore())
    handle(env(scan(1)), ctx)
    with pytest.raises(Rejected) as caught:
        handle(env(scan(2)), ctx)
    assert caught.value.reason == "hold_limit_exceeded"


@pytest.mark.parametrize("topic", [topics.CARRIER_TRACKING, topics.TRACKING_NUMBERS])
def test_a_record_in_the_wrong_partition_is_republished_keyed_correctly(topic: str) -> None:
    key = "swift/SW123456789"
    wrong = (key_partition(key) + 1) % PARTITIONS
    store = FakeStore()
    ctx = FakeContext(wrong, topic, store, key="SW123456789")
    data: Event = scan(1) if topic == topics.CARRIER_TRACKING else assigned()
    before = MISROUTED.labels(topic)._value.get()
    handle(env(data, id="in-7"), ctx)
    [out] = ctx.emits
    assert (out.topic, out.key) == (topic, key)
    assert out.envelope.id == "in-7" and out.envelope.data == data
    assert out.envelope.source == REROUTED_SOURCE
    assert store.data == {}  # nothing applied in the wrong task
    assert MISROUTED.labels(topic)._value.get() == before + 1
    # Already re-routed once and still misplaced (partition count mismatch): applied, not bounced.
    handle(out.envelope, ctx)
    assert len(ctx.emits) == 1 and key in store.data


def test_the_stage_is_declared_as_the_catalogue_expects() -> None:
    processor = build_join(TABLES, partitions=PARTITIONS)
    assert (processor.service, processor.stage) == ("tracking", "join")
    assert list(processor.inputs) == [topics.CARRIER_TRACKING, topics.TRACKING_NUMBERS]
    assert processor.changelog == "handoff.tracking.join-changelog.v1"
    assert processor.changelog in topics.BY_NAME and topics.BY_NAME[processor.changelog].changelog
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(JoinRow()), type=JoinRow) == JoinRow()


def test_received_at_is_the_webhook_stamp_or_first_sight() -> None:
    stamped = T0 - timedelta(seconds=3)
    via_webhook = new_envelope(
        scan(1), source=WEBHOOK_SOURCE_PREFIX + "swift", tenant_id="swift", id="w", time=stamped
    )
    assert received_at(via_webhook, T0) == stamped
    via_topic = new_envelope(
        scan(1), source="carrier/swift", tenant_id="swift", id="t", time=stamped
    )
    assert received_at(via_topic, T0) == T0
    key = "swift/SW123456789"
    ctx = FakeContext(key_partition(key), topics.CARRIER_TRACKING, FakeStore())
    handle(via_webhook, ctx)
    assert ctx.store.data[key].held[0].received_at == stamped
