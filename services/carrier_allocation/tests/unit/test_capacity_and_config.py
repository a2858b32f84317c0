"""Capacity buckets (pure) and the data files (validated at load)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest
from handoff_carrier_allocation.adapters.config import (
    ConfigError,
    load_capacity,
    load_policies,
    load_tendering,
)
from handoff_carrier_allocation.domain.capacity import BucketState, Slot, release, reserve
from handoff_carrier_allocation.handlers import BucketCodec
from handoff_events.contracts import CapacityBucket
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[4]
CONFIG = REPO / "deploy" / "config" / "allocation"
BUCKET = CapacityBucket(carrier="velo", hub_id="HUB-BER-1", day=date(2026, 11, 20))


class Bucket:
    """One bucket's store entries (counter + slots) driven through the pure functions."""

    def __init__(self) -> None:
        self.state: BucketState | None = None
        self.slots: dict[str, Slot] = {}

    def reserve(self, limit: int, shipment: str, request: str) -> bool:
        d = reserve(self.state, self.slots.get(shipment), BUCKET, limit, shipment, request)
        self._apply(d.state, shipment, d.slot)
        return d.granted

    def release(self, limit: int, shipment: str, request: str) -> bool:
        d = release(self.state, self.slots.get(shipment), BUCKET, limit, shipment, request)
        self._apply(d.state, shipment, d.slot)
        return d.released

    def _apply(self, state: BucketState, shipment: str, slot: Slot | None) -> None:
        self.state = state
        if slot is None:
            self.slots.pop(shipment, None)
        else:
            self.slots[shipment] = slot

    @property
    def holders(self) -> set[str]:
        inline = set(self.state.reserved) if self.state else set()
        return set(self.slots) | inline


def test_reservations_stop_at_the_limit_and_are_idempotent_per_shipment():
    b = Bucket()
    assert all(b.reserve(3, f"s{i}", f"r{i}") for i in range(3))
    full = reserve(b.state, None, BUCKET, 3, "s9", "r9")
    assert not full.granted and full.reason == "bucket_full" and full.slot is None
    again = reserve(b.state, b.slots["s1"], BUCKET, 3, "s1", "r1b")  # retried for a holder
    assert again.granted and again.state.remaining == 0 and again.slot == Slot(request_id="r1b")
    assert b.state is not None and b.state.held == 3 and b.holders == {"s0", "s1", "s2"}


def test_release_only_frees_the_named_reservation():
    b = Bucket()
    b.reserve(1, "s1", "r1")
    assert not b.release(1, "s1", "r-other")
    assert not b.release(1, "s2", "r1")
    assert b.release(1, "s1", "r1") and b.state is not None and b.state.remaining == 1
    assert not b.release(1, "s1", "r1")  # twice is harmless
    assert b.state.held == 0 and b.holders == set()


def test_lowering_the_limit_never_evicts():
    b = Bucket()
    b.reserve(5, "a", "1")
    b.reserve(5, "b", "2")
    assert not b.reserve(1, "c", "3")
    assert b.holders == {"a", "b"} and b.state is not None and b.state.limit == 1


def test_a_decision_writes_small_entries_whatever_the_holders():
    b = Bucket()
    for i in range(2_000):
        assert b.reserve(10**6, f"shp_{i}", f"cap_{i}")
    assert b.state is not None and b.state.held == 2_000 and b.state.reserved == {}
    codec = BucketCodec()
    raw, _ = codec.encode(BUCKET.key, b.state)
    assert len(raw) < 100  # a counter, not a map of every holder


def test_first_layout_holders_still_count_and_move_to_slots():
    """A counter written before the split holds its holders inline; they keep their slot."""
    old = BucketState(bucket=BUCKET, limit=2, reserved={"s1": "r1", "s2": "r2"})
    assert not reserve(old, None, BUCKET, 2, "s3", "r3").granted  # the bucket is full
    again = reserve(old, None, BUCKET, 2, "s1", "r1b")  # a holder asks again
    assert again.granted and again.slot == Slot(request_id="r1b")
    assert again.state.held == 1 and again.state.reserved == {"s2": "r2"}
    assert not release(old, None, BUCKET, 2, "s2", "r-other").released
    freed = release(old, None, BUCKET, 2, "s2", "r2")
    assert freed.released and freed.state.reserved == {"s1": "r1"} and freed.state.remaining == 1


def test_codec_reads_both_entries_and_the_first_layout():
    codec = BucketCodec()
    counter = BucketState(bucket=BUCKET, limit=5, held=2)
    slot = Slot(request_id="cap_1")
    for value in (counter, slot):
        raw, headers = codec.encode("k", value)
        assert codec.decode(raw, headers) == value

    class FirstLayout(msgspec.Struct, frozen=True, kw_only=True):
        bucket: CapacityBucket
        limit: int
        reserved: dict[str, str] = {}

    raw = msgspec.msgpack.encode(FirstLayout(bucket=BUCKET, limit=5, reserved={"s1": "r1"}))
    decoded = codec.decode(raw, [])
    assert isinstance(decoded, BucketState) and decoded.taken == 1 and decoded.held == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 2)), max_size=60),
    st.integers(0, 5),
)
def test_never_more_holders_than_the_limit(ops, limit):
    b = Bucket()
    for is_reserve, n, attempt in ops:
        if is_reserve:
            b.reserve(limit, f"s{n}", f"r{n}.{attempt}")
        else:
            b.release(limit, f"s{n}", f"r{n}.{attempt}")
        assert b.state is not None
        assert len(b.holders) <= limit
        assert b.state.taken == len(b.holders)  # the counter matches the slots


def test_shipped_data_files_load():
    book = load_policies(CONFIG / "policies.toml")
    assert set(book.policies) == {"default", "acme", "globex"}
    assert book.for_tenant("unknown-tenant").policy_id == "default"
    assert book.policies["acme"].objective == "weighted"
    limits = load_capacity(CONFIG / "capacity.toml")
    assert limits.limit_for(BUCKET) == 300
    assert limits.limit_for(CapacityBucket(carrier="velo", hub_id="X", day=BUCKET.day)) == 150
    assert limits.limit_for(CapacityBucket(carrier="newco", hub_id="X", day=BUCKET.day)) == 500
    routes = load_tendering(CONFIG / "tendering.toml")
    assert routes.via("velo") == "http" and routes.via("nordpost") == "topic"


@pytest.mark.parametrize(
    ("text", "entry", "field"),
    [
        ('[tenants.acme]\nobjective = "cheapest"\n', "tenants.default", None),
        ('[tenants.default]\nobjective = "cheapest"\n', "tenants.default", "objective"),
        (
            '[tenants.default]\nobjective = "fastest"\nmin_on_time_probability = 1.5\n',
            "tenants.default",
            "min_on_time_probability",
        ),
        (
            '[tenants.default]\nobjective = "fastest"\n'
            'max_price = { amount = 9.5, currency = "EUR" }\n',
            "tenants.default",
            "max_price.amount",
        ),
        (
            '[tenants.default]\nobjective = "fastest"\n'
            'preferred_carriers = ["a"]\nexcluded_carriers = ["a"]\n',
            "tenants.default",
            "preferred_carriers",
        ),
        (
            '[tenants.default]\nobjective = "weighted"\nweights = { cost = 0, on_time = 0 }\n',
            "tenants.default.weights",
            "cost",
        ),
        ('[tenants.default]\nobjective = "fastest"\ncolour = "red"\n', "tenants.default", "colour"),
    ],
)
def test_policy_errors_name_file_entry_and_field(tmp_path, text, entry, field):
    path = tmp_path / "policies.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policies(path)
    assert info.value.path == str(path)
    assert info.value.entry == entry
    assert info.value.field == field


def test_capacity_and_tendering_errors(tmp_path):
    cap = tmp_path / "capacity.toml"
    cap.write_text('default_daily_limit = 10\n[carriers.velo]\nhubs = { "H1" = -1 }\n')
    with pytest.raises(ConfigError, match=r"carriers\.velo\.hubs\.H1"):
        load_capacity(cap)
    ten = tmp_path / "tendering.toml"
    ten.write_text('[carriers.velo]\ntender_via = "http"\n')
    with pytest.raises(ConfigError, match=r"carriers\.velo\.tender_url"):
        load_tendering(ten)
