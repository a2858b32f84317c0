"""Capacity buckets (pure) and the data files (validated at load)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from handoff_carrier_allocation.adapters.config import (
    ConfigError,
    load_capacity,
    load_policies,
    load_tendering,
)
from handoff_carrier_allocation.domain.capacity import BucketState, release, reserve
from handoff_events.contracts import CapacityBucket
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[4]
CONFIG = REPO / "deploy" / "config" / "allocation"
BUCKET = CapacityBucket(carrier="velo", hub_id="HUB-BER-1", day=date(2026, 11, 20))


def test_reservations_stop_at_the_limit_and_are_idempotent_per_shipment():
    state: BucketState | None = None
    for i in range(3):
        d = reserve(state, BUCKET, 3, f"s{i}", f"r{i}")
        assert d.granted
        state = d.state
    full = reserve(state, BUCKET, 3, "s9", "r9")
    assert not full.granted and full.reason == "bucket_full"
    again = reserve(state, BUCKET, 3, "s1", "r1")  # a retried request for a holder
    assert again.granted and again.state.remaining == 0
    assert state is not None and len(state.reserved) == 3


def test_release_only_frees_the_named_reservation():
    state = reserve(None, BUCKET, 1, "s1", "r1").state
    assert not release(state, BUCKET, 1, "s1", "r-other").released
    assert not release(state, BUCKET, 1, "s2", "r1").released
    freed = release(state, BUCKET, 1, "s1", "r1")
    assert freed.released and freed.state.remaining == 1
    assert not release(freed.state, BUCKET, 1, "s1", "r1").released  # twice is harmless


def test_lowering_the_limit_never_evicts():
    state = reserve(reserve(None, BUCKET, 5, "a", "1").state, BUCKET, 5, "b", "2").state
    lowered = reserve(state, BUCKET, 1, "c", "3")
    assert not lowered.granted and set(lowered.state.reserved) == {"a", "b"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9)), max_size=60), st.integers(0, 5))
def test_never_more_holders_than_the_limit(ops, limit):
    state: BucketState | None = None
    for is_reserve, n in ops:
        if is_reserve:
            state = reserve(state, BUCKET, limit, f"s{n}", f"r{n}").state
        else:
            state = release(state, BUCKET, limit, f"s{n}", f"r{n}").state
        assert len(state.reserved) <= limit


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
